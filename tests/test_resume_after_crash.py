"""Crash (SIGKILL) and resume under real fairseq-train processes: the run continues from
checkpoint_last.pt with the importance sampler's history restored, and reproduces an uninterrupted
run with the same seed bit for bit when the kill falls inside epoch 1, statistically after it
(fairseq 0.12 builds the batches under seed + the epoch in which the data iterator is created)."""
import re
import shutil
import signal
import textwrap
import time
from pathlib import Path

import pytest
import torch

from reliability_harness import (
    T, train_cmd, train_env, start, wait, run, tail, train_losses, saves_in, load_state, num_updates, sampler_state,
    train_inner_entries, reversal_data_bin,
)


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory):
    return reversal_data_bin(tmp_path_factory.mktemp("reliability_data"))


def crash_and_resume(data_bin, tmp_path, *, max_update, kill_after, max_tokens, timesteps, save_interval=10):
    """Run the reference and a run that is SIGKILLed once it saved a checkpoint at >= kill_after
    updates (both at once), then restart the killed run with the same command."""
    extra = ["--save-interval-updates", save_interval, "--max-update", max_update]
    reference_cmd = train_cmd(data_bin, tmp_path / "ref", *extra, max_tokens=max_tokens, timesteps=timesteps)
    crash_cmd = train_cmd(data_bin, tmp_path / "crash", *extra, max_tokens=max_tokens, timesteps=timesteps)

    reference = start(reference_cmd, tmp_path / "ref.log", tmp_path)
    crashing = start(crash_cmd, tmp_path / "crash1.log", tmp_path)
    deadline = time.monotonic() + 400
    killed_at = None
    try:
        while time.monotonic() < deadline and crashing.poll() is None:
            saves = saves_in((tmp_path / "crash1.log").read_text())
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
        pytest.fail(f"no checkpoint at >= {kill_after} updates before the deadline:\n{tail(crash1_log)}")
    assert crashing.returncode == -signal.SIGKILL
    assert train_losses(crash1_log) and max(train_losses(crash1_log)) < max_update  # really interrupted

    last = tmp_path / "crash" / "checkpoint_last.pt"
    before = load_state(last)
    resume_from = num_updates(before)
    # SIGKILL comes within ~0.05 s of the save being reported; atomic saves leave a complete file.
    assert resume_from >= killed_at
    shutil.copy(last, tmp_path / "checkpoint_last.before_restart.pt")

    rc, resumed_log = run(crash_cmd, tmp_path / "crash2.log", tmp_path, timeout=400)  # the SAME command
    assert rc == 0, tail(resumed_log)
    assert re.search(rf"loaded checkpoint \S*checkpoint_last\.pt \(epoch \d+ @ {resume_from} updates\)",
                     resumed_log, re.IGNORECASE), tail(resumed_log)
    assert wait(reference, 400) == 0, tail((tmp_path / "ref.log").read_text())
    reference_log = (tmp_path / "ref.log").read_text()

    # The killed run had reproduced the reference up to the kill (same seed, same process history).
    ref_losses, killed_losses = train_losses(reference_log), train_losses(crash1_log)
    assert all(killed_losses[u] == ref_losses[u] for u in range(1, resume_from + 1))
    resumed_losses = train_losses(resumed_log)
    assert sorted(resumed_losses) == list(range(resume_from + 1, max_update + 1)), sorted(resumed_losses)

    # The resumed run starts from the saved importance-sampler state: at its first save no step has
    # fewer recorded losses than before the crash.
    hist_before, count_before = sampler_state(before)
    assert count_before.sum() > 0 and torch.isfinite(hist_before).all()
    first_save = next(s for s in saves_in(resumed_log) if s[2] > resume_from)
    first_save_path = Path(first_save[0]) if Path(first_save[0]).is_absolute() else tmp_path / first_save[0]
    hist_after, count_after = sampler_state(load_state(first_save_path))
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
    r = crash_and_resume(data_bin, tmp_path, max_update=max_update, kill_after=15, max_tokens=120, timesteps=5,
                          save_interval=5)
    resume_from = r["resume_from"]
    assert resume_from < r["epoch_updates"] < max_update, "the kill should fall inside epoch 1, then cross it"
    # T=5: the sampler was past warm-up (every step with a full history) when the run was killed,
    # so the resumed run samples t from the restored history from its first update on.
    assert (sampler_state(r["before"])[1] == 10).all()

    # The resumed run's first checkpoint equals the reference's at the same update.
    ref_same = load_state(tmp_path / "ref" / r["first_save"].name)
    resumed_first = load_state(r["first_save"])
    assert num_updates(ref_same) == num_updates(resumed_first)
    for a, b in zip(sampler_state(ref_same), sampler_state(resumed_first)):
        assert torch.equal(a, b)

    ref_losses, resumed_losses = r["ref_losses"], r["resumed_losses"]
    mismatched = {u: (ref_losses[u], loss) for u, loss in resumed_losses.items() if loss != ref_losses[u]}
    assert not mismatched, mismatched
    final_resumed = load_state(tmp_path / "crash" / "checkpoint_last.pt")
    final_ref = load_state(tmp_path / "ref" / "checkpoint_last.pt")
    assert num_updates(final_resumed) == num_updates(final_ref) == max_update
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
    r = crash_and_resume(data_bin, tmp_path, max_update=max_update, kill_after=20, max_tokens=500, timesteps=T)
    resume_from = r["resume_from"]
    assert resume_from > r["epoch_updates"], "the kill should fall after epoch 1"
    ref_entries, resumed_entries = train_inner_entries(r["reference_log"]), train_inner_entries(r["resumed_log"])
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


# A driver around fairseq_cli.train that stops, half done, inside one checkpoint write (torch.save
# of STALL_SOURCE) or one copy (shutil.copyfile of STALL_SOURCE onto STALL_DESTINATION), prints
# STALLED and waits to be killed: the kill falls mid-save at a known point, not by timing luck.
# Both fairseq's own code and the plugin's atomic versions go through these two functions.
STALLING_DRIVER = textwrap.dedent('''
    import io, os, shutil, sys, time
    import fairseq_cli.train  # first: it sets up fairseq's log format before fairseq is imported
    import torch

    KIND, SOURCE = os.environ["STALL_KIND"], os.environ["STALL_SOURCE"]
    DESTINATION = os.environ.get("STALL_DESTINATION")

    def stall(f, data):
        f.write(data[: len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
        print("STALLED", flush=True)
        time.sleep(600)

    original_copyfile, original_save = shutil.copyfile, torch.save

    def copyfile(src, dst, *args, **kwargs):
        if KIND == "copy" and os.path.basename(src) == SOURCE and os.path.basename(dst).startswith(DESTINATION):
            with open(src, "rb") as f:
                data = f.read()
            with open(dst, "wb") as f:
                stall(f, data)
        return original_copyfile(src, dst, *args, **kwargs)

    def save(obj, f, *args, **kwargs):
        name = os.path.basename(str(getattr(f, "name", f)))
        if KIND == "save" and name.startswith(SOURCE) and hasattr(f, "write"):
            buffer = io.BytesIO()
            original_save(obj, buffer, *args, **kwargs)
            stall(f, buffer.getvalue())
        return original_save(obj, f, *args, **kwargs)

    shutil.copyfile, torch.save = copyfile, save
    sys.argv = ["fairseq-train"] + sys.argv[1:]
    fairseq_cli.train.cli_main()
''')


# "save" was atomic in fairseq already (slow suite: a guard); "copy" was the data loss.
@pytest.mark.parametrize("kill_during", ["copy", pytest.param("save", marks=pytest.mark.slow)])
def test_sigkill_during_a_checkpoint_save_keeps_the_previous_checkpoint_last(data_bin, tmp_path, kill_during):
    """SIGKILL while fairseq copies checkpoint_1_10.pt onto checkpoint_last.pt ("copy"), or while it
    writes checkpoint_1_10.pt itself ("save"): checkpoint_last.pt stays the complete checkpoint of
    update 5, no partial checkpoint*.pt is left, and the same command resumes from it and finishes
    (the leftover temporary file is reused and gone). Before the atomic copy, the kill during the
    copy left a truncated checkpoint_last.pt that stopped the restart."""
    driver = tmp_path / "stalling_train.py"
    driver.write_text(STALLING_DRIVER)
    save_dir = tmp_path / "ckpt"
    extra = ["--save-interval-updates", 5, "--max-update", 15]
    stall = {"STALL_KIND": kill_during, "STALL_SOURCE": "checkpoint_1_10.pt", "STALL_DESTINATION": "checkpoint_last.pt"}
    env = dict(train_env(), **stall)
    # --max-tokens 120: ~20 updates per epoch, so update 10 is a mid-epoch save (checkpoint_1_10.pt).
    stalling = start(train_cmd(data_bin, save_dir, *extra, max_tokens=120, timesteps=5, driver=driver),
                     tmp_path / "crash.log", tmp_path, env=env)
    deadline = time.monotonic() + 300
    try:
        while "STALLED" not in (tmp_path / "crash.log").read_text():
            assert stalling.poll() is None and time.monotonic() < deadline, tail((tmp_path / "crash.log").read_text())
            time.sleep(0.05)
        stalling.send_signal(signal.SIGKILL)
    finally:
        if stalling.poll() is None:
            stalling.kill()
        stalling.wait()
        stalling._log_file.close()
    assert stalling.returncode == -signal.SIGKILL

    checkpoints = {path.name: path for path in save_dir.glob("checkpoint*.pt")}
    assert num_updates(load_state(checkpoints.pop("checkpoint_last.pt"))) == 5
    if kill_during == "copy":
        assert num_updates(load_state(checkpoints.pop("checkpoint_1_10.pt"))) == 10
    assert "checkpoint_1_10.pt" not in checkpoints  # never a partial file under a checkpoint's name
    for path in checkpoints.values():
        load_state(path)  # the rest (checkpoint_1_5.pt, checkpoint_best.pt) is intact
    assert list(save_dir.glob("*.tmp")), "the kill should have interrupted a write to a temporary file"

    rc, log = run(train_cmd(data_bin, save_dir, *extra, max_tokens=120, timesteps=5), tmp_path / "resume.log",
                  tmp_path, timeout=300)
    assert rc == 0, tail(log)
    assert re.search(r"loaded checkpoint \S*checkpoint_last\.pt \(epoch 1 @ 5 updates\)", log, re.IGNORECASE), tail(log)
    assert sorted(train_losses(log)) == list(range(6, 16))
    assert num_updates(load_state(save_dir / "checkpoint_last.pt")) == 15
    assert not list(save_dir.glob("*.tmp"))
