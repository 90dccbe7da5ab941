"""DiffuSeq vs fairseq's Levenshtein Transformer on the same data-bin, under the same budget.

One command: prepare the data once (optional), train both models for the same wall-clock budget
(or number of updates), generate the same test sentences, evaluate with the paper's metrics, and
print one table (quality, diversity over 3 samples, training tokens/s, decoding sentences/s with
and without MBR, peak memory) and both validation BLEU curves against training minutes. Writes
``compare.json``, the paper's plots and the validation curves' plot into --out.

    python scripts/compare_levt.py --data-bin data-bin/multi30k_de_en --source-lang de --target-lang en \\
        --budget-minutes 30 --out runs/compare_multi30k
    python scripts/compare_levt.py --jsonl-dir ../shared/data/qqp --bpe-merges 2000 --max-update 200 --out runs/qqp

Every phase prints a progress line; fairseq's own logs go to --out/logs/.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from diffuseq_fairseq.evaluation.metrics import div_4, evaluate, sentence_bleu_avg
from diffuseq_fairseq.evaluation.readers import read_file

from compare_report import plot, table

HERE = Path(__file__).resolve().parent
USER_DIR = str(HERE.parent / "diffuseq_fairseq")

# Runs a fairseq CLI module and records its peak resident memory (KiB) in $PEAK_RSS_FILE.
MEASURED = (
    "import atexit, os, resource, runpy, sys\n"
    "atexit.register(lambda: open(os.environ['PEAK_RSS_FILE'], 'w').write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))\n"
    "module = sys.argv.pop(1)\n"
    "sys.argv[0] = module\n"
    "runpy.run_module(module, run_name='__main__')\n"
)

# CPU-budget recipes: small batches (about 70 pairs) give many updates in a short wall-clock budget.
# DiffuSeq uses the options that won the toy-task ablation (benchmarks/ablation.py): the anchor loss,
# embedding normalisation and the source encoded once; and target positions restarted at 0, which at 500
# Multi30k updates matched, at the high-noise steps, the paper's layout at 812 (benchmarks/denoise_by_step.py).
# Task options, given to training and repeated when decoding (the canvas rule would also be read
# back from the checkpoint):
# 1.2|x|+4 holds 99.8 % of Multi30k's targets with 20 % fewer positions than the default 1.5|x|+5,
# which is sized for any language pair.
DIFFUSEQ_TASK = "--task diffuseq --canvas-len-a 1.2 --canvas-len-b 4"
# --rounding-loss-weight 0: under --embed-norm the rounding term is exactly 0, so it is not computed.
# No --self-condition: on one machine, against the same LevT runs, two seeds without it scored MBR 10
# 6.37 / 6.80 BLEU against 6.33 / 6.09 with it, in 8 % more updates (README: same-machine A/B).
# --min-timestep-fraction 0.8: below 0.7·T the noisy target still rounds back to 85 % of its words, so
# training there teaches little. The same two seeds scored MBR 10 8.85 / 7.84 clipped at 0.8, 8.28 / 7.08
# at 0.7 and 6.37 / 6.80 unclipped (README: noise-scale clipping).
# --label-smoothing 0.1 on the anchor CE, as LevT's recipe smooths its own: MBR 10 8.53 / 8.75 against
# 8.85 / 7.84 (mean MBR 10 / LevT 0.931 against 0.900), |S|=1 7.63 / 8.86 against 8.03 / 7.58.
# --lr 1.5e-3: the budget is about 1,200 updates, and the larger step learns faster. MBR 10 / LevT 1.029 / 1.095
# against 0.936 / 1.041 at 1e-3 and a mean of 0.952 over six end points at 7e-4; validation BLEU at 1,000 updates
# 10.29 / 9.38 against 9.00 / 9.37 and 8.03 / 8.13 (README: learning rate).
# Not in it: --glance-rate 0.3 (GLAT) ties with MBR 10 and loses 0.8 BLEU at |S|=1 over two seeds (README).
DIFFUSEQ_TRAIN = (
    "--arch diffuseq_tiny --criterion diffuseq_loss --optimizer adam --adam-betas (0.9,0.98) "
    "--lr 1.5e-3 --lr-scheduler inverse_sqrt --warmup-updates 300 --max-tokens 1024 --dropout 0.1 "
    "--attention-dropout 0.0 --anchor-loss-weight 1.0 --rounding-loss-weight 0 --embed-norm --encode-source-once "
    "--target-positions restart --min-timestep-fraction 0.8 --label-smoothing 0.1"
)
# LevT tuned as far as DiffuSeq: --lr 1e-3. At this budget (35 CPU minutes, Multi30k, 200 test sentences) it scored
# BLEU 15.88 / 16.29 in two seeds against 9.25 / 9.31 at fairseq's 5e-4; at 1.5e-3 one seed of two collapsed (README).
LEVT_TRAIN = (
    "--task translation_lev_bleu --arch levenshtein_transformer --criterion nat_loss --noise random_delete "
    "--share-all-embeddings --encoder-layers 2 --decoder-layers 2 --encoder-embed-dim 256 --decoder-embed-dim 256 "
    "--encoder-ffn-embed-dim 1024 --decoder-ffn-embed-dim 1024 --encoder-attention-heads 4 --decoder-attention-heads 4 "
    "--optimizer adam --adam-betas (0.9,0.98) --lr 1e-3 --lr-scheduler inverse_sqrt --warmup-updates 300 "
    "--max-tokens 1024 --dropout 0.1 --apply-bert-init --label-smoothing 0.1"
)
# Validation BLEU every 200 updates and at each epoch's end on the same 256 shortest valid sentences for both
# (fairseq's first two length-sorted batches of 128, with no token cap to shrink them differently per model).
# LevT validates through the plugin's translation_lev_bleu, which restores fairseq's dropped --eval-bleu.
VALID_BLEU = (
    "--eval-bleu --eval-bleu-remove-bpe --batch-size-valid 128 --max-tokens-valid 65536 --max-valid-steps 2 "
    "--validate-interval-updates 200"
)
DIFFUSEQ_VALID = VALID_BLEU + """ --eval-bleu-args '{"sampler": "dpm-solver++", "diffusion_steps": 10}'"""
LEVT_VALID = VALID_BLEU + """ --eval-bleu-args '{"iter_decode_max_iter": 9, "iter_decode_eos_penalty": 0}'"""
# Shown steps floored at 0.95·T (DINOISER; from v26): +0.07 to +0.79 BLEU in 7 of 8 decodes of 1,000 sentences. No
# rounding (from v35): +0.98 / +0.62 BLEU at |S|=1 every step on two seeds, MBR 10 +0.90 / -0.05 (shown_floor.sh, README).
DIFFUSEQ_DECODE = "--sampler dpm-solver++ --diffusion-steps 20 --shown-timestep-fraction 0.95 --rounding none"
# LevT's rule (fairseq's iterative refinement finishes a sentence once an iteration leaves its output unchanged), with
# the paper's rounding: unrounded words settle too early (v34, |S|=1: 9.41 BLEU against 11.63).
EARLY_STOP = "--stop-when-stable 1 --rounding l2"
# fairseq 0.12 drops a final batch smaller than --required-batch-size-multiple (fairseq#5036).
LEVT_DECODE = "--iter-decode-max-iter 9 --iter-decode-eos-penalty 0 --beam 1 --required-batch-size-multiple 1"


def progress(message: str) -> None:
    print(f"[compare {time.strftime('%H:%M:%S')}] {message}", flush=True)


def launch(module: str, args, log_path: Path, threads: int):
    """Start ``python -m module args``: stdout (fairseq's log and hypotheses) to LOG.out, stderr to
    LOG, peak RSS to LOG.rss. Returns (process, start time)."""
    env = dict(os.environ, PEAK_RSS_FILE=str(log_path.with_suffix(".rss")), OMP_NUM_THREADS=str(threads))
    with open(log_path.with_suffix(".out"), "w") as stdout, open(log_path, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", MEASURED, module, *args], stdout=stdout, stderr=stderr, env=env)
    return proc, time.perf_counter()


def finish(module: str, proc, started: float, log_path: Path):
    """Wait for a launched run; return (stdout text, seconds, peak RSS in MiB)."""
    proc.wait()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{module} failed (exit {proc.returncode}); see {log_path} and {log_path.with_suffix('.out')}")
    peak_file = log_path.with_suffix(".rss")
    peak = int(peak_file.read_text()) / 1024 if peak_file.exists() else float("nan")
    return log_path.with_suffix(".out").read_text(), seconds, peak


def run_fairseq(module: str, args, log_path: Path, threads: int):
    return finish(module, *launch(module, args, log_path, threads), log_path)


def training_summary(name: str, out: Path, seconds: float):
    """Updates, tokens/s, peak RSS and the validation curve, read from a finished run's logs."""
    log_path = out / "logs" / f"train_{name}.log"
    text = log_path.with_suffix(".out").read_text()
    epochs = [json.loads(m) for m in re.findall(r"\| train \| (\{.*\})", text)]
    inner = [json.loads(m) for m in re.findall(r"\| train_inner \| (\{.*\})", text)]
    valid = [json.loads(m) for m in re.findall(r"\| valid \| (\{.*\})", text)]
    # fairseq's validation records carry no clock: their minutes come from the log timestamps.
    started = min(log_times(text, ""), default=0.0)
    valid_minutes = [(stamp - started) / 60 for stamp in log_times(text, "valid")]
    # With --eval-bleu on, fairseq logs no BLEU when the hypotheses hold no words at all: that is 0.
    no_bleu = 0.0 if "'eval_bleu': True" in text else float("nan")
    # Per-epoch summaries, plus the train_inner intervals of an epoch cut by --stop-time-hours.
    wps = [float(e["train_wps"]) for e in epochs] + [float(e["wps"]) for e in inner]
    updates = max([int(e["train_num_updates"]) for e in epochs] + [int(e["num_updates"]) for e in inner], default=0)
    peak_file = log_path.with_suffix(".rss")
    return {
        "checkpoint": str(out / f"ckpt_{name}" / "checkpoint_last.pt"),
        "train_seconds": seconds,
        "updates": updates,
        "train_tokens_per_s": sum(wps) / len(wps) if wps else float("nan"),
        "train_peak_rss_mib": int(peak_file.read_text()) / 1024 if peak_file.exists() else float("nan"),
        "valid_curve": [{"updates": int(v.get("valid_num_updates", 0)), "loss": float(v["valid_loss"]),
                         "bleu": float(v.get("valid_bleu", no_bleu)), "minutes": minutes}
                        for v, minutes in zip(valid, valid_minutes)],
    }


def log_times(text: str, logger: str) -> list:
    """Epoch seconds of the fairseq log lines written by ``logger`` (any logger if empty)."""
    pattern = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \| \w+ \| " + (re.escape(logger) + r" \|" if logger else "")
    return [time.mktime(time.strptime(stamp, "%Y-%m-%d %H:%M:%S")) for stamp in re.findall(pattern, text, re.MULTILINE)]


def device_args(device: str) -> list:
    """fairseq runs on the GPU unless told --cpu."""
    return ["--cpu"] if device == "cpu" else []


def train_all(runs, budget_args, out: Path, threads: int, data_bin, device: str = "cpu"):
    """Train every (name, flags) at the same time, each with ``threads`` threads (on a GPU: sharing
    it), so both models get the same machine conditions for the same wall-clock budget."""
    started = {}
    for name, extra in runs:
        # --seed 1 comes before the model's flags, so that a --seed among them overrides it.
        args = [str(data_bin), "--user-dir", USER_DIR, "--seed", "1", *shlex.split(extra), *budget_args,
                "--save-dir", str(out / f"ckpt_{name}"), *device_args(device), "--no-progress-bar", "--log-format", "json",
                "--log-interval", "50", "--num-workers", "0", "--no-epoch-checkpoints"]
        progress(f"training {name}: {' '.join(args[3:])}")
        started[name] = launch("fairseq_cli.train", args, out / "logs" / f"train_{name}.log", threads)
    results = {}
    for name, _ in runs:
        _, seconds, peak = finish("fairseq_cli.train", *started[name], out / "logs" / f"train_{name}.log")
        results[name] = training_summary(name, out, seconds)
        progress(f"{name}: {results[name]['updates']} updates in {seconds:.0f}s, peak RSS {peak:.0f} MiB")
    return results


def generate(name, data_bin, checkpoint, extra, out: Path, threads: int, tag: str, reuse: bool = False,
             repeats: int = 1, device: str = "cpu"):
    """Decode the test set; with ``repeats`` > 1 run the same (seeded, so identical) decode that many
    times and keep the fastest, the usual guard against a one-off stall of a shared machine."""
    args = [str(data_bin), "--user-dir", USER_DIR, "--path", checkpoint, "--gen-subset", "test", *device_args(device),
            "--batch-size", "100", "--remove-bpe", "--seed", "1", *shlex.split(extra)]
    log_path = out / "logs" / f"gen_{name}_{tag}.log"
    gen_file = out / f"gen_{name}_{tag}.txt"
    runs = []  # (fairseq's seconds, sentences/s, process seconds, peak RSS MiB) per run
    if reuse and gen_file.exists() and log_path.with_suffix(".rss").exists():  # finished earlier: its last run
        stdout = gen_file.read_text()
        runs.append((*_fairseq_timing(stdout + log_path.read_text()), float("nan"),
                     int(log_path.with_suffix(".rss").read_text()) / 1024))
    else:
        for _ in range(repeats):
            stdout, seconds, peak = run_fairseq("fairseq_cli.generate", args, log_path, threads)
            runs.append((*_fairseq_timing(stdout + log_path.read_text()), seconds, peak))
        gen_file.write_text(stdout)
    fairseq_seconds, per_second, seconds, peak = min(runs)
    return gen_file, {
        "sentences_per_s": per_second,
        "generate_seconds_in_fairseq": fairseq_seconds,
        "generate_seconds_all_runs": [run[0] for run in runs],
        "process_seconds": seconds,
        "peak_rss_mib": peak,
    }


def _fairseq_timing(text: str):
    """(seconds, sentences/s) from fairseq-generate's "Translated N sentences ... in Xs (Y sentences/s"."""
    footer = re.search(r"Translated [\d,]+ sentences .* in ([\d.]+)s \(([\d.]+) sentences/s", text)
    return (float(footer.group(1)), float(footer.group(2))) if footer else (float("nan"), float("nan"))


def metrics_of(gen_file: Path):
    generations = read_file(str(gen_file))
    return evaluate(generations.selected, generations.references, generations.candidates)


def history_curve(gen_file: Path, steps: int):
    """BLEU of the MBR pick and div-4 of all candidates at every reverse step (E- lines, Fig. 5)."""
    generations = read_file(str(gen_file))
    references = dict(zip(generations.ids, generations.references))
    per_id = {}
    for line in gen_file.read_text().splitlines():
        match = re.match(r"E-(\d+)_(\d+)\t?(.*)$", line)
        if match:
            per_id.setdefault(int(match.group(1)), []).append(match.group(3).replace("@@ ", ""))
    curve = []
    for step in range(steps):
        picks, refs, sets = [], [], []
        for sid, lines in per_id.items():
            candidates = lines[step::steps]  # hypotheses print their E- lines one after another
            picks.append(candidates[0])
            refs.append(references[sid])
            sets.append(candidates)
        curve.append({"step": step + 1, "bleu": sentence_bleu_avg(picks, refs), "div_4": div_4(sets)})
    return curve


def test_subset(data_bin: Path, source_lang: str, target_lang: str, count: int, out: Path, threads: int) -> Path:
    """A data-bin holding only the first ``count`` test pairs (same dictionary), for CPU-sized runs, and
    links to the training targets, which --output-vocab auto reads."""
    text = data_bin / "text"
    subset = out / f"test_first_{count}"
    subset.mkdir(parents=True, exist_ok=True)
    for suffix in ("bin", "idx"):
        train = data_bin / f"train.{source_lang}-{target_lang}.{target_lang}.{suffix}"
        if train.exists() and not (subset / train.name).exists():
            (subset / train.name).symlink_to(train.resolve())
    if (subset / f"test.{source_lang}-{target_lang}.{source_lang}.bin").exists():
        return subset
    for lang in (source_lang, target_lang):
        lines = (text / f"test.{lang}").read_text(encoding="utf-8").splitlines()[:count]
        (subset / f"raw.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run_fairseq("fairseq_cli.preprocess", [
        "--source-lang", source_lang, "--target-lang", target_lang, "--testpref", str(subset / "raw"),
        "--srcdict", str(data_bin / f"dict.{source_lang}.txt"), "--joined-dictionary", "--destdir", str(subset),
        "--workers", "1"], out / "logs" / "preprocess_subset.log", threads)
    return subset


def reuse_run(name: str, source: Path, out: Path) -> dict:
    """Copy a finished training run (last checkpoint and logs) of ``source`` into ``out``."""
    checkpoint = source / f"ckpt_{name}" / "checkpoint_last.pt"
    if not checkpoint.exists():
        sys.exit(f"--levt-from: no {checkpoint}")
    (out / f"ckpt_{name}").mkdir(exist_ok=True)
    shutil.copy2(checkpoint, out / f"ckpt_{name}" / checkpoint.name)
    for suffix in (".log", ".out", ".rss"):
        log = source / "logs" / f"train_{name}{suffix}"
        if log.exists():
            shutil.copy2(log, out / "logs" / log.name)
    seconds = json.loads((source / "train.json").read_text())[name]["train_seconds"]
    progress(f"{name}: reusing the run of {source}")
    return training_summary(name, out, seconds)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = parser.add_argument_group("data (a ready data-bin, or raw input prepared once with diffuseq-prepare)")
    data.add_argument("--data-bin")
    data.add_argument("--jsonl-dir")
    data.add_argument("--trainpref")
    data.add_argument("--validpref")
    data.add_argument("--testpref")
    data.add_argument("--source-lang", default="src")
    data.add_argument("--target-lang", default="tgt")
    data.add_argument("--tokenize", default="none", choices=("none", "moses"))
    data.add_argument("--bpe-merges", type=int, default=8000)
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--budget-minutes", type=float, help="wall-clock training budget per model")
    budget.add_argument("--max-update", type=int, help="training budget per model in updates")
    parser.add_argument("--test-sentences", type=int, default=0, help="use only the first N test pairs (0 = all)")
    parser.add_argument("--mbr-sizes", default="1,3,10", help="candidate counts for BLEU vs |S| (must include 1)")
    parser.add_argument("--step-counts", default="5,10,20", help="sampling steps for BLEU vs time (|S|=1)")
    parser.add_argument("--diffuseq-task", default=DIFFUSEQ_TASK, help="task options, for training and decoding")
    parser.add_argument("--diffuseq-args", default=DIFFUSEQ_TRAIN, help="model, criterion and optimiser options")
    parser.add_argument("--levt-args", default=LEVT_TRAIN)
    parser.add_argument("--no-valid-bleu", action="store_true", help="validation loss only (faster)")
    parser.add_argument("--diffuseq-decode", default=DIFFUSEQ_DECODE)
    parser.add_argument("--levt-decode", default=LEVT_DECODE)
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
    parser.add_argument("--levt-from", metavar="DIR",
                        help="take LevT's checkpoint and training logs from an earlier --out and train only DiffuSeq: "
                        "for DiffuSeq variants against one LevT run of the same machine and budget")
    parser.add_argument("--reuse-decodes", action="store_true", help="keep decodes already finished in --out")
    parser.add_argument("--diversity-samplers", default="dpm-solver++,ddim-eta1",
                        help="samplers drawing 3 samples per source for the diversity metrics (Fig. 4)")
    parser.add_argument("--report-only", action="store_true",
                        help="re-read --out/compare.json and the training logs, redraw the plots, print the table")
    parser.add_argument("--out", required=True)
    return parser.parse_args(argv)


def prepare(args, out: Path) -> Path:
    if args.data_bin:
        return Path(args.data_bin)
    from diffuseq_fairseq.dataprep import prepare as prepare_module

    dest = out / "data-bin"
    if not (dest / f"dict.{args.source_lang}.txt").exists():
        progress(f"preparing data into {dest}")
        cli = ["--destdir", str(dest), "--tokenize", args.tokenize, "--bpe-merges", str(args.bpe_merges)]
        if args.jsonl_dir:
            cli += ["--jsonl-dir", args.jsonl_dir]
            args.source_lang, args.target_lang = "src", "tgt"
        else:
            cli += ["--trainpref", args.trainpref, "--validpref", args.validpref, "--source-lang", args.source_lang,
                    "--target-lang", args.target_lang] + (["--testpref", args.testpref] if args.testpref else [])
        if prepare_module.main(cli) != 0:
            sys.exit("data preparation failed")
    return dest


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    if args.report_only:
        results = json.loads((out / "compare.json").read_text())
        for name in ("diffuseq", "levt"):
            results[name]["train"] = training_summary(name, out, results[name]["train"]["train_seconds"])
        results["plots"] = plot(results, out)
        (out / "compare.json").write_text(json.dumps(results, indent=2))
        print(table(results, EARLY_STOP))
        return
    data_bin = prepare(args, out)
    if args.jsonl_dir:
        args.source_lang, args.target_lang = "src", "tgt"
    test_bin = data_bin
    if args.test_sentences:
        test_bin = test_subset(data_bin, args.source_lang, args.target_lang, args.test_sentences, out, args.threads)
    budget = (["--stop-time-hours", str(args.budget_minutes / 60)] if args.budget_minutes
              else ["--max-update", str(args.max_update)])
    langs = ["--source-lang", args.source_lang, "--target-lang", args.target_lang]
    results = {"config": vars(args), "diffuseq": {}, "levt": {}}
    valid = ("", "") if args.no_valid_bleu else (DIFFUSEQ_VALID, LEVT_VALID)
    # fairseq keeps the last value of an option given twice.
    runs = [("diffuseq", f"{args.diffuseq_task} {args.diffuseq_args} {valid[0]} {args.train_args} {' '.join(langs)}"),
            ("levt", f"{args.levt_args} {valid[1]} {args.train_args} {' '.join(langs)}")]
    reused = {}
    if args.levt_from:
        reused["levt"] = reuse_run("levt", Path(args.levt_from), out)
    if args.skip_training:  # re-read the finished runs' logs
        previous = json.loads((out / "train.json").read_text()) if (out / "train.json").exists() else {}
        trained = {name: training_summary(name, out, previous.get(name, {}).get("train_seconds", float("nan")))
                   for name, _ in runs}
    else:
        trained = train_all([run for run in runs if run[0] not in reused], budget, out, args.threads, data_bin,
                            args.device)
        trained.update(reused)
        (out / "train.json").write_text(json.dumps(trained, indent=2))
    for name, _ in runs:
        results[name]["train"] = trained[name]
    if "--store-ema" in args.diffuseq_args.split():
        # Decode the EMA weights, which validation measured too.
        last = Path(trained["diffuseq"]["checkpoint"])
        ema = last.with_name("checkpoint_ema.pt")
        run_fairseq("diffuseq_fairseq.export_ema", [str(last), str(ema)], out / "logs" / "export_ema.log", args.threads)
        results["diffuseq"]["train"]["checkpoint"] = str(ema)

    progress("decoding with LevT")
    gen_file, speed = generate("levt", test_bin, results["levt"]["train"]["checkpoint"],
                               f"--task translation_lev {args.levt_decode} {' '.join(langs)}", out, args.threads, "default",
                               args.reuse_decodes, args.timing_repeats, args.device)
    results["levt"]["decode"] = {"speed": speed, "metrics": metrics_of(gen_file)}

    diffuseq = results["diffuseq"]
    checkpoint = diffuseq["train"]["checkpoint"]
    base = f"{args.diffuseq_task} {' '.join(langs)}"
    diffuseq["mbr"] = {}
    for size in [int(s) for s in args.mbr_sizes.split(",")]:
        progress(f"decoding with DiffuSeq, {args.diffuseq_decode}, MBR over {size} candidate(s)")
        gen_file, speed = generate("diffuseq", test_bin, checkpoint, f"{base} {args.diffuseq_decode} --mbr-candidates {size}",
                                   out, args.threads, f"mbr{size}", args.reuse_decodes,
                                   args.timing_repeats if size == 1 else 1, args.device)
        diffuseq["mbr"][str(size)] = {"speed": speed, "metrics": metrics_of(gen_file)}
    diffuseq["early_stop"] = {}
    for size in (1, 10):
        options = f"{EARLY_STOP} --mbr-candidates {size}"
        progress(f"decoding with DiffuSeq, {args.diffuseq_decode} {options}")
        gen_file, speed = generate("diffuseq", test_bin, checkpoint, f"{base} {args.diffuseq_decode} {options}",
                                   out, args.threads, f"stop{size}", args.reuse_decodes,
                                   args.timing_repeats if size == 1 else 1, args.device)
        diffuseq["early_stop"][f"stop{size}"] = {"options": options, "speed": speed, "metrics": metrics_of(gen_file)}
    diffuseq["diversity"] = {}
    diversity = {"dpm-solver++": ("dpm-solver++", "--sampler dpm-solver++"),
                 "ddim-eta1": ("ddim eta=1", "--sampler ddim --ddim-eta 1")}
    for label, sampler in (diversity[key] for key in args.diversity_samplers.split(",")):
        progress(f"decoding 3 samples per source with {label} (diversity, reverse-process history)")
        history = "--retain-iter-history" if label == "dpm-solver++" else ""
        gen_file, speed = generate("diffuseq", test_bin, checkpoint,
                                   f"{base} {sampler} --diffusion-steps 20 --mbr-candidates 3 --nbest 3 {history}",
                                   out, args.threads, "div_" + label.split()[0], args.reuse_decodes,
                                   device=args.device)
        diffuseq["diversity"][label] = {"speed": speed, "metrics": metrics_of(gen_file)}
        if history:
            diffuseq["history"] = history_curve(gen_file, 20)
    diffuseq["steps"] = {}
    for steps in [int(s) for s in args.step_counts.split(",")]:
        if args.diffuseq_decode.split() == ["--sampler", "dpm-solver++", "--diffusion-steps", str(steps)]:
            diffuseq["steps"][str(steps)] = diffuseq["mbr"]["1"]  # the same decode as |S|=1 above
            continue
        progress(f"decoding with DiffuSeq, dpm-solver++ {steps} steps")
        gen_file, speed = generate("diffuseq", test_bin, checkpoint, f"{base} --sampler dpm-solver++ --diffusion-steps {steps}",
                                   out, args.threads, f"steps{steps}", args.reuse_decodes,
                                   device=args.device)
        diffuseq["steps"][str(steps)] = {"speed": speed, "metrics": metrics_of(gen_file)}

    results["plots"] = plot(results, out)
    (out / "compare.json").write_text(json.dumps(results, indent=2))
    print(table(results, EARLY_STOP))
    progress(f"wrote {out / 'compare.json'} and {len(results['plots'])} plots")


if __name__ == "__main__":
    main()
