"""Fast sampling vs the paper's sampler, and DiffuSeq vs LevT decoding speed, in one run.

On the same test sentences of a trained DiffuSeq checkpoint (and a LevT checkpoint, e.g. from
scripts/compare_levt.py), prints BLEU and sentences/s of:
ancestral DDPM over all T steps (the paper), DDIM and DPM-Solver++ at 10 and 20 steps, MBR over
10 candidates vs 1, --stop-when-stable 2 (at |S|=1 and 10), and LevT with its default
iterations, as ratios.

    python benchmarks/samplers.py --data-bin runs/compare_multi30k/test_first_200 --source-lang de \\
        --target-lang en --diffuseq runs/compare_multi30k/ckpt_diffuseq/checkpoint_last.pt \\
        --levt runs/compare_multi30k/ckpt_levt/checkpoint_last.pt --test-sentences 50 --out runs/samplers

On a model that has learned its task, e.g. the shipped recipe's toy-task checkpoint of
benchmarks/ablation.py (anchor loss + embedding norm + source once + restarted target positions;
--toy adds exact match; the run in benchmarks/results/samplers_toy_cpu.txt):

    python benchmarks/samplers.py --data-bin runs/ablation_toy/data-bin --source-lang src --target-lang tgt \\
        --diffuseq runs/ablation_toy/ckpt_v10/checkpoint_last.pt --toy --out runs/samplers_toy_v10
"""
import argparse
from pathlib import Path

from diffuseq_fairseq.dataprep.toy_score import score as toy_score
from diffuseq_fairseq.experiments.recipes import LEVT_CPU
from diffuseq_fairseq.experiments.report import write_json
from diffuseq_fairseq.experiments.runner import first_pairs, generate, progress
from diffuseq_fairseq.experiments.scoring import metrics_of


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-bin", required=True, help="data-bin with a test split (and text/test.* for subsets)")
    parser.add_argument("--source-lang", required=True)
    parser.add_argument("--target-lang", required=True)
    parser.add_argument("--diffuseq", required=True, help="DiffuSeq checkpoint")
    parser.add_argument("--levt", help="LevT checkpoint (for the speed ratio)")
    parser.add_argument("--test-sentences", type=int, default=0, help="first N test pairs (needs DATA_BIN/text)")
    parser.add_argument("--ddpm-steps", type=int, default=0, help="steps of the ancestral baseline (default: T)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--toy", action="store_true", help="also score exact match on the embedded toy task")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    data_bin = Path(args.data_bin)
    if args.test_sentences:
        data_bin = first_pairs(data_bin, args.source_lang, args.target_lang, args.test_sentences, out, args.threads)
    langs = f"--source-lang {args.source_lang} --target-lang {args.target_lang}"
    ddpm = f"--sampler ddpm --diffusion-steps {args.ddpm_steps}" if args.ddpm_steps else "--sampler ddpm"
    runs = {
        "ddpm full T (paper)": ddpm,
        "ddim 20": "--sampler ddim --diffusion-steps 20",
        "dpm-solver++ 10": "--sampler dpm-solver++ --diffusion-steps 10",
        "dpm-solver++ 20": "--sampler dpm-solver++ --diffusion-steps 20",
        "dpm-solver++ 20, MBR 10": "--sampler dpm-solver++ --diffusion-steps 20 --mbr-candidates 10",
        "dpm-solver++ 20, stop": "--sampler dpm-solver++ --diffusion-steps 20 --stop-when-stable 2",
        "dpm-solver++ 20, MBR 10, stop": "--sampler dpm-solver++ --diffusion-steps 20 --mbr-candidates 10 --stop-when-stable 2",
    }
    results = {}
    for label, flags in runs.items():
        progress(f"DiffuSeq {label}")
        gen_file, speed = generate("diffuseq", data_bin, args.diffuseq, f"--task diffuseq {langs} {flags}",
                                   out, args.threads, label.replace(" ", "_").replace(",", ""))
        results[label] = {"speed": speed, "metrics": metrics_of(gen_file)}
        if args.toy:
            results[label]["exact_match"] = toy_score(str(gen_file))["exact_match"]
    if args.levt:
        progress("LevT")
        gen_file, speed = generate("levt", data_bin, args.levt, f"{LEVT_CPU.decoding_args()} {langs}",
                                   out, args.threads, "default")
        results["levt"] = {"speed": speed, "metrics": metrics_of(gen_file)}

    print(f"\n{'decoder':28s} {'BLEU':>7s} {'sacreBLEU':>9s} {'sent/s':>8s}" + (f" {'exact':>6s}" if args.toy else ""))
    for label, entry in results.items():
        m, s = entry["metrics"], entry["speed"]
        exact = f" {100 * entry['exact_match']:6.1f}" if "exact_match" in entry else ""
        print(f"{label:28s} {100 * m['bleu']:7.2f} {100 * m['sacrebleu']:9.2f} {s['sentences_per_s']:8.2f}{exact}")
    base = results["ddpm full T (paper)"]
    for label in ("dpm-solver++ 10", "dpm-solver++ 20"):
        gap = 100 * (results[label]["metrics"]["bleu"] - base["metrics"]["bleu"])
        speedup = results[label]["speed"]["sentences_per_s"] / base["speed"]["sentences_per_s"]
        exact = ""
        if args.toy:
            exact = f", exact match {100 * (results[label]['exact_match'] - base['exact_match']):+.1f} points"
        print(f"{label} vs DDPM full T: BLEU {gap:+.2f}{exact}, {speedup:.0f}x faster")
    speed = {label: entry["speed"]["sentences_per_s"] for label, entry in results.items()}
    single = speed["dpm-solver++ 20"]
    stop = speed["dpm-solver++ 20, stop"]
    print(f"wall time MBR 10 / MBR 1: {single / speed['dpm-solver++ 20, MBR 10']:.2f}x every step, "
          f"{stop / speed['dpm-solver++ 20, MBR 10, stop']:.2f}x both with --stop-when-stable 2; MBR 10 with it / "
          f"MBR 1 every step: {single / speed['dpm-solver++ 20, MBR 10, stop']:.2f}x")
    print(f"--stop-when-stable 2: {stop / single:.2f}x faster than every step")
    if args.levt:
        print(f"decoding speed DiffuSeq (dpm-solver++ 20, S=1) / LevT: {single / speed['levt']:.2f}x every step, "
              f"{speed['dpm-solver++ 20, stop'] / speed['levt']:.2f}x with --stop-when-stable 2")
    write_json(out / "samplers.json", results)


if __name__ == "__main__":
    main()
