"""Training reliability of the plugin under real fairseq-train processes.

* crash (SIGKILL) and resume: the run continues from checkpoint_last.pt with the importance
  sampler's history restored and reproduces an uninterrupted run with the same seed bit for bit
  when the kill falls inside epoch 1, and statistically after it (fairseq 0.12 builds the batches
  under seed + the epoch in which the data iterator is created, see the later-epoch test);
* a truncated checkpoint_last.pt stops the restart with a clear message instead of a traceback
  deep in torch (or a hang);
* 2-process CPU/gloo training: finishes, saves on rank 0, resumes, keeps the importance sampler
  histories identical on both ranks and matches a 1-process ``--update-freq 2`` run in loss, and
  resumes both with fairseq's default rank-0 load + broadcast and with every rank loading;
* a loss that turns NaN stops training with fairseq's FloatingPointError while the last good
  checkpoint stays loadable.

Every training run is a subprocess (``fairseq_cli.train`` or a small driver around it), with one
intra-op thread each so that runs are deterministic and two can share the two CPU cores.
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("fairseq")

import diffuseq_fairseq  # noqa: E402,F401  (allowlists fairseq's checkpoint globals for weights_only)

REPO = Path(__file__).resolve().parents[1]
USER_DIR = REPO / "diffuseq_fairseq"
T = 20  # small T: the importance sampler warms up (10 losses per step) within ~15 updates

MODEL_ARGS = [
    "--user-dir", str(USER_DIR), "--task", "diffuseq", "--arch", "diffuseq_tiny",
    "--criterion", "diffuseq_loss", "--encoder-layers", "2",
    "--encoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128", "--encoder-attention-heads", "2",
    "--latent-dim", "16", "--optimizer", "adam", "--lr", "1e-3", "--cpu", "--no-progress-bar",
    "--num-workers", "0", "--seed", "1", "--log-format", "json", "--log-interval", "1",
]

SAVED_RE = re.compile(r"Saved checkpoint (\S+) \(epoch (\d+) @ (\d+) updates")
TRAIN_INNER_RE = re.compile(r"\btrain_inner\s*[|:]\s*(\{.*\})\s*$")


# ---------------------------------------------------------------------------------------------
# helpers


def _env():
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def _train_cmd(data_bin, save_dir, *extra, max_tokens=500, timesteps=T, driver=None):
    head = [sys.executable, str(driver)] if driver else [sys.executable, "-m", "fairseq_cli.train"]
    return head + [str(data_bin), *MODEL_ARGS, "--num-timesteps", str(timesteps), "--max-tokens", str(max_tokens),
                   "--save-dir", str(save_dir), *map(str, extra)]


def _start(cmd, log_path, cwd, env=None):
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd, env=env or _env())
    proc._log_file = log  # closed by _wait
    return proc


def _wait(proc, timeout):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(f"{proc.args[:4]}... did not finish within {timeout}s")
    finally:
        proc._log_file.close()


def _run(cmd, log_path, cwd, timeout=300, env=None):
    """Run to completion; returns (returncode, log text)."""
    rc = _wait(_start(cmd, log_path, cwd, env), timeout)
    return rc, Path(log_path).read_text()


def _tail(text, n=40):
    return "\n".join(text.splitlines()[-n:])


def _train_losses(log_text):
    """{num_updates: loss} from the json ``train_inner`` lines (loss is logged rounded to 4 d.p.)."""
    losses = {}
    for line in log_text.splitlines():
        match = TRAIN_INNER_RE.search(line)
        if match:
            entry = json.loads(match.group(1))
            losses[int(entry["num_updates"])] = float(entry["loss"])
    return losses


def _saves(log_text):
    """[(path, epoch, num_updates)] of the checkpoints the run reported as saved."""
    return [(m.group(1), int(m.group(2)), int(m.group(3))) for m in SAVED_RE.finditer(log_text)]


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _num_updates(state):
    return state["optimizer_history"][-1]["num_updates"]


def _sampler_state(state):
    model = state["model"]
    return model["network.timestep_loss_history"], model["network.timestep_loss_count"]


def _free_port():
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


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory):
    """Dummy reversal data (random lowercase letters), binarized with a joined dictionary."""
    root = tmp_path_factory.mktemp("reliability_data")
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
    rc, log = _run(cmd, root / "preprocess.log", root, timeout=180)
    assert rc == 0, _tail(log)
    return root / "bin"


@pytest.fixture
def driver(tmp_path):
    path = tmp_path / "driver.py"
    path.write_text(DRIVER)
    return path


# ---------------------------------------------------------------------------------------------
# 1. crash and resume


def _train_inner_entries(log_text):
    return {int(e["num_updates"]): e for e in (json.loads(m.group(1)) for m in map(TRAIN_INNER_RE.search,
            log_text.splitlines()) if m)}


def _crash_and_resume(data_bin, tmp_path, *, max_update, kill_after, max_tokens, timesteps, save_interval=10):
    """Run the reference and a run that is SIGKILLed once it saved a checkpoint at >= kill_after
    updates (both at once), then restart the killed run with the same command."""
    extra = ["--save-interval-updates", save_interval, "--max-update", max_update]
    reference_cmd = _train_cmd(data_bin, tmp_path / "ref", *extra, max_tokens=max_tokens, timesteps=timesteps)
    crash_cmd = _train_cmd(data_bin, tmp_path / "crash", *extra, max_tokens=max_tokens, timesteps=timesteps)

    reference = _start(reference_cmd, tmp_path / "ref.log", tmp_path)
    crashing = _start(crash_cmd, tmp_path / "crash1.log", tmp_path)
    deadline = time.monotonic() + 400
    killed_at = None
    try:
        while time.monotonic() < deadline and crashing.poll() is None:
            saves = _saves((tmp_path / "crash1.log").read_text())
            if saves and saves[-1][2] >= kill_after:
                crashing.send_signal(signal.SIGKILL)
                killed_at = saves[-1][2]
                break
            time.sleep(0.05)
    finally:
        if crashing.poll() is None and killed_at is None:
            crashing.kill()
        crashing.wait()
        crashing._log_file.close()
    crash1_log = (tmp_path / "crash1.log").read_text()
    if killed_at is None:
        reference.kill()
        pytest.fail(f"no checkpoint at >= {kill_after} updates before the deadline:\n{_tail(crash1_log)}")
    assert crashing.returncode == -signal.SIGKILL
    assert _train_losses(crash1_log) and max(_train_losses(crash1_log)) < max_update  # really interrupted

    last = tmp_path / "crash" / "checkpoint_last.pt"
    before = _load(last)
    resume_from = _num_updates(before)
    # SIGKILL comes within ~0.05 s of the save being reported; atomic saves leave a complete file.
    assert resume_from >= killed_at
    shutil.copy(last, tmp_path / "checkpoint_last.before_restart.pt")

    rc, resumed_log = _run(crash_cmd, tmp_path / "crash2.log", tmp_path, timeout=400)  # the SAME command
    assert rc == 0, _tail(resumed_log)
    assert re.search(rf"loaded checkpoint \S*checkpoint_last\.pt \(epoch \d+ @ {resume_from} updates\)",
                     resumed_log, re.IGNORECASE), _tail(resumed_log)
    assert _wait(reference, 400) == 0, _tail((tmp_path / "ref.log").read_text())
    reference_log = (tmp_path / "ref.log").read_text()

    # The killed run had reproduced the reference up to the kill (same seed, same process history).
    ref_losses, killed_losses = _train_losses(reference_log), _train_losses(crash1_log)
    assert all(killed_losses[u] == ref_losses[u] for u in range(1, resume_from + 1))
    resumed_losses = _train_losses(resumed_log)
    assert sorted(resumed_losses) == list(range(resume_from + 1, max_update + 1)), sorted(resumed_losses)

    # The resumed run starts from the saved importance-sampler state: at its first save no step has
    # fewer recorded losses than before the crash.
    hist_before, count_before = _sampler_state(before)
    assert count_before.sum() > 0 and torch.isfinite(hist_before).all()
    first_save = next(s for s in _saves(resumed_log) if s[2] > resume_from)
    first_save_path = Path(first_save[0]) if Path(first_save[0]).is_absolute() else tmp_path / first_save[0]
    hist_after, count_after = _sampler_state(_load(first_save_path))
    assert (count_after >= count_before).all(), (count_before, count_after)
    epoch_updates = int(re.search(r"total_num_itrs = (\d+)", reference_log).group(1))
    return dict(resume_from=resume_from, before=before, epoch_updates=epoch_updates, first_save=first_save_path,
                ref_losses=ref_losses, resumed_losses=resumed_losses, reference_log=reference_log, resumed_log=resumed_log)


@pytest.mark.slow
def test_sigkill_and_resume_within_first_epoch_is_exact(data_bin, tmp_path):
    """--max-tokens 120: ~20 updates per epoch, so the kill at 15 updates falls inside epoch 1.

    Every update is seeded with seed + num_updates, the iterator resumes mid-epoch and the model,
    Adam and importance-sampler state are restored, so the resumed run reproduces the
    uninterrupted one bit for bit (one intra-op thread per process), also past the epoch
    boundary. Tolerance asserted: 0 (logged losses and every tensor of the state).
    """
    max_update = 30
    r = _crash_and_resume(data_bin, tmp_path, max_update=max_update, kill_after=15, max_tokens=120, timesteps=5,
                          save_interval=5)
    resume_from = r["resume_from"]
    assert resume_from < r["epoch_updates"] < max_update, "the kill should fall inside epoch 1, then cross it"
    # T=5: the sampler was past warm-up (every step with a full history) when the run was killed,
    # so the resumed run samples t from the restored history from its first update on.
    assert (_sampler_state(r["before"])[1] == 10).all()

    # The resumed run's first checkpoint equals the reference's at the same update.
    ref_same = _load(tmp_path / "ref" / r["first_save"].name)
    resumed_first = _load(r["first_save"])
    assert _num_updates(ref_same) == _num_updates(resumed_first)
    for a, b in zip(_sampler_state(ref_same), _sampler_state(resumed_first)):
        assert torch.equal(a, b)

    ref_losses, resumed_losses = r["ref_losses"], r["resumed_losses"]
    mismatched = {u: (ref_losses[u], loss) for u, loss in resumed_losses.items() if loss != ref_losses[u]}
    assert not mismatched, mismatched
    final_resumed = _load(tmp_path / "crash" / "checkpoint_last.pt")
    final_ref = _load(tmp_path / "ref" / "checkpoint_last.pt")
    assert _num_updates(final_resumed) == _num_updates(final_ref) == max_update
    assert final_resumed["model"].keys() == final_ref["model"].keys()
    max_diff = max((final_resumed["model"][k].double() - final_ref["model"][k].double()).abs().max().item()
                   for k in final_ref["model"])
    assert max_diff == 0.0, f"resumed and uninterrupted final states differ by up to {max_diff}"


@pytest.mark.slow
def test_sigkill_and_resume_in_later_epoch(data_bin, tmp_path):
    """--max-tokens 500: 6 updates per epoch, the kill at 20 updates falls in epoch 4.

    Not bit-exact, because of fairseq 0.12 itself: FairseqTask.get_batch_iterator orders the
    examples under numpy_seed(seed + epoch) with *epoch = the epoch in which the iterator is
    created* and then reuses those batches for all later epochs (only their order is reshuffled
    per epoch). The uninterrupted run builds them in epoch 1, the resumed run in epoch 4, so
    equal-length sentences are grouped differently: every batch has the same number of sentences
    and tokens but partly different sentences. The resumed losses therefore agree only
    statistically (measured: per update up to 1.5 %, mean over the 10 updates 0.14 %; asserted:
    10 % and 3 %).
    """
    max_update = 30
    r = _crash_and_resume(data_bin, tmp_path, max_update=max_update, kill_after=20, max_tokens=500, timesteps=T)
    resume_from = r["resume_from"]
    assert resume_from > r["epoch_updates"], "the kill should fall after epoch 1"
    ref_entries, resumed_entries = _train_inner_entries(r["reference_log"]), _train_inner_entries(r["resumed_log"])
    for u in r["resumed_losses"]:  # same batch shapes: the difference is which sentences share a batch
        assert (resumed_entries[u]["bsz"], resumed_entries[u]["wpb"]) == (ref_entries[u]["bsz"], ref_entries[u]["wpb"])
    ref_losses, resumed_losses = r["ref_losses"], r["resumed_losses"]
    updates = sorted(resumed_losses)
    per_update = max(abs(resumed_losses[u] - ref_losses[u]) / ref_losses[u] for u in updates)
    ref_mean = sum(ref_losses[u] for u in updates) / len(updates)
    resumed_mean = sum(resumed_losses[u] for u in updates) / len(updates)
    mean_rel = abs(resumed_mean - ref_mean) / ref_mean
    print(f"resume at {resume_from} (later epoch): max per-update relative loss difference {per_update:.4f}, "
          f"mean {ref_mean:.4f} vs {resumed_mean:.4f} (relative {mean_rel:.4f})")
    assert per_update < 0.10 and mean_rel < 0.03, {u: (ref_losses[u], resumed_losses[u]) for u in updates}


# ---------------------------------------------------------------------------------------------
# 2. corrupted checkpoint


def test_truncated_checkpoint_last_fails_with_clear_message(data_bin, tmp_path):
    save_dir = tmp_path / "ckpt"
    cmd = _train_cmd(data_bin, save_dir, "--max-update", 2)
    rc, log = _run(cmd, tmp_path / "train.log", tmp_path, timeout=240)
    assert rc == 0, _tail(log)
    last = save_dir / "checkpoint_last.pt"
    assert _num_updates(_load(last)) == 2

    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    rc, log = _run(cmd, tmp_path / "restart.log", tmp_path, timeout=240)  # a hang fails the timeout
    assert rc != 0, _tail(log)
    error_lines = [line for line in log.splitlines() if "truncated or corrupted" in line]
    assert error_lines, _tail(log)
    assert any(str(last) in line for line in error_lines), error_lines
    assert "CheckpointError" in error_lines[-1], error_lines
    assert "train_inner" not in log  # nothing was trained from a half-read state


# 20 KB: torch's zip reader fails with a bare "OSError: [Errno 22] Invalid argument" there.
@pytest.mark.parametrize("keep", [0, 100, 20_000, 0.5, -1])
def test_truncated_checkpoint_is_reported_in_process(tmp_path, keep):
    """The wrapped loader names the file for truncations of a ~1.5 MB checkpoint (no subprocess)."""
    from fairseq import checkpoint_utils

    from diffuseq_fairseq.checkpoints import CheckpointError

    path = tmp_path / "checkpoint_last.pt"
    generator = torch.Generator().manual_seed(0)
    torch.save({"model": {f"w{i}": torch.randn(192, 192, generator=generator) for i in range(10)},
                "args": None, "cfg": None, "optimizer_history": [{"num_updates": 3}]}, path)
    data = path.read_bytes()
    size = keep if isinstance(keep, int) and keep >= 0 else (len(data) - 1 if keep == -1 else int(len(data) * keep))
    path.write_bytes(data[:size])
    with pytest.raises(CheckpointError, match="truncated or corrupted") as error:
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert str(path) in str(error.value)


@pytest.mark.parametrize("content", [bytes(random.Random(0).randrange(256) for _ in range(4096)), b"not a checkpoint\n"],
                         ids=["random-bytes", "text"])
def test_garbage_checkpoint_is_corrupted_not_refused(tmp_path, content):
    """Damaged bytes are reported as corruption, not as an unsafe object."""
    from fairseq import checkpoint_utils

    from diffuseq_fairseq.checkpoints import CheckpointError

    path = tmp_path / "checkpoint_last.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="truncated or corrupted") as error:
        checkpoint_utils.load_checkpoint_to_cpu(str(path))
    assert str(path) in str(error.value)


# ---------------------------------------------------------------------------------------------
# 3. distributed (2 CPU processes, gloo)


def _distributed_cmds(data_bin, save_dir, driver, max_update, max_tokens):
    port = _free_port()
    return [
        _train_cmd(data_bin, save_dir, "--max-update", max_update, "--distributed-world-size", 2,
                   "--distributed-rank", rank, "--distributed-init-method", f"tcp://127.0.0.1:{port}",
                   "--distributed-no-spawn", "--distributed-backend", "gloo", "--ddp-backend", "legacy_ddp",
                   max_tokens=max_tokens, driver=driver)
        for rank in (0, 1)
    ]


def _run_ranks(cmds, tmp_path, tag, env, check=True):
    """Run the ranks to completion; the logs (check) or (return codes, logs)."""
    procs = [_start(cmd, tmp_path / f"{tag}_rank{rank}.log", tmp_path, env) for rank, cmd in enumerate(cmds)]
    try:
        rcs = [_wait(proc, 400) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    logs = [(tmp_path / f"{tag}_rank{rank}.log").read_text() for rank in (0, 1)]
    if not check:
        return rcs, logs
    for rank, (rc, log) in enumerate(zip(rcs, logs)):
        assert rc == 0, f"rank {rank} failed:\n{_tail(log)}"
    return logs


def _assert_identical_dumps(dump_dir, expect_updates):
    dumps = {}
    for path in dump_dir.glob("rank*_*.pt"):
        rank, n = map(int, re.match(r"rank(\d+)_(\d+)\.pt", path.name).groups())
        dumps.setdefault(n, {})[rank] = torch.load(path, weights_only=True)
    assert expect_updates <= set(dumps), sorted(dumps)
    for n, ranks in sorted(dumps.items()):
        assert set(ranks) == {0, 1}, (n, sorted(ranks))
        assert torch.equal(ranks[0]["count"], ranks[1]["count"]), n
        assert torch.equal(ranks[0]["history"], ranks[1]["history"]), n
    return dumps


DDP_UPDATES, DDP_MAX_TOKENS = 10, 500


@pytest.fixture(scope="module")
def ddp_run(data_bin, tmp_path_factory):
    """A 2-rank gloo run of DDP_UPDATES updates (with per-rank sampler dumps at every save) and,
    sharing the cores with it, a 1-process run with --update-freq 2 and the same --max-tokens."""
    root = tmp_path_factory.mktemp("ddp")
    driver = root / "driver.py"
    driver.write_text(DRIVER)
    dump_dir = root / "dumps"
    dump_dir.mkdir()
    env = _env()
    env["DUMP_DIR"] = str(dump_dir)
    single = _start(_train_cmd(data_bin, root / "single", "--max-update", DDP_UPDATES, "--update-freq", 2,
                               max_tokens=DDP_MAX_TOKENS), root / "single.log", root)
    try:
        logs = _run_ranks(_distributed_cmds(data_bin, root / "ddp", driver, DDP_UPDATES, DDP_MAX_TOKENS), root,
                          "ddp", env)
    finally:
        rc = _wait(single, 400)
    assert rc == 0, _tail((root / "single.log").read_text())
    return dict(root=root, driver=driver, save_dir=root / "ddp", dump_dir=dump_dir, logs=logs,
                single_log=(root / "single.log").read_text())


@pytest.mark.slow
def test_two_process_gloo_training(ddp_run):
    logs, n_updates = ddp_run["logs"], DDP_UPDATES
    # Only rank 0 saves (and logs at INFO).
    assert _saves(logs[0]) and not _saves(logs[1])
    state = _load(ddp_run["save_dir"] / "checkpoint_last.pt")
    assert _num_updates(state) == n_updates
    # The importance-sampler state is identical on both ranks at every save...
    dumps = _assert_identical_dumps(ddp_run["dump_dir"], {n_updates})
    # ...and the checkpoint rank 0 wrote holds that same (all-reduced) history.
    hist, count = _sampler_state(state)
    assert torch.equal(hist, dumps[n_updates][0]["history"]) and torch.equal(count, dumps[n_updates][0]["count"])
    assert count.sum() > 0

    # Loss vs. 1 process with --update-freq 2: the same batches form each update (rank r takes
    # batches r, r+2, ...; update-freq groups consecutive pairs), but both ranks draw noise and
    # timesteps from seed + num_updates while the single process continues its RNG for the second
    # micro-batch, and the single process pushes two sampler updates per step instead of one
    # all-reduced one. So losses agree only statistically.
    ddp_losses, single_losses = _train_losses(logs[0]), _train_losses(ddp_run["single_log"])
    steps = list(range(1, n_updates + 1))
    assert sorted(ddp_losses) == steps and sorted(single_losses) == steps
    ddp_entries, single_entries = _train_inner_entries(logs[0]), _train_inner_entries(ddp_run["single_log"])
    for u in steps:  # same global batches
        assert (ddp_entries[u]["bsz"], ddp_entries[u]["wpb"]) == (single_entries[u]["bsz"], single_entries[u]["wpb"])
    # Measured: mean over the 10 updates 1.1309 (2 ranks) vs 1.1298 (relative 0.10 %), per update
    # at most 1.3 %; asserted: 3 % and 10 %.
    ddp_mean = sum(ddp_losses[u] for u in steps) / n_updates
    single_mean = sum(single_losses[u] for u in steps) / n_updates
    rel = abs(ddp_mean - single_mean) / single_mean
    per_update = max(abs(ddp_losses[u] - single_losses[u]) / single_losses[u] for u in steps)
    print(f"mean loss over {n_updates} updates: 2 ranks {ddp_mean:.4f}, 1 process x update-freq 2 "
          f"{single_mean:.4f}, relative difference {rel:.4f} (max per update {per_update:.4f})")
    assert rel < 0.03 and per_update < 0.10, (ddp_losses, single_losses)


@pytest.mark.slow
@pytest.mark.parametrize("load_on_all_ranks", [False, True], ids=["broadcast", "load_on_all_ranks"])
def test_two_process_gloo_resume(data_bin, ddp_run, tmp_path, load_on_all_ranks):
    """Restart the 2-process command with a higher --max-update: it continues from the checkpoint.

    By default fairseq loads the checkpoint on rank 0 and broadcasts it with torch.save/torch.load;
    with --load-checkpoint-on-all-dp-ranks every rank reads the file itself.
    """
    save_dir, dump_dir = tmp_path / "ddp", tmp_path / "dumps"
    shutil.copytree(ddp_run["save_dir"], save_dir)
    shutil.copytree(ddp_run["dump_dir"], dump_dir)
    env = _env()
    env["DUMP_DIR"] = str(dump_dir)
    more = DDP_UPDATES + 4
    extra = ["--load-checkpoint-on-all-dp-ranks"] if load_on_all_ranks else []
    cmds = [cmd + extra for cmd in _distributed_cmds(data_bin, save_dir, ddp_run["driver"], more, DDP_MAX_TOKENS)]
    rcs, logs = _run_ranks(cmds, tmp_path, "resume", env, check=False)
    for rank, (rc, log) in enumerate(zip(rcs, logs)):
        assert rc == 0, f"rank {rank} failed:\n{_tail(log)}"
    assert re.search(rf"loaded checkpoint \S*checkpoint_last\.pt \(epoch \d+ @ {DDP_UPDATES} updates\)",
                     logs[0], re.IGNORECASE), _tail(logs[0])
    assert sorted(_train_losses(logs[0])) == list(range(DDP_UPDATES + 1, more + 1))
    assert _num_updates(_load(save_dir / "checkpoint_last.pt")) == more
    dumps = _assert_identical_dumps(dump_dir, {DDP_UPDATES, more})
    assert (dumps[more][0]["count"] >= dumps[DDP_UPDATES][0]["count"]).all()


# ---------------------------------------------------------------------------------------------
# 4. numerical faults


def test_nan_loss_stops_training_and_keeps_last_good_checkpoint(data_bin, tmp_path, driver):
    nan_at = 8  # the update that would make num_updates 9 gets a NaN loss
    save_dir = tmp_path / "ckpt"
    env = _env()
    env["NAN_AT_UPDATE"] = str(nan_at)
    cmd = _train_cmd(data_bin, save_dir, "--save-interval-updates", 4, "--max-update", 20, driver=driver)
    rc, log = _run(cmd, tmp_path / "nan.log", tmp_path, timeout=300, env=env)
    assert rc != 0, _tail(log)
    # What fairseq 0.12 does in fp32 (trainer.train_step): the grad norm is not finite, so it
    # saves <save-dir>/crash.pt, re-runs the batch under NanDetector (which logs the modules
    # whose gradients are NaN) and raises.
    assert "FloatingPointError: gradients are Nan/Inf" in log, _tail(log)
    assert (save_dir / "crash.pt").exists()
    assert max(_train_losses(log)) == nan_at  # no update was applied past the fault

    saves = _saves(log)
    assert saves and saves[-1][2] == nan_at
    good = _load(save_dir / "checkpoint_last.pt")
    assert _num_updates(good) == nan_at
    assert all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())
    hist, count = _sampler_state(good)
    assert torch.isfinite(hist).all() and count.sum() > 0

    # The last good checkpoint resumes once the fault is gone.
    rc, log = _run(_train_cmd(data_bin, save_dir, "--save-interval-updates", 4, "--max-update", nan_at + 2),
                   tmp_path / "resume.log", tmp_path, timeout=300)
    assert rc == 0, _tail(log)
    assert re.search(rf"loaded checkpoint \S*checkpoint_last\.pt \(epoch \d+ @ {nan_at} updates\)", log,
                     re.IGNORECASE), _tail(log)
    assert sorted(_train_losses(log)) == [nan_at + 1, nan_at + 2]
