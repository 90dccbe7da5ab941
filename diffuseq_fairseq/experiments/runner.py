"""Launching fairseq's CLIs as measured subprocesses: training several models at the same time,
decoding with timing, and the small data-bins the experiments decode (a split's first N pairs, the
embedded toy task).

Each fairseq process writes its stdout (fairseq's log and hypotheses) to ``LOG.out``, its stderr to
``LOG`` and its peak resident memory to ``LOG.rss``.
"""
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from . import fairseq_log

USER_DIR = str(Path(__file__).resolve().parents[1])

# Runs a fairseq CLI module and records its peak resident memory (KiB) in $PEAK_RSS_FILE.
MEASURED = (
    "import atexit, os, resource, runpy, sys\n"
    "atexit.register(lambda: open(os.environ['PEAK_RSS_FILE'], 'w').write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))\n"
    "module = sys.argv.pop(1)\n"
    "sys.argv[0] = module\n"
    "runpy.run_module(module, run_name='__main__')\n"
)
# Options of every training run that are plumbing, not recipe: JSON logs the parser reads, no worker processes.
TRAIN_PLUMBING = "--no-progress-bar --log-format json --log-interval 50 --num-workers 0 --no-epoch-checkpoints"


def progress(message: str, prefix: str = "compare") -> None:
    print(f"[{prefix} {time.strftime('%H:%M:%S')}] {message}", flush=True)


def launch(module: str, args: Sequence[str], log_path: Path, threads: int):
    """Start ``python -m module args`` in the background; returns (process, start time)."""
    env = dict(os.environ, PEAK_RSS_FILE=str(log_path.with_suffix(".rss")), OMP_NUM_THREADS=str(threads))
    with open(log_path.with_suffix(".out"), "w") as stdout, open(log_path, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", MEASURED, module, *map(str, args)],
                                stdout=stdout, stderr=stderr, env=env)
    return proc, time.perf_counter()


def finish(module: str, proc, started: float, log_path: Path) -> Tuple[str, float, float]:
    """Wait for a launched run; return (stdout text, seconds, peak RSS in MiB)."""
    proc.wait()
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{module} failed (exit {proc.returncode}); see {log_path} and {log_path.with_suffix('.out')}")
    return log_path.with_suffix(".out").read_text(), seconds, fairseq_log.peak_rss_mib(log_path.with_suffix(".rss"))


def run_fairseq(module: str, args: Sequence[str], log_path: Path, threads: int):
    return finish(module, *launch(module, args, log_path, threads), log_path)


def device_args(device: str) -> List[str]:
    """fairseq runs on the GPU unless told --cpu."""
    return ["--cpu"] if device == "cpu" else []


def training_summary(name: str, out: Path, seconds: float) -> dict:
    """The summary of the finished run ``name`` under ``out`` (see fairseq_log.training_summary)."""
    log_path = out / "logs" / f"train_{name}.log"
    return fairseq_log.training_summary(log_path.with_suffix(".out").read_text(),
                                        str(out / f"ckpt_{name}" / "checkpoint_last.pt"), seconds,
                                        fairseq_log.peak_rss_mib(log_path.with_suffix(".rss")))


def train_all(runs, budget_args: Sequence[str], out: Path, threads: int, data_bin, device: str = "cpu",
              log_prefix: str = "compare") -> Dict[str, dict]:
    """Train every (name, flags) at the same time, each with ``threads`` threads (on a GPU: sharing
    it), so that all get the same machine conditions for the same wall-clock budget."""
    started = {}
    for name, extra in runs:
        # --seed 1 comes before the model's flags, so that a --seed among them overrides it.
        args = [str(data_bin), "--user-dir", USER_DIR, "--seed", "1", *shlex.split(extra), *budget_args,
                "--save-dir", str(out / f"ckpt_{name}"), *device_args(device), *shlex.split(TRAIN_PLUMBING)]
        progress(f"training {name}: {' '.join(args[3:])}", log_prefix)
        started[name] = launch("fairseq_cli.train", args, out / "logs" / f"train_{name}.log", threads)
    results = {}
    for name, _ in runs:
        _, seconds, peak = finish("fairseq_cli.train", *started[name], out / "logs" / f"train_{name}.log")
        results[name] = training_summary(name, out, seconds)
        progress(f"{name}: {results[name]['updates']} updates in {seconds:.0f}s, peak RSS {peak:.0f} MiB", log_prefix)
    return results


def reuse_run(name: str, source: str, out: Path) -> dict:
    """Copy a finished training run (last checkpoint and logs) into ``out`` as the run ``name``: from
    ``DIR``, the run ``name`` of a compare_levt --out; from ``DIR:RUN``, the run RUN of an lr_sweep --out."""
    folder, _, run = source.partition(":")
    source, run = Path(folder), run or name
    checkpoint = source / f"ckpt_{run}" / "checkpoint_last.pt"
    if not checkpoint.exists():
        raise SystemExit(f"no {checkpoint} to reuse")
    (out / f"ckpt_{name}").mkdir(parents=True, exist_ok=True)
    shutil.copy2(checkpoint, out / f"ckpt_{name}" / checkpoint.name)
    (out / "logs").mkdir(exist_ok=True)
    for suffix in (".log", ".out", ".rss"):
        log = source / "logs" / f"train_{run}{suffix}"
        if log.exists():
            shutil.copy2(log, out / "logs" / f"train_{name}{suffix}")
    if (source / "train.json").exists():
        seconds = json.loads((source / "train.json").read_text())[run]["train_seconds"]
    else:  # a sweep's record
        seconds = json.loads((source / "sweep.json").read_text())[run]["minutes"] * 60
    progress(f"{name}: reusing the run of {source}" + (f" ({run})" if run != name else ""))
    return training_summary(name, out, seconds)


def generate_args(data_bin, checkpoint, extra: str, device: str = "cpu", subset: str = "test") -> List[str]:
    """fairseq-generate's arguments: ``extra`` after (so over) the defaults of every decode here."""
    return [str(data_bin), "--user-dir", USER_DIR, "--path", str(checkpoint), "--gen-subset", subset,
            *device_args(device), "--batch-size", "100", "--remove-bpe", "--seed", "1", *shlex.split(extra)]


def _speed(runs) -> dict:
    """The speed record of a decode from its runs' (fairseq's seconds, sentences/s, process seconds, peak RSS MiB):
    the fastest run counts."""
    fairseq_seconds, per_second, seconds, peak = min(runs)
    return {
        "sentences_per_s": per_second,
        "generate_seconds_in_fairseq": fairseq_seconds,
        "generate_seconds_all_runs": [run[0] for run in runs],
        "process_seconds": seconds,
        "peak_rss_mib": peak,
    }


def _measured_run(stdout: str, log_path: Path, seconds: float, peak: float):
    return (*fairseq_log.generate_timing(stdout + log_path.read_text()), seconds, peak)


def generate(name: str, data_bin, checkpoint, extra: str, out: Path, threads: int, tag: str, reuse: bool = False,
             repeats: int = 1, device: str = "cpu", subset: str = "test"):
    """Decode ``subset`` into ``out/gen_{name}_{tag}.txt``; returns (that file, speed record). With
    ``repeats`` > 1 the same (seeded, so identical) decode runs that many times and the fastest
    counts, the usual guard against a one-off stall of a shared machine; with ``reuse`` a finished
    decode is read back instead."""
    args = generate_args(data_bin, checkpoint, extra, device, subset)
    log_path = out / "logs" / f"gen_{name}_{tag}.log"
    gen_file = out / f"gen_{name}_{tag}.txt"
    runs = []
    if reuse and gen_file.exists() and log_path.with_suffix(".rss").exists():  # finished earlier: its last run
        runs.append(_measured_run(gen_file.read_text(), log_path, math.nan,
                                  fairseq_log.peak_rss_mib(log_path.with_suffix(".rss"))))
    else:
        for _ in range(repeats):
            stdout, seconds, peak = run_fairseq("fairseq_cli.generate", args, log_path, threads)
            runs.append(_measured_run(stdout, log_path, seconds, peak))
        gen_file.write_text(stdout)
    return gen_file, _speed(runs)


def generate_parallel(name: str, data_bin, checkpoint, jobs: Dict[str, str], out: Path, threads: int,
                      parallel: int = 2, device: str = "cpu", subset: str = "test") -> Dict[str, Tuple[Path, dict]]:
    """Several decodes of one checkpoint ({tag: options}), ``parallel`` at a time, written as
    ``generate`` writes them; returns {tag: (output file, speed record)}."""
    pending, running, done = list(jobs.items()), {}, {}
    try:
        while pending or running:
            while pending and len(running) < parallel:
                tag, extra = pending.pop(0)
                log_path = out / "logs" / f"gen_{name}_{tag}.log"
                running[tag] = (*launch("fairseq_cli.generate", generate_args(data_bin, checkpoint, extra, device, subset),
                                        log_path, threads), log_path)
            finished = [tag for tag, (proc, _, _) in running.items() if proc.poll() is not None]
            if not finished:
                time.sleep(0.5)
            for tag in finished:
                proc, started, log_path = running.pop(tag)
                stdout, seconds, peak = finish("fairseq_cli.generate", proc, started, log_path)
                gen_file = out / f"gen_{name}_{tag}.txt"
                gen_file.write_text(stdout)
                done[tag] = (gen_file, _speed([_measured_run(stdout, log_path, seconds, peak)]))
    finally:  # a failed decode stops the others
        for proc, _, _ in running.values():
            proc.kill()
            proc.wait()
    return {tag: done[tag] for tag in jobs}


def first_pairs(data_bin: Path, source_lang: str, target_lang: str, count: int, out: Path, threads: int,
                split: str = "test") -> Path:
    """A data-bin holding only the first ``count`` pairs of ``split`` (same dictionary), read from
    DATA_BIN/text/, for CPU-sized runs, with links to the training targets, which --output-vocab
    auto reads."""
    subset = out / (f"test_first_{count}" if split == "test" else f"{split}_first_{count}")
    subset.mkdir(parents=True, exist_ok=True)
    for suffix in ("bin", "idx"):
        train = data_bin / f"train.{source_lang}-{target_lang}.{target_lang}.{suffix}"
        if train.exists() and not (subset / train.name).exists():
            (subset / train.name).symlink_to(train.resolve())
    if (subset / f"{split}.{source_lang}-{target_lang}.{source_lang}.bin").exists():
        return subset
    for lang in (source_lang, target_lang):
        text = data_bin / "text" / f"{split}.{lang}"
        if not text.exists():
            raise SystemExit(f"{text}: missing; the first {count} pairs are read from the data-bin's text/ "
                             "(written by diffuseq-prepare)")
        lines = text.read_text(encoding="utf-8").splitlines()[:count]
        (subset / f"raw.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    run_fairseq("fairseq_cli.preprocess", [
        "--source-lang", source_lang, "--target-lang", target_lang, f"--{split}pref", str(subset / "raw"),
        "--srcdict", str(data_bin / f"dict.{source_lang}.txt"), "--joined-dictionary", "--destdir", str(subset),
        "--workers", "1"], out / "logs" / f"preprocess_{subset.name}.log", threads)
    return subset


def first_lines(paths: Sequence[str], count: int, dest: Path) -> List[str]:
    """Copies of the first ``count`` lines of each file into ``dest`` (references of a first_pairs subset)."""
    dest.mkdir(parents=True, exist_ok=True)
    copies = []
    for path in map(Path, paths):
        with open(path, encoding="utf-8") as f:
            lines = [line for _, line in zip(range(count), f)]
        copy = dest / path.name
        copy.write_text("".join(lines), encoding="utf-8")
        copies.append(str(copy))
    return copies


def toy_data_bin(out: Path, threads: int = 1) -> Path:
    """The quickstart's task (10,000 training pairs, passive-voice targets), binarized into out/data-bin."""
    data_bin = out / "data-bin"
    if (data_bin / "dict.src.txt").exists():
        return data_bin
    progress("writing the toy task")
    subprocess.run([sys.executable, "-m", "diffuseq_fairseq.dataprep.toy_task", str(out / "raw"), "--n-train", "10000",
                    "--n-valid", "100", "--n-test", "200", "--paraphrases", "1"], check=True)
    run_fairseq("fairseq_cli.preprocess", [
        "--source-lang", "src", "--target-lang", "tgt", "--trainpref", str(out / "raw" / "train"),
        "--validpref", str(out / "raw" / "valid"), "--testpref", str(out / "raw" / "test"), "--joined-dictionary",
        "--destdir", str(data_bin), "--workers", "1"], out / "logs" / "preprocess.log", threads)
    return data_bin
