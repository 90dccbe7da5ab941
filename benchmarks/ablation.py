"""Ablation of the convergence options at one training budget (issue #4, item 5).

Variants: the paper's recipe (base), + self-conditioning, + DiffuSeq-v2 soft absorbing state,
+ both, and each of the other options alone on top of base: the anchor loss, embedding
normalisation, and the source-encoded-once attention mask; then everything that won alone,
together, the three largest single gains together, and those three with Difformer's noise
factor 4 or with target position ids restarted at 0. Every variant trains with the same flags,
seed and number of updates (two at a time, one thread each), then decodes the same test sentences
with 20 DPM-Solver++ steps at |S|=1. The table shows sentence BLEU, corpus BLEU, exact match on
the toy task, the last validation loss terms and the training time.

On the embedded toy task (no download; the quickstart's data and model):

    python benchmarks/ablation.py --toy --max-update 800 --out runs/ablation_toy

On any data-bin (e.g. Multi30k from scripts/prepare_multi30k.sh):

    python benchmarks/ablation.py --data-bin data-bin/multi30k_de_en --source-lang de --target-lang en \\
        --max-update 600 --test-sentences 200 --out runs/ablation_multi30k
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from compare_levt import generate, metrics_of, progress, run_fairseq, test_subset, train_all  # noqa: E402

from diffuseq_fairseq.dataprep.toy_score import score as toy_score  # noqa: E402

# The quickstart's CPU-sized model and optimiser, without the anchor loss: the paper's objective.
BASE = (
    "--task diffuseq --arch diffuseq_tiny --criterion diffuseq_loss --encoder-layers 3 --encoder-embed-dim 128 "
    "--encoder-ffn-embed-dim 512 --latent-dim 64 --optimizer adam --adam-betas (0.9,0.98) --lr 1e-3 "
    "--lr-scheduler inverse_sqrt --warmup-updates 300 --max-tokens 2048 --dropout 0.1 --attention-dropout 0"
)
VARIANTS = {
    "base (paper)": "",
    "+ self-conditioning": "--self-condition",
    "+ soft absorbing": "--learned-mean-embed --absorb-rate 0.5",
    "+ both": "--self-condition --learned-mean-embed --absorb-rate 0.5",
    "+ anchor loss": "--anchor-loss-weight 1",
    "+ embedding norm": "--embed-norm",
    "+ source encoded once": "--encode-source-once",
    "+ all that won alone": (
        "--self-condition --learned-mean-embed --absorb-rate 0.5 --anchor-loss-weight 1 --embed-norm --encode-source-once"
    ),
    "+ anchor, norm, source once": "--anchor-loss-weight 1 --embed-norm --encode-source-once",
    "+ anchor, norm, source once, noise x4": "--anchor-loss-weight 1 --embed-norm --noise-factor 4 --encode-source-once",
    "+ anchor, norm, source once, restarted target positions": (
        "--anchor-loss-weight 1 --embed-norm --encode-source-once --target-positions restart"
    ),
}
DECODE = "--sampler dpm-solver++ --diffusion-steps 20"


def toy_data_bin(out: Path) -> Path:
    """The quickstart's task: 10,000 training pairs, passive-voice targets."""
    data_bin = out / "data-bin"
    if (data_bin / "dict.src.txt").exists():
        return data_bin
    progress("writing the toy task")
    subprocess.run([sys.executable, "-m", "diffuseq_fairseq.dataprep.toy_task", str(out / "raw"), "--n-train", "10000",
                    "--n-valid", "100", "--n-test", "200", "--paraphrases", "1"], check=True)
    run_fairseq("fairseq_cli.preprocess", [
        "--source-lang", "src", "--target-lang", "tgt", "--trainpref", str(out / "raw" / "train"),
        "--validpref", str(out / "raw" / "valid"), "--testpref", str(out / "raw" / "test"), "--joined-dictionary",
        "--destdir", str(data_bin), "--workers", "1"], out / "logs" / "preprocess.log", 1)
    return data_bin


def last_valid(log_text: str) -> dict:
    valid = [json.loads(line.split("| valid | ", 1)[1]) for line in log_text.splitlines() if "| valid | " in line]
    return valid[-1] if valid else {}


def table(results, toy: bool) -> str:
    header = f"{'variant':28s} {'BLEU':>6s} {'sacreBLEU':>9s}" + (f" {'exact':>6s}" if toy else "")
    header += f" {'valid mse':>9s} {'valid anchor_nll':>16s} {'updates':>7s} {'train s':>7s}"
    lines = [header]
    for label, entry in results.items():
        v, m = entry["last_valid"], entry["metrics"]
        line = f"{label:28s} {100 * m['bleu']:6.2f} {100 * m['sacrebleu']:9.2f}"
        if toy:
            line += f" {100 * entry['exact_match']:6.1f}"
        line += (f" {float(v.get('valid_mse', 'nan')):9.4f} {float(v.get('valid_anchor_nll', 'nan')):16.3f}"
                 f" {entry['train']['updates']:7d} {entry['train']['train_seconds']:7.0f}")
        lines.append(line)
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_mutually_exclusive_group(required=True)
    data.add_argument("--toy", action="store_true", help="generate and use the embedded toy task")
    data.add_argument("--data-bin")
    parser.add_argument("--source-lang", default="src")
    parser.add_argument("--target-lang", default="tgt")
    parser.add_argument("--test-sentences", type=int, default=0, help="first N test pairs (needs DATA_BIN/text)")
    parser.add_argument("--max-update", type=int, required=True)
    parser.add_argument("--base-args", default=BASE)
    parser.add_argument("--variants", help="comma-separated indices into the variant list (default: all); "
                        "results of other variants already in OUT/ablation.json are kept")
    parser.add_argument("--parallel", type=int, default=2, help="variants trained at the same time")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    data_bin = toy_data_bin(out) if args.toy else Path(args.data_bin)
    test_bin = test_subset(data_bin, args.source_lang, args.target_lang, args.test_sentences, out, 1) \
        if args.test_sentences else data_bin
    langs = f"--source-lang {args.source_lang} --target-lang {args.target_lang}"
    chosen = list(VARIANTS)
    if args.variants:
        chosen = [chosen[int(i)] for i in args.variants.split(",")]
    names = {label: f"v{list(VARIANTS).index(label)}" for label in chosen}
    runs = [(names[label], f"{args.base_args} {VARIANTS[label]} {langs}") for label in chosen]
    trained = {}
    for i in range(0, len(runs), args.parallel):
        trained.update(train_all(runs[i : i + args.parallel], ["--max-update", str(args.max_update)], out, 1, data_bin))
    json_path = out / "ablation.json"
    results = json.loads(json_path.read_text()) if json_path.exists() else {}
    for label in chosen:
        name = names[label]
        progress(f"decoding {label}")
        gen_file, speed = generate(name, test_bin, trained[name]["checkpoint"], f"--task diffuseq {langs} {DECODE}",
                                   out, 1, "dpm20")
        entry = {"flags": VARIANTS[label], "train": trained[name], "decode": speed, "metrics": metrics_of(gen_file),
                 "last_valid": last_valid((out / "logs" / f"train_{name}.log").with_suffix(".out").read_text())}
        if args.toy:
            entry["exact_match"] = toy_score(str(gen_file))["exact_match"]
        results[label] = entry
    results = {label: results[label] for label in VARIANTS if label in results}
    report = table(results, args.toy)
    print("\n" + report)
    (out / "ablation.txt").write_text(report + "\n")
    json_path.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
