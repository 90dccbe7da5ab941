"""2-process CPU/gloo training: finishes, saves on rank 0, keeps the importance sampler histories
identical on both ranks, matches a 1-process ``--update-freq 2`` run in loss, and resumes both with
fairseq's default rank-0 load + broadcast and with every rank loading."""
import re
import shutil

import pytest
import torch

from reliability_harness import (
    DRIVER, train_env, train_cmd, start, wait, tail, train_losses, saves_in, load_state, num_updates, sampler_state,
    free_port, train_inner_entries, reversal_data_bin,
)


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory):
    return reversal_data_bin(tmp_path_factory.mktemp("reliability_data"))


def _distributed_cmds(data_bin, save_dir, driver, max_update, max_tokens):
    port = free_port()
    return [
        train_cmd(data_bin, save_dir, "--max-update", max_update, "--distributed-world-size", 2,
                   "--distributed-rank", rank, "--distributed-init-method", f"tcp://127.0.0.1:{port}",
                   "--distributed-no-spawn", "--distributed-backend", "gloo", "--ddp-backend", "legacy_ddp",
                   max_tokens=max_tokens, driver=driver)
        for rank in (0, 1)
    ]


def _run_ranks(cmds, tmp_path, tag, env, check=True):
    """Run the ranks to completion; the logs (check) or (return codes, logs)."""
    procs = [start(cmd, tmp_path / f"{tag}_rank{rank}.log", tmp_path, env) for rank, cmd in enumerate(cmds)]
    try:
        rcs = [wait(proc, 400) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    logs = [(tmp_path / f"{tag}_rank{rank}.log").read_text() for rank in (0, 1)]
    if not check:
        return rcs, logs
    for rank, (rc, log) in enumerate(zip(rcs, logs)):
        assert rc == 0, f"rank {rank} failed:\n{tail(log)}"
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
    env = train_env()
    env["DUMP_DIR"] = str(dump_dir)
    single = start(train_cmd(data_bin, root / "single", "--max-update", DDP_UPDATES, "--update-freq", 2,
                               max_tokens=DDP_MAX_TOKENS), root / "single.log", root)
    try:
        logs = _run_ranks(_distributed_cmds(data_bin, root / "ddp", driver, DDP_UPDATES, DDP_MAX_TOKENS), root,
                          "ddp", env)
    finally:
        rc = wait(single, 400)
    assert rc == 0, tail((root / "single.log").read_text())
    return dict(root=root, driver=driver, save_dir=root / "ddp", dump_dir=dump_dir, logs=logs,
                single_log=(root / "single.log").read_text())


@pytest.mark.slow
def test_two_process_gloo_training(ddp_run):
    logs, n_updates = ddp_run["logs"], DDP_UPDATES
    # Only rank 0 saves (and logs at INFO).
    assert saves_in(logs[0]) and not saves_in(logs[1])
    state = load_state(ddp_run["save_dir"] / "checkpoint_last.pt")
    assert num_updates(state) == n_updates
    # The importance-sampler state is identical on both ranks at every save...
    dumps = _assert_identical_dumps(ddp_run["dump_dir"], {n_updates})
    # ...and the checkpoint rank 0 wrote holds that same (all-reduced) history.
    hist, count = sampler_state(state)
    assert torch.equal(hist, dumps[n_updates][0]["history"]) and torch.equal(count, dumps[n_updates][0]["count"])
    assert count.sum() > 0

    # Loss vs. 1 process with --update-freq 2: the same batches form each update (rank r takes
    # batches r, r+2, ...; update-freq groups consecutive pairs), but both ranks draw noise and
    # timesteps from seed + num_updates while the single process continues its RNG for the second
    # micro-batch, and the single process pushes two sampler updates per step instead of one
    # all-reduced one. So losses agree only statistically.
    ddp_losses, single_losses = train_losses(logs[0]), train_losses(ddp_run["single_log"])
    steps = list(range(1, n_updates + 1))
    assert sorted(ddp_losses) == steps and sorted(single_losses) == steps
    ddp_entries, single_entries = train_inner_entries(logs[0]), train_inner_entries(ddp_run["single_log"])
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
    env = train_env()
    env["DUMP_DIR"] = str(dump_dir)
    more = DDP_UPDATES + 4
    extra = ["--load-checkpoint-on-all-dp-ranks"] if load_on_all_ranks else []
    cmds = [cmd + extra for cmd in _distributed_cmds(data_bin, save_dir, ddp_run["driver"], more, DDP_MAX_TOKENS)]
    rcs, logs = _run_ranks(cmds, tmp_path, "resume", env, check=False)
    for rank, (rc, log) in enumerate(zip(rcs, logs)):
        assert rc == 0, f"rank {rank} failed:\n{tail(log)}"
    assert re.search(rf"loaded checkpoint \S*checkpoint_last\.pt \(epoch \d+ @ {DDP_UPDATES} updates\)",
                     logs[0], re.IGNORECASE), tail(logs[0])
    assert sorted(train_losses(logs[0])) == list(range(DDP_UPDATES + 1, more + 1))
    assert num_updates(load_state(save_dir / "checkpoint_last.pt")) == more
    dumps = _assert_identical_dumps(dump_dir, {DDP_UPDATES, more})
    assert (dumps[more][0]["count"] >= dumps[DDP_UPDATES][0]["count"]).all()
