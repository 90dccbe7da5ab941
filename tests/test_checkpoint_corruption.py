"""A truncated or damaged checkpoint stops a restart, or an in-process load, with a clear
CheckpointError naming the file, instead of a traceback deep in torch (or a hang)."""
import os
import random

import pytest
import torch

from reliability_harness import (
    train_cmd, run, tail, load_state, num_updates, reversal_data_bin,
)


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory):
    return reversal_data_bin(tmp_path_factory.mktemp("reliability_data"))


def test_truncated_checkpoint_last_names_the_newest_intact_one_to_resume_from(data_bin, tmp_path):
    """A damaged checkpoint_last.pt stops the restart with a CheckpointError that names the file and
    the newest intact checkpoint beside it (damaged newer ones skipped) with --restore-file; that
    command resumes from it."""
    save_dir = tmp_path / "ckpt"
    cmd = train_cmd(data_bin, save_dir, "--max-update", 4, "--save-interval-updates", 2)
    rc, log = run(cmd, tmp_path / "train.log", tmp_path, timeout=240)
    assert rc == 0, tail(log)
    last = save_dir / "checkpoint_last.pt"
    assert num_updates(load_state(last)) == 4
    for name in ("checkpoint_last.pt", "checkpoint_best.pt", "checkpoint_1_4.pt"):  # all the copies of update 4
        data = (save_dir / name).read_bytes()
        (save_dir / name).write_bytes(data[: len(data) // 2])

    rc, log = run(cmd, tmp_path / "restart.log", tmp_path, timeout=240)  # a hang fails the timeout
    assert rc != 0, tail(log)
    error_lines = [line for line in log.splitlines() if "truncated or corrupted" in line]
    assert error_lines, tail(log)
    assert "CheckpointError" in error_lines[-1] and f"checkpoint {last} is truncated" in error_lines[-1], error_lines
    intact = save_dir / "checkpoint_1_2.pt"
    assert (f"the newest intact checkpoint beside it is {intact} (epoch 1 @ 2 updates): "
            f"resume from it with --restore-file {intact}") in error_lines[-1], error_lines
    assert "train_inner" not in log  # nothing was trained from a half-read state

    rc, log = run(cmd + ["--restore-file", str(intact)], tmp_path / "resume.log", tmp_path, timeout=240)
    assert rc == 0, tail(log)
    assert f"Loaded checkpoint {intact} (epoch 1 @ 2 updates)" in log, tail(log)
    assert num_updates(load_state(last)) == 4


def test_newest_intact_checkpoint_goes_by_write_time_and_skips_damaged_files(tmp_path):
    from diffuseq_fairseq.checkpoints import newest_intact_checkpoint

    for age, (name, updates) in enumerate([("checkpoint_last.pt", 9), ("checkpoint_1_9.pt", 9),
                                            ("checkpoint_1_6.pt", 6), ("checkpoint_1_3.pt", 3)]):
        torch.save({"optimizer_history": [{"num_updates": updates}]}, tmp_path / name)
        os.utime(tmp_path / name, (1e9 - age, 1e9 - age))
    (tmp_path / "checkpoint_1_9.pt").write_bytes(b"damaged")
    (tmp_path / "notes.pt").write_bytes(b"not a checkpoint name")
    path, state = newest_intact_checkpoint(tmp_path / "checkpoint_last.pt")
    assert path == str(tmp_path / "checkpoint_1_6.pt") and num_updates(state) == 6
    for name in ("checkpoint_1_6.pt", "checkpoint_1_3.pt"):
        (tmp_path / name).unlink()
    assert newest_intact_checkpoint(tmp_path / "checkpoint_last.pt") is None


def test_only_checkpoint_last_gets_resume_advice(tmp_path):
    from fairseq import checkpoint_utils

    from diffuseq_fairseq.checkpoints import CheckpointError

    torch.save({"optimizer_history": [{"num_updates": 1}]}, tmp_path / "checkpoint_1_1.pt")
    (tmp_path / "checkpoint_last.pt").write_bytes(b"damaged")
    (tmp_path / "model.pt").write_bytes(b"damaged")
    with pytest.raises(CheckpointError, match="--restore-file .*checkpoint_1_1.pt$"):
        checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "checkpoint_last.pt"))
    with pytest.raises(CheckpointError, match=r"cannot be read \(\w+: [^)]*\)$"):
        checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "model.pt"))
    (tmp_path / "checkpoint_1_1.pt").unlink()
    with pytest.raises(CheckpointError, match=f"no other intact checkpoint\\*.pt in {tmp_path}$"):
        checkpoint_utils.load_checkpoint_to_cpu(str(tmp_path / "checkpoint_last.pt"))


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
