"""Shared pieces of the training-reliability tests: real fairseq-train subprocesses on tiny
reversal data, log parsing, checkpoint inspection, and a driver around fairseq_cli.train that can
dump the importance sampler per rank and inject a NaN loss.

Every training run is a subprocess with one intra-op thread, so runs are deterministic and two can
share the two CPU cores.
"""
import os
import random
import re
import shlex
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import diffuseq_fairseq  # noqa: F401  (allowlists fairseq's checkpoint globals for weights_only)
from diffuseq_fairseq.experiments import fairseq_log
from diffuseq_fairseq.experiments.recipes import TEST_TINY

REPO = Path(__file__).resolve().parents[1]
USER_DIR = REPO / "diffuseq_fairseq"
T = 20  # small T: the importance sampler warms up (10 losses per step) within ~15 updates

MODEL_ARGS = [
    "--user-dir", str(USER_DIR), *shlex.split(TEST_TINY.training_args()), "--cpu", "--no-progress-bar",
    "--num-workers", "0", "--seed", "1", "--log-format", "json", "--log-interval", "1",
]

SAVED_RE = re.compile(r"Saved checkpoint (\S+) \(epoch (\d+) @ (\d+) updates")


def train_env():
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def train_cmd(data_bin, save_dir, *extra, max_tokens=500, timesteps=T, driver=None):
    head = [sys.executable, str(driver)] if driver else [sys.executable, "-m", "fairseq_cli.train"]
    return head + [str(data_bin), *MODEL_ARGS, "--num-timesteps", str(timesteps), "--max-tokens", str(max_tokens),
                   "--save-dir", str(save_dir), *map(str, extra)]


def start(cmd, log_path, cwd, env=None):
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env or train_env())
    proc._log_file = log  # closed by _wait
    return proc


def wait(proc, timeout):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{proc.args[:4]}... did not finish within {timeout}s")
    finally:
        proc._log_file.close()


def run(cmd, log_path, cwd, timeout=300, env=None):
    """Run to completion; returns (returncode, log text)."""
    rc = wait(start(cmd, log_path, cwd, env), timeout)
    return rc, Path(log_path).read_text()


def tail(text, n=40):
    return "\n".join(text.splitlines()[-n:])


def train_losses(log_text):
    """{num_updates: loss} from the json ``train_inner`` lines (loss is logged rounded to 4 d.p.)."""
    return {number: float(entry["loss"]) for number, entry in train_inner_entries(log_text).items()}


def saves_in(log_text):
    """[(path, epoch, num_updates)] of the checkpoints the run reported as saved."""
    return [(m.group(1), int(m.group(2)), int(m.group(3))) for m in SAVED_RE.finditer(log_text)]


def load_state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def num_updates(state):
    return state["optimizer_history"][-1]["num_updates"]


def sampler_state(state):
    model = state["model"]
    return model["network.timestep_loss_history"], model["network.timestep_loss_count"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A driver around fairseq_cli.train: optional per-rank dumps of the importance sampler state at
# every checkpoint save (DUMP_DIR) and a loss that turns NaN from update NAN_AT_UPDATE on.
DRIVER = textwrap.dedent('''
    import os, sys
    import fairseq_cli.train  # first: it sets up fairseq's log format before fairseq is imported
    import torch
    import torch.distributed as dist
    import diffuseq_fairseq  # the same module fairseq's --user-dir import finds (already imported)
    from fairseq import checkpoint_utils
    from fairseq.trainer import Trainer
    from diffuseq_fairseq.criterions.diffuseq_loss import DiffuSeqLoss

    DUMP_DIR = os.environ.get("DUMP_DIR")
    NAN_AT_UPDATE = int(os.environ.get("NAN_AT_UPDATE", "-1"))
    CURRENT = {"num_updates": 0}

    if DUMP_DIR:
        original_save = checkpoint_utils.save_checkpoint

        def save_checkpoint(cfg, trainer, epoch_itr, val_loss):
            network = trainer.get_model().network
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
            n = trainer.get_num_updates()
            torch.save({"history": network.timestep_loss_history.clone(),
                        "count": network.timestep_loss_count.clone(), "num_updates": n},
                       os.path.join(DUMP_DIR, f"rank{rank}_{n}.pt"))
            return original_save(cfg, trainer, epoch_itr, val_loss)

        checkpoint_utils.save_checkpoint = save_checkpoint

    if NAN_AT_UPDATE >= 0:
        original_train_step = Trainer.train_step
        original_forward = DiffuSeqLoss.forward

        def train_step(self, samples, raise_oom=False):
            CURRENT["num_updates"] = self.get_num_updates()
            return original_train_step(self, samples, raise_oom)

        def forward(self, model, sample, reduce=True):
            loss, sample_size, logging_output = original_forward(self, model, sample, reduce)
            if model.training and CURRENT["num_updates"] >= NAN_AT_UPDATE:
                loss = loss * float("nan")
                logging_output["loss"] = loss.data
            return loss, sample_size, logging_output

        Trainer.train_step = train_step
        DiffuSeqLoss.forward = forward

    sys.argv = ["fairseq-train"] + sys.argv[1:]
    fairseq_cli.train.cli_main()
''')


def train_inner_entries(log_text):
    return {int(entry["num_updates"]): entry for entry in fairseq_log.records(log_text, "train_inner")}


def reversal_data_bin(root: Path) -> Path:
    """Dummy reversal data (random lowercase letters), binarized with a joined dictionary."""
    rng = random.Random(0)
    for split, n in (("train", 300), ("valid", 30)):
        with open(root / f"{split}.in", "w") as fin, open(root / f"{split}.out", "w") as fout:
            for _ in range(n):
                tokens = [rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 10))]
                fin.write(" ".join(tokens) + "\n")
                fout.write(" ".join(reversed(tokens)) + "\n")
    cmd = [sys.executable, "-m", "fairseq_cli.preprocess", "--source-lang", "in", "--target-lang", "out",
           "--trainpref", str(root / "train"), "--validpref", str(root / "valid"), "--joined-dictionary",
           "--destdir", str(root / "bin"), "--workers", "1"]
    rc, log = run(cmd, root / "preprocess.log", root, timeout=180)
    assert rc == 0, tail(log)
    return root / "bin"
