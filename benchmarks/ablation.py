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
from pathlib import Path

from diffuseq_fairseq.dataprep.toy_score import score as toy_score
from diffuseq_fairseq.experiments import fairseq_log, recipes
from diffuseq_fairseq.experiments.report import write_json
from diffuseq_fairseq.experiments.runner import first_pairs, generate, progress, toy_data_bin, train_all
from diffuseq_fairseq.experiments.scoring import metrics_of

# The quickstart's CPU-sized model and optimiser with the paper's objective (no anchor loss).
BASE = recipes.TOY_3X128_PAPER_LOSS.training_args()
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
DECODE = recipes.TOY_3X128_PAPER_LOSS.decoding_args()


def last_valid(log: Path) -> dict:
    valid = fairseq_log.records(log.read_text(), "valid")
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
    test_bin = first_pairs(data_bin, args.source_lang, args.target_lang, args.test_sentences, out, 1) \
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
        gen_file, speed = generate(name, test_bin, trained[name]["checkpoint"], f"{DECODE} {langs}",
                                   out, 1, "dpm20")
        entry = {"flags": VARIANTS[label], "train": trained[name], "decode": speed, "metrics": metrics_of(gen_file),
                 "last_valid": last_valid(out / "logs" / f"train_{name}.out")}
        if args.toy:
            entry["exact_match"] = toy_score(str(gen_file))["exact_match"]
        results[label] = entry
    results = {label: results[label] for label in VARIANTS if label in results}
    report = table(results, args.toy)
    print("\n" + report)
    (out / "ablation.txt").write_text(report + "\n")
    write_json(json_path, results)


if __name__ == "__main__":
    main()
