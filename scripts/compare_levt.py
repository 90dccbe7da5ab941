"""DiffuSeq vs fairseq's Levenshtein Transformer on the same data-bin, under the same budget.

One command: prepare the data once (optional), train both models for the same wall-clock budget
(or number of updates), generate the same test sentences, evaluate with the paper's metrics, and
print one table (quality, diversity over 3 samples, training tokens/s, decoding sentences/s with
and without MBR, peak memory) and both validation BLEU curves against training minutes. Writes
``compare.json``, the paper's plots and the validation curves' plot into --out.

    python scripts/compare_levt.py --data-bin data-bin/multi30k_de_en --source-lang de --target-lang en \\
        --budget-minutes 30 --out runs/compare_multi30k
    python scripts/compare_levt.py --data-bin data-bin/captions --budget-minutes 35 --test-sentences 200 \\
        --refs data-bin/captions/refs/test.ref{1,2,3,4} --out runs/compare_captions

With --refs (reference files aligned with the test ids) both models, copying the source (the file
SPLIT.src beside the references) and the human ceiling are also scored against every reference.
--valid-refs decodes the validation split instead, with its references, to choose decoding options
without the test set (outputs named valid_*). Every phase prints a progress line; fairseq's own
logs go to --out/logs/.
"""
import argparse
import json
import sys
from pathlib import Path

from diffuseq_fairseq.experiments import decodes, recipes, report, runner, scoring
from diffuseq_fairseq.experiments.plots import write_plots
from diffuseq_fairseq.experiments.runner import progress

LEVT = recipes.LEVT_CPU
# The recipe of every Multi30k side by side so far; --diffuseq-recipe cpu_length adds the length predictor.
DEFAULT_RECIPE = recipes.CPU.name


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data (a ready data-bin, or raw input prepared once with diffuseq-prepare)")
    for name in ("--data-bin", "--jsonl-dir", "--trainpref", "--validpref", "--testpref"):
        data.add_argument(name)
    data.add_argument("--source-lang", default="src")
    data.add_argument("--target-lang", default="tgt")
    data.add_argument("--tokenize", default="none", choices=("none", "moses"))
    data.add_argument("--bpe-merges", type=int, default=8000)
    data.add_argument("--split-valid", metavar="N,M", help="with --jsonl-dir: cut a folder holding only "
                      "valid.jsonl into train/valid/test (diffuseq-prepare --split-valid)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--budget-minutes", type=float, help="wall-clock training budget per model")
    budget.add_argument("--max-update", type=int, help="training budget per model in updates")
    parser.add_argument("--test-sentences", type=int, default=0, help="decode only the first N pairs (0 = all)")
    parser.add_argument("--mbr-sizes", default="1,3,10", help="candidate counts for BLEU vs |S| (must include 1)")
    parser.add_argument("--step-counts", default="5,10,20", help="sampling steps for BLEU vs time (|S|=1)")
    parser.add_argument("--diffuseq-recipe", default=DEFAULT_RECIPE, choices=recipes.diffuseq_recipe_names(),
                        help="DiffuSeq's recipe (diffuseq_fairseq/experiments/recipes.py): the defaults of the three "
                        "options below, its validation and its early-stopping decode; with a length predictor "
                        "(cpu_length) give --mbr-sizes as draws per length, e.g. 1,3 for 3 and 9 candidates")
    parser.add_argument("--diffuseq-task", help="task options, for training and decoding (default: the recipe's)")
    parser.add_argument("--diffuseq-args", help="model, criterion and optimiser options (default: the recipe's)")
    parser.add_argument("--levt-args", default=LEVT.training_args())
    parser.add_argument("--diffuseq-lr", help="DiffuSeq's learning rate over its recipe's (e.g. one chosen by "
                        "benchmarks/lr_sweep.py on validation)")
    parser.add_argument("--levt-lr", help="LevT's learning rate over its recipe's")
    parser.add_argument("--no-valid-bleu", action="store_true", help="validation loss only (faster)")
    parser.add_argument("--diffuseq-decode",
                        help="DiffuSeq's decoding options; every decode uses them, with only its figure's variable "
                        "changed (default: the recipe's)")
    parser.add_argument("--levt-decode", default=LEVT.decode)
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per fairseq process")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="train and decode on the CPU, or on the GPU (both trainings share it)")
    parser.add_argument("--train-args", default="",
                        help="training options for both models, after (so over) the recipes' and the validation's, "
                        "e.g. a GPU's batch size: '--max-tokens 8192'")
    parser.add_argument("--timing-repeats", type=int, default=3,
                        help="run the decodes of the headline speed ratio (LevT, DiffuSeq |S|=1 with and without "
                        "early stopping) this many times and keep the fastest")
    parser.add_argument("--skip-training", action="store_true", help="reuse the checkpoints already in --out")
    parser.add_argument("--levt-from", metavar="DIR[:RUN]",
                        help="take LevT's checkpoint and training logs from an earlier --out and train only DiffuSeq: "
                        "for DiffuSeq variants against one LevT run of the same machine and budget; DIR:RUN takes "
                        "the run RUN of a benchmarks/lr_sweep.py --out (e.g. runs/sweep:levt_lr7e-4)")
    parser.add_argument("--diffuseq-from", metavar="DIR[:RUN]", help="the same for DiffuSeq")
    parser.add_argument("--reuse-decodes", action="store_true", help="keep decodes already finished in --out")
    parser.add_argument("--diversity-samplers", default="dpm-solver++,ddim-eta1",
                        help="samplers drawing 3 samples per source for the diversity metrics (Fig. 4): "
                        + ", ".join(decodes.DIVERSITY_SAMPLERS))
    refs = parser.add_mutually_exclusive_group()
    refs.add_argument("--refs", nargs="+", metavar="REF", help="reference files of the test split (line k = test id k)")
    refs.add_argument("--valid-refs", nargs="+", metavar="REF",
                      help="decode the validation split instead of the test split and score it with these references")
    parser.add_argument("--refs-source", help="the source file for the copy-the-source baseline "
                        "(default: SPLIT.src beside the first reference file, if there is one)")
    parser.add_argument("--report-only", action="store_true",
                        help="re-read --out/compare.json and the training logs, score the decodes against --refs again, "
                        "redraw the plots, print the table")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    nothing_trains = args.skip_training or args.report_only or (args.levt_from and args.diffuseq_from)
    if args.budget_minutes is None and args.max_update is None and not nothing_trains:
        parser.error("one of the arguments --budget-minutes --max-update is required")
    if "1" not in args.mbr_sizes.split(","):
        parser.error(f"--mbr-sizes {args.mbr_sizes}: include 1 (the table's |S|=1 column and the speed ratios)")
    recipes.fill_from_recipe(args)
    # fairseq keeps the last value of an option given twice.
    if args.diffuseq_lr:
        args.diffuseq_args += f" --lr {args.diffuseq_lr}"
    if args.levt_lr:
        args.levt_args += f" --lr {args.levt_lr}"
    return args


def diffuseq_recipe(args) -> recipes.Recipe:
    return recipes.get(args.diffuseq_recipe)


def prepare(args, out: Path) -> Path:
    if args.data_bin:
        return Path(args.data_bin)
    from diffuseq_fairseq.dataprep import prepare as prepare_module

    dest = out / "data-bin"
    if not (dest / f"dict.{args.source_lang}.txt").exists():
        progress(f"preparing data into {dest}")
        cli = ["--destdir", str(dest), "--tokenize", args.tokenize, "--bpe-merges", str(args.bpe_merges)]
        if args.jsonl_dir:
            cli += ["--jsonl-dir", args.jsonl_dir] + (["--split-valid", args.split_valid] if args.split_valid else [])
            args.source_lang, args.target_lang = "src", "tgt"
        else:
            cli += ["--trainpref", args.trainpref, "--validpref", args.validpref, "--source-lang", args.source_lang,
                    "--target-lang", args.target_lang] + (["--testpref", args.testpref] if args.testpref else [])
        if prepare_module.main(cli) != 0:
            sys.exit("data preparation failed")
    return dest


def train(args, out: Path, data_bin: Path) -> dict:
    """Both models trained at the same time (or reused): {name: training summary}."""
    langs = f"--source-lang {args.source_lang} --target-lang {args.target_lang}"
    valid = ("", "") if args.no_valid_bleu else (diffuseq_recipe(args).validate, LEVT.validate)
    # fairseq keeps the last value of an option given twice.
    runs = [("diffuseq", f"{args.diffuseq_task} {args.diffuseq_args} {valid[0]} {args.train_args} {langs}"),
            ("levt", f"{args.levt_args} {valid[1]} {args.train_args} {langs}")]
    budget = (["--stop-time-hours", str(args.budget_minutes / 60)] if args.budget_minutes
              else ["--max-update", str(args.max_update)])
    reused = {name: runner.reuse_run(name, source, out)
              for name, source in (("diffuseq", args.diffuseq_from), ("levt", args.levt_from)) if source}
    if args.skip_training:  # re-read the finished runs' logs
        previous = json.loads((out / "train.json").read_text()) if (out / "train.json").exists() else {}
        trained = {name: runner.training_summary(name, out, previous.get(name, {}).get("train_seconds"))
                   for name, _ in runs}
    else:
        trained = runner.train_all([run for run in runs if run[0] not in reused], budget, out, args.threads, data_bin,
                                   args.device)
        trained.update(reused)
        report.write_json(out / "train.json", trained)
    if "--store-ema" in args.diffuseq_args.split():  # decode the EMA weights, which validation measured too
        last = Path(trained["diffuseq"]["checkpoint"])
        ema = last.with_name("checkpoint_ema.pt")
        runner.run_fairseq("diffuseq_fairseq.export_ema", [str(last), str(ema)], out / "logs" / "export_ema.log",
                           args.threads)
        trained["diffuseq"]["checkpoint"] = str(ema)
    return trained


def decode(args, out: Path, data_bin: Path, split: str, results: dict) -> None:
    """LevT's decode, then DiffuSeq's declarative list (decodes.side_by_side), each scored."""
    langs = f"--source-lang {args.source_lang} --target-lang {args.target_lang}"
    prefix = "" if split == "test" else f"{split}_"

    def run(name, checkpoint, flags, tag, timed):
        return runner.generate(name, data_bin, checkpoint, f"{flags} {langs}", out, args.threads, prefix + tag,
                               args.reuse_decodes, args.timing_repeats if timed else 1, args.device, split)

    progress(f"decoding the {split} split with LevT")
    gen_file, speed = run("levt", results["levt"]["train"]["checkpoint"], f"{LEVT.decode_task} {args.levt_decode}",
                          "default", True)
    results["levt"]["decode"] = {"output": str(gen_file), "speed": speed, "metrics": scoring.metrics_of(gen_file),
                                 "deterministic_diversity": scoring.deterministic_diversity(gen_file)}
    diffuseq, done = results["diffuseq"], {}
    for item in decodes.side_by_side([int(s) for s in args.mbr_sizes.split(",")],
                                     [int(s) for s in args.step_counts.split(",")],
                                     args.diversity_samplers.split(","), diffuseq_recipe(args).early_stop):
        flags = item.flags(args.diffuseq_decode)
        identity = item.identity(args.diffuseq_decode)
        if identity in done:  # the same decode as an earlier one (Fig. 6's point at the table's step count)
            diffuseq.setdefault(item.section, {})[item.key] = done[identity]
            continue
        progress(f"decoding the {split} split with DiffuSeq ({item.section} {item.key}): {flags}")
        gen_file, speed = run("diffuseq", diffuseq["train"]["checkpoint"], f"{args.diffuseq_task} {flags}", item.tag,
                              item.timed)
        entry = {"options": flags, "output": str(gen_file), "speed": speed, "metrics": scoring.metrics_of(gen_file)}
        diffuseq.setdefault(item.section, {})[item.key] = done[identity] = entry
        steps = decodes.options_of(flags).get("--diffusion-steps")
        if item.history and steps:
            diffuseq["history"], diffuseq["history_decode"] = scoring.history_curve(gen_file, int(steps)), flags


def score_references(args, out: Path, split: str, results: dict) -> dict:
    """Both models' headline decodes, copying the source and the human ceiling against every reference."""
    paths = args.valid_refs or args.refs
    source = args.refs_source or str(Path(paths[0]).with_name(f"{split}.src"))
    if not Path(source).exists():
        progress(f"no {source}: no copy-the-source baseline")
        source = None
    if args.test_sentences:  # the decoded subset holds the first N ids
        copies = runner.first_lines(paths + ([source] if source else []), args.test_sentences,
                                    out / f"{split}_first_{args.test_sentences}_refs")
        paths, source = copies[:len(paths)], (copies[-1] if source else None)
    progress(f"scoring against {len(paths)} references per sentence")
    levt_file = Path(results["levt"]["decode"]["output"])
    return {
        "split": split, "files": list(args.valid_refs or args.refs), "references_per_source": len(paths),
        "diffuseq": {size: scoring.multi_reference_of(Path(entry["output"]), paths)
                     for size, entry in results["diffuseq"]["mbr"].items()},
        "diversity": {sampler: scoring.multi_reference_of(Path(entry["output"]), paths)
                      for sampler, entry in results["diffuseq"].get("diversity", {}).items()},
        "levt": scoring.multi_reference_of(levt_file, paths),
        "baselines": scoring.reference_baselines(paths, levt_file, source),
    }


def write_report(results: dict, out: Path, prefix: str, early_stop: str) -> None:
    results["plots"] = write_plots(results, out, prefix)
    report.write_json(out / f"{prefix}compare.json", results)
    print(report.table(report.strict(results), early_stop))
    progress(f"wrote {out / f'{prefix}compare.json'} and {len(results['plots'])} plots")


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    split = "valid" if args.valid_refs else "test"
    prefix = "" if split == "test" else f"{split}_"
    if args.report_only:
        results = json.loads((out / f"{prefix}compare.json").read_text())
        for name in ("diffuseq", "levt"):
            results[name]["train"] = runner.training_summary(name, out, results[name]["train"]["train_seconds"])
        if args.refs or args.valid_refs:  # scoring only: the decodes are in --out
            results["multi_reference"] = score_references(args, out, split, results)
        write_report(results, out, prefix, diffuseq_recipe(args).early_stop)
        return
    data_bin = prepare(args, out)
    if args.jsonl_dir:
        args.source_lang, args.target_lang = "src", "tgt"
    results = {"config": vars(args), "diffuseq": {}, "levt": {}}
    for name, summary in train(args, out, data_bin).items():
        results[name]["train"] = summary
    decode_bin = data_bin
    if args.test_sentences:
        decode_bin = runner.first_pairs(data_bin, args.source_lang, args.target_lang, args.test_sentences, out,
                                        args.threads, split)
    decode(args, out, decode_bin, split, results)
    if args.refs or args.valid_refs:
        results["multi_reference"] = score_references(args, out, split, results)
    write_report(results, out, prefix, diffuseq_recipe(args).early_stop)


if __name__ == "__main__":
    main()
