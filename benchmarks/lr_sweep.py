"""Learning-rate sweep for DiffuSeq and LevT on one data-bin, chosen on validation BLEU.

Each round trains one DiffuSeq and one LevT learning rate at the same time (one thread each), for a
fixed number of updates per model rather than a wall-clock budget: a shared machine then changes how
long a round takes, not what it learns, so rounds run at different times stay comparable. Pick the
update counts the side by side's wall-clock budget reaches. Validation BLEU (every 200 updates and at
the end, the side by side's validation flags) decides; the test set is never decoded.

With ``--valid-refs`` (a multi-reference task, e.g. the caption paraphrases), each trained model also
decodes the validation split with its recipe's decoding (DiffuSeq: one candidate) and is scored against
every reference; that score decides, since fairseq's single-reference corpus BLEU of a paraphrase is
dominated by its brevity penalty. A rerun with the same --out only scores what is not scored yet.
``--diffuseq-recipe`` (as in compare_levt.py, default ``cpu``) gives DiffuSeq's task, training and decoding
options, each replaceable by its own option. ``--reuse NAME=RUN_DIR`` adds a finished run of scripts/compare_levt.py (its model of NAME's prefix, e.g.
diffuseq_lr1.5e-3 takes RUN_DIR/ckpt_diffuseq) as the sweep's run NAME, scored like the others: the side by
side's learning rate need not be trained again, provided the sweep's update counts are the ones that run made
(both recipes' learning rates follow inverse_sqrt, which does not depend on --max-update).

    python benchmarks/lr_sweep.py --data-bin data-bin/captions --source-lang src --target-lang tgt \\
        --diffuseq-lrs 1e-3,1.5e-3,2.5e-3 --levt-lrs 7e-4,1e-3,1.5e-3 \\
        --diffuseq-updates 2300 --levt-updates 2700 --diffuseq-task "--task diffuseq" \\
        --valid-refs data-bin/captions/refs/valid.ref{1,2,3,4} --out runs/lr_sweep_captions
"""
import argparse
import itertools
import json
from pathlib import Path

from diffuseq_fairseq.experiments import recipes
from diffuseq_fairseq.experiments.recipes import CPU, LEVT_CPU
from diffuseq_fairseq.experiments.report import write_json
from diffuseq_fairseq.experiments.runner import generate, progress, train_all
from diffuseq_fairseq.experiments.scoring import multi_reference_of


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-bin", required=True)
    parser.add_argument("--source-lang", default="src")
    parser.add_argument("--target-lang", default="tgt")
    parser.add_argument("--diffuseq-lrs", default="", help="comma-separated learning rates ('' = none)")
    parser.add_argument("--levt-lrs", default="", help="comma-separated learning rates ('' = none)")
    parser.add_argument("--diffuseq-updates", type=int, default=2300)
    parser.add_argument("--levt-updates", type=int, default=2700)
    parser.add_argument("--diffuseq-recipe", default=CPU.name, choices=recipes.diffuseq_recipe_names(),
                        help="DiffuSeq's recipe: the defaults of the three options below, and its validation")
    parser.add_argument("--diffuseq-task", help="task options, for training and decoding (default: the recipe's)")
    parser.add_argument("--diffuseq-args", help="training options (default: the recipe's)")
    parser.add_argument("--diffuseq-decode", help="decoding options of the validation decode (default: the recipe's)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per training")
    parser.add_argument("--valid-refs", nargs="+", metavar="REF",
                        help="reference files of the valid split (line k = valid id k): score each model's "
                        "decode of the valid split against all of them")
    parser.add_argument("--reuse", nargs="+", default=[], metavar="NAME=RUN_DIR",
                        help="a finished compare_levt.py run as the sweep's run NAME (diffuseq_lrX or levt_lrX)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    recipes.fill_from_recipe(args)
    return args


def reused_run(spec: str, out: Path) -> tuple:
    """(NAME, its summary row) of a finished compare_levt.py run given as NAME=RUN_DIR; its last checkpoint
    is linked as the sweep's ckpt_NAME."""
    name, _, run_dir = spec.partition("=")
    model = name.split("_lr")[0]
    if model not in ("diffuseq", "levt") or not run_dir:
        raise SystemExit(f"--reuse {spec}: give NAME=RUN_DIR with NAME diffuseq_lrX or levt_lrX")
    source = Path(run_dir).resolve()
    checkpoint = source / f"ckpt_{model}" / "checkpoint_last.pt"
    train_json = source / "train.json"
    if not checkpoint.exists() or not train_json.exists():
        raise SystemExit(f"--reuse {spec}: {checkpoint} or {train_json} missing; not a finished compare_levt.py run")
    trained = json.loads(train_json.read_text())[model]
    link = out / f"ckpt_{name}" / "checkpoint_last.pt"
    link.parent.mkdir(parents=True, exist_ok=True)
    if not link.exists():
        link.symlink_to(checkpoint)
    row = summary_row(name, trained)
    row.update(valid_curve=trained["valid_curve"], reused_from=str(source))
    return name, row


def runs_of(args):
    """(name, fairseq flags) per training; the last value of a repeated fairseq option wins."""
    langs = f"--source-lang {args.source_lang} --target-lang {args.target_lang} --seed {args.seed}"
    validation = recipes.get(args.diffuseq_recipe).validate
    diffuseq = [(f"diffuseq_lr{lr}", " ".join(filter(None, (args.diffuseq_task, args.diffuseq_args, validation, langs,
                                                            f"--lr {lr} --max-update {args.diffuseq_updates}"))))
                for lr in filter(None, args.diffuseq_lrs.split(","))]
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


def valid_multi_reference(name: str, checkpoint: str, args, out: Path) -> dict:
    """BLEU, ROUGE-L and sacreBLEU (fractions) of the model's decode of the valid split against every reference."""
    langs = f"--source-lang {args.source_lang} --target-lang {args.target_lang}"
    decoding = (f"{args.diffuseq_task} {args.diffuseq_decode}" if name.startswith("diffuseq") else LEVT_CPU.decoding_args())
    gen_file, _ = generate(name, Path(args.data_bin), checkpoint, f"{decoding} {langs}", out, args.threads, "valid",
                           subset="valid")
    scores = multi_reference_of(gen_file, args.valid_refs)["all"]
    return {key: scores[key] for key in ("bleu", "rouge_l", "sacrebleu", "avg_len")}


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    results_path = out / "sweep.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for spec in args.reuse:
        name, row = reused_run(spec, out)
        results.setdefault(name, row)
    for round_runs in runs_of(args):
        todo = [run for run in round_runs if run[0] not in results]  # a rerun resumes the sweep
        if not todo:
            continue
        trained = train_all(todo, [], out, args.threads, Path(args.data_bin))
        for name, _ in todo:
            results[name] = summary_row(name, trained[name])
            results[name]["valid_curve"] = trained[name]["valid_curve"]
        write_json(results_path, results)
    for name, row in results.items():
        if args.valid_refs and "valid_multi_reference" not in row:
            progress(f"{name}: decoding the valid split, scored against {len(args.valid_refs)} references")
            row["valid_multi_reference"] = valid_multi_reference(name, str(out / f"ckpt_{name}" / "checkpoint_last.pt"),
                                                                 args, out)
            write_json(results_path, results)
    print(f"{'run':<22} {'updates':>7} {'minutes':>7} {'final valid BLEU':>16} {'best (at updates)':>18}"
          f"{'  multi-ref BLEU / ROUGE-L / len' if args.valid_refs else ''}")
    for row in results.values():
        best = f"{row['best_valid_bleu']:.2f} ({row['best_at_updates']})" if row["best_valid_bleu"] is not None else "-"
        final = f"{row['final_valid_bleu']:.2f}" if row["final_valid_bleu"] is not None else "-"
        multi = row.get("valid_multi_reference")
        multi = f"  {100 * multi['bleu']:.2f} / {100 * multi['rouge_l']:.2f} / {multi['avg_len']:.1f}" if multi else ""
        print(f"{row['run']:<22} {row['updates']:>7} {row['minutes']:>7.1f} {final:>16} {best:>18}{multi}")
    progress(f"wrote {results_path}")


if __name__ == "__main__":
    main()
