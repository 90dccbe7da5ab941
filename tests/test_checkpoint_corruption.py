"""A truncated or damaged checkpoint stops a restart, or an in-process load, with a clear
CheckpointError naming the file, instead of a traceback deep in torch (or a hang)."""
import random

import pytest
import torch

from reliability_harness import (
    train_cmd, run, tail, load_state, num_updates, reversal_data_bin,
)


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory):
    return reversal_data_bin(tmp_path_factory.mktemp("reliability_data"))


def test_truncated_checkpoint_last_fails_with_clear_message(data_bin, tmp_path):
    save_dir = tmp_path / "ckpt"
    cmd = train_cmd(data_bin, save_dir, "--max-update", 2)
    rc, log = run(cmd, tmp_path / "train.log", tmp_path, timeout=240)
    assert rc == 0, tail(log)
    last = save_dir / "checkpoint_last.pt"
    assert num_updates(load_state(last)) == 2

    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    rc, log = run(cmd, tmp_path / "restart.log", tmp_path, timeout=240)  # a hang fails the timeout
    assert rc != 0, tail(log)
    error_lines = [line for line in log.splitlines() if "truncated or corrupted" in line]
    assert error_lines, tail(log)
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
