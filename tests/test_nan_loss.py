"""A loss that turns NaN stops training with fairseq's FloatingPointError, while the last good
checkpoint stays loadable and resumes."""
import re

import pytest
import torch

from reliability_harness import (
    DRIVER, train_env, train_cmd, run, tail, train_losses, saves_in, load_state, num_updates, sampler_state,
    reversal_data_bin,
)


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory):
    return reversal_data_bin(tmp_path_factory.mktemp("reliability_data"))


@pytest.fixture
def driver(tmp_path):
    path = tmp_path / "driver.py"
    path.write_text(DRIVER)
    return path


def test_nan_loss_stops_training_and_keeps_last_good_checkpoint(data_bin, tmp_path, driver):
    nan_at = 8  # the update that would make num_updates 9 gets a NaN loss
    save_dir = tmp_path / "ckpt"
    env = train_env()
    env["NAN_AT_UPDATE"] = str(nan_at)
    cmd = train_cmd(data_bin, save_dir, "--save-interval-updates", 4, "--max-update", 20, driver=driver)
    rc, log = run(cmd, tmp_path / "nan.log", tmp_path, timeout=300, env=env)
    assert rc != 0, tail(log)
    # What fairseq 0.12 does in fp32 (trainer.train_step): the grad norm is not finite, so it
    # saves <save-dir>/crash.pt, re-runs the batch under NanDetector (which logs the modules
    # whose gradients are NaN) and raises.
    assert "FloatingPointError: gradients are Nan/Inf" in log, tail(log)
    assert (save_dir / "crash.pt").exists()
    assert max(train_losses(log)) == nan_at  # no update was applied past the fault

    saves = saves_in(log)
    assert saves and saves[-1][2] == nan_at
    good = load_state(save_dir / "checkpoint_last.pt")
    assert num_updates(good) == nan_at
    assert all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())
    hist, count = sampler_state(good)
    assert torch.isfinite(hist).all() and count.sum() > 0

    # The last good checkpoint resumes once the fault is gone.
    rc, log = run(train_cmd(data_bin, save_dir, "--save-interval-updates", 4, "--max-update", nan_at + 2),
                   tmp_path / "resume.log", tmp_path, timeout=300)
    assert rc == 0, tail(log)
    assert re.search(rf"loaded checkpoint \S*checkpoint_last\.pt \(epoch \d+ @ {nan_at} updates\)", log,
                     re.IGNORECASE), tail(log)
    assert sorted(train_losses(log)) == [nan_at + 1, nan_at + 2]
