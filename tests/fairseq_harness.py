"""End-to-end helpers for fairseq CLIs, re-created in the style of fairseq's tests/test_binaries.py.

The CLIs run in-process (``fairseq_cli.*.main``) because each subprocess costs seconds of startup;
``run_cli`` is for the cases that need a real process (exit status, stderr, side effects).
"""
import contextlib
import io
import logging
import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

from fairseq import checkpoint_utils, distributed_utils, options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq_cli import generate, interactive, preprocess, train, validate

from diffuseq_fairseq.experiments.recipes import TEST_TINY, TEST_TINY_LEVT

REPO = Path(__file__).resolve().parents[1]
USER_DIR = str(REPO / "diffuseq_fairseq")
# Run options of every in-process training: no progress bar or worker processes, only the last checkpoint.
RUN_FLAGS = ["--no-progress-bar", "--num-workers", "0", "--no-epoch-checkpoints"]

# A DiffuSeq model that trains 2 epochs on the dummy data in seconds.
DIFFUSEQ_TRAIN_FLAGS = ["--user-dir", USER_DIR, *TEST_TINY.train_argv(), *RUN_FLAGS]
# Decoding shared by fairseq-generate and fairseq-interactive.
DIFFUSEQ_DECODE_FLAGS = ["--user-dir", USER_DIR, *TEST_TINY.decode_argv(), "--mbr-candidates", "3", "--nbest", "2",
                         "--num-workers", "0"]
# fairseq 0.12 drops a last batch whose size is not a multiple of --required-batch-size-multiple
# (default 8) in generate/validate/train (facebookresearch/fairseq#5036): 1 keeps every sentence.
FULL_BATCHES = ["--required-batch-size-multiple", "1"]
DIFFUSEQ_GENERATE_FLAGS = DIFFUSEQ_DECODE_FLAGS + FULL_BATCHES + [
    "--gen-subset", "valid", "--batch-size", "16", "--print-step", "--retain-iter-history",
]
# fairseq's own Levenshtein Transformer at toy size (its checkpoints load through the plugin's allowlist).
LEVT_TRAIN_FLAGS = ["--user-dir", USER_DIR, *TEST_TINY_LEVT.train_argv(), *RUN_FLAGS]
LEVT_DECODE_FLAGS = ["--user-dir", USER_DIR, *TEST_TINY_LEVT.decode_argv(), "--num-workers", "0"]
LEVT_GENERATE_FLAGS = LEVT_DECODE_FLAGS + FULL_BATCHES + [
    "--gen-subset", "valid", "--batch-size", "16", "--print-step", "--retain-iter-history",
]


def create_dummy_data(data_dir: Path, num_train: int = 300, num_valid: int = 20, seed: int = 0) -> None:
    """Write {train,valid}.{in,out}: random lowercase letters, the target is the reversed source."""
    rng = random.Random(seed)
    data_dir.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", num_train), ("valid", num_valid)):
        sources = [[chr(rng.randrange(97, 123)) for _ in range(rng.randint(3, 12))] for _ in range(count)]
        (data_dir / f"{split}.in").write_text("".join(" ".join(s) + "\n" for s in sources))
        (data_dir / f"{split}.out").write_text("".join(" ".join(reversed(s)) + "\n" for s in sources))


def preprocess_data(data_dir: Path, dest_dir: Path, joined: bool = True) -> None:
    """fairseq-preprocess in -> out (train and valid splits) into dest_dir."""
    args = [
        "--source-lang", "in", "--target-lang", "out", "--trainpref", str(data_dir / "train"),
        "--validpref", str(data_dir / "valid"), "--destdir", str(dest_dir), "--workers", "1",
    ] + (["--joined-dictionary"] if joined else [])
    preprocess.main(options.get_preprocessing_parser().parse_args(args))


def train_model(data_bin: Path, save_dir: Path, flags: Sequence[str]) -> Path:
    """fairseq-train in-process; returns the path of checkpoint_last.pt."""
    args = options.parse_args_and_arch(
        options.get_training_parser(), [str(data_bin), "--save-dir", str(save_dir), *flags]
    )
    distributed_utils.call_main(convert_namespace_to_omegaconf(args), train.main)
    return save_dir / "checkpoint_last.pt"


@contextlib.contextmanager
def _captured_stdout():
    """Capture stdout into a StringIO and restore the root logger's handlers (fairseq resets them)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            yield buffer
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def validate_model(data_bin: Path, checkpoint: Path, flags: Sequence[str]) -> str:
    """fairseq-validate in-process on the valid subset; returns its log (which fairseq sends to stdout)."""
    args = options.parse_args_and_arch(
        options.get_validation_parser(), [str(data_bin), "--path", str(checkpoint), *flags]
    )
    with _captured_stdout() as out:
        validate.main(args)
    return out.getvalue()


def generate_main(data_bin: Path, checkpoint: Path, flags: Sequence[str]) -> str:
    """fairseq-generate in-process; returns what it prints."""
    args = options.parse_args_and_arch(
        options.get_generation_parser(), [str(data_bin), "--path", str(checkpoint), *flags]
    )
    with _captured_stdout() as out:
        generate.main(args)
    return out.getvalue()


def load_generator(data_bin: Path, checkpoint: Path, flags: Sequence[str]):
    """The generator fairseq-generate would build from ``flags``: task from the command line,
    model from the checkpoint."""
    args = options.parse_args_and_arch(
        options.get_generation_parser(), [str(data_bin), "--path", str(checkpoint), *flags]
    )
    cfg = convert_namespace_to_omegaconf(args)
    task = tasks.setup_task(cfg.task)
    models, _ = checkpoint_utils.load_model_ensemble([str(checkpoint)], task=task)
    return task.build_generator(models, cfg.generation)


def interactive_main(data_bin: Path, checkpoint: Path, lines: Iterable[str], flags: Sequence[str]) -> str:
    """fairseq-interactive in-process with ``lines`` as stdin; returns what it prints."""
    args = options.parse_args_and_arch(
        options.get_interactive_generation_parser(), [str(data_bin), "--path", str(checkpoint), *flags]
    )
    stdin, sys.stdin = sys.stdin, io.StringIO("".join(line + "\n" for line in lines))
    try:
        with _captured_stdout() as out:
            interactive.main(args)
    finally:
        sys.stdin = stdin
    return out.getvalue()


def run_cli(module: str, args: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -m fairseq_cli.<module> args`` in a subprocess, capturing text output."""
    return subprocess.run(
        [sys.executable, "-m", f"fairseq_cli.{module}", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )


def parse_output(text: str) -> Dict[str, Dict[str, List[List[str]]]]:
    """Group fairseq output lines ``X-id\\tfield...`` as {X: {id: [fields, ...]}}, in order."""
    lines: Dict[str, Dict[str, List[List[str]]]] = defaultdict(lambda: defaultdict(list))
    for line in text.splitlines():
        head, _, rest = line.partition("\t")
        kind, dash, sample_id = head.partition("-")
        if dash and len(kind) == 1 and kind.isupper():
            lines[kind][sample_id].append(rest.split("\t"))
    return lines
