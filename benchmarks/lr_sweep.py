"""Learning-rate sweep for DiffuSeq and LevT on one data-bin, chosen on validation BLEU.

Each round trains one DiffuSeq and one LevT learning rate at the same time (one thread each), for a
fixed number of updates per model rather than a wall-clock budget: a shared machine then changes how
long a round takes, not what it learns, so rounds run at different times stay comparable. Pick the
update counts the side by side's wall-clock budget reaches. Validation BLEU (every 200 updates and at
the end, the side by side's validation flags) decides; the test set is never decoded.

    python benchmarks/lr_sweep.py --data-bin data-bin/captions --source-lang src --target-lang tgt \\
        --diffuseq-lrs 1e-3,1.5e-3,2.5e-3 --levt-lrs 7e-4,1e-3,1.5e-3 \\
        --diffuseq-updates 2300 --levt-updates 2700 --out runs/lr_sweep_captions
"""
import argparse
import itertools
import json
from pathlib import Path

from diffuseq_fairseq.experiments.recipes import CPU, LEVT_CPU
from diffuseq_fairseq.experiments.report import write_json
from diffuseq_fairseq.experiments.runner import progress, train_all


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-bin", required=True)
    parser.add_argument("--source-lang", default="src")
    parser.add_argument("--target-lang", default="tgt")
    parser.add_argument("--diffuseq-lrs", default="", help="comma-separated learning rates ('' = none)")
    parser.add_argument("--levt-lrs", default="", help="comma-separated learning rates ('' = none)")
    parser.add_argument("--diffuseq-updates", type=int, default=2300)
    parser.add_argument("--levt-updates", type=int, default=2700)
    parser.add_argument("--diffuseq-task", default=CPU.task, help="task options (e.g. the canvas rule)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per training")
    parser.add_argument("--out", required=True)
    return parser.parse_args(argv)


def runs_of(args):
    """(name, fairseq flags) per training; the last value of a repeated fairseq option wins."""
    langs = f"--source-lang {args.source_lang} --target-lang {args.target_lang} --seed {args.seed}"
    diffuseq = [(f"diffuseq_lr{lr}", f"{args.diffuseq_task} {CPU.train} {CPU.validate} {langs} --lr {lr} "
                 f"--max-update {args.diffuseq_updates}") for lr in filter(None, args.diffuseq_lrs.split(","))]
    levt = [(f"levt_lr{lr}", f"{LEVT_CPU.training_args()} {LEVT_CPU.validate} {langs} --lr {lr} --max-update {args.levt_updates}")
            for lr in filter(None, args.levt_lrs.split(","))]
    # One DiffuSeq and one LevT per round, so both cores stay busy.
    return [[run for run in pair if run] for pair in itertools.zip_longest(diffuseq, levt)]


def summary_row(name, trained):
    curve = trained["valid_curve"]
    final = curve[-1] if curve else {}
    best = max(curve, key=lambda point: point["bleu"]) if curve else {}
    return {"run": name, "updates": trained["updates"], "minutes": trained["train_seconds"] / 60,
            "final_valid_bleu": final.get("bleu"), "final_valid_loss": final.get("loss"),
            "best_valid_bleu": best.get("bleu"), "best_at_updates": best.get("updates")}


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    results_path = out / "sweep.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for round_runs in runs_of(args):
        todo = [run for run in round_runs if run[0] not in results]  # a rerun resumes the sweep
        if not todo:
            continue
        trained = train_all(todo, [], out, args.threads, Path(args.data_bin))
        for name, _ in todo:
            results[name] = summary_row(name, trained[name])
            results[name]["valid_curve"] = trained[name]["valid_curve"]
        write_json(results_path, results)
    print(f"{'run':<22} {'updates':>7} {'minutes':>7} {'final valid BLEU':>16} {'best (at updates)':>18}")
    for row in results.values():
        best = f"{row['best_valid_bleu']:.2f} ({row['best_at_updates']})" if row["best_valid_bleu"] is not None else "-"
        final = f"{row['final_valid_bleu']:.2f}" if row["final_valid_bleu"] is not None else "-"
        print(f"{row['run']:<22} {row['updates']:>7} {row['minutes']:>7.1f} {final:>16} {best:>18}")
    progress(f"wrote {results_path}")


if __name__ == "__main__":
    main()
