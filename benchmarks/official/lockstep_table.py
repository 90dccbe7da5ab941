"""The table of a lockstep comparison (lockstep_official.py, then lockstep_plugin.py once per optimizer).

    .venv/bin/python benchmarks/official/lockstep_table.py runs/official_lockstep/plugin_adamw/lockstep.json \\
        runs/official_lockstep/plugin_adam/lockstep.json

For each replay: the loss (mse + decoder NLL + tT) and the logged x̂0 NLL of both sides, averaged over windows of
--window updates, with the largest relative loss difference of a single update; then, at each update where the
official weights were kept, how far the plugin's are from them: the L2 distance over all parameters relative to
how far the official weights moved since the initialisation, and the largest single-parameter ratio.
"""
import argparse
import json
from pathlib import Path


def window_rows(updates: list, window: int) -> list:
    rows = []
    for start in range(0, len(updates), window):
        part = updates[start:start + window]

        def mean(values):
            return sum(values) / len(values)

        gap = max(abs(u["plugin"]["loss"] - u["official"]["loss"]) / abs(u["official"]["loss"]) for u in part)
        rows.append(f"| {part[0]['update']}–{part[-1]['update']} | {mean([u['official']['loss'] for u in part]):.4f} "
                    f"| {mean([u['plugin']['loss'] for u in part]):.4f} | {gap:.1e} "
                    f"| {mean([u['official']['nll'] for u in part]):.2f} | {mean([u['plugin']['anchor_nll'] for u in part]):.2f} |")
    return rows


def table(replays: list, window: int) -> str:
    lines = []
    for path in replays:
        replay = json.loads(Path(path).read_text())
        updates = replay["updates"]
        variant = "".join(f", {flag}" for flag, key in (("own initialisation", "own_init"), ("own draws", "own_draws"))
                          if replay.get(key))
        lines += [f"## plugin --optimizer {replay['optimizer']}{variant} ({path})", "",
                  "| updates | official loss | plugin loss | largest relative loss difference | official x̂0 NLL "
                  "| plugin x̂0 NLL |", "|---|---|---|---|---|---|", *window_rows(updates, window)]
        compared = [u for u in updates if "weights" in u]
        if compared:
            lines += ["", "| after update | ‖plugin − official‖ / ‖official − initial‖ | largest parameter ratio | at |",
                      "|---|---|---|---|"]
            lines += [f"| {u['update']} | {u['weights']['relative_l2']:.2e} | {u['weights']['worst_max_ratio']:.2e} "
                      f"| {u['weights']['worst_parameter']} |" for u in compared]
        lines.append("")
    return "\n".join(lines)


def variant(replay: dict) -> str:
    """What a replay changed from the exact lockstep (the official initialisation, batches and draws)."""
    parts = [f"--optimizer {replay['optimizer']}"]
    seed = "the official run's" if replay.get("seed") is None else replay["seed"]
    if replay.get("init_from"):
        parts.append(f"official init {Path(replay['init_from']).parent.name}")
    if replay.get("own_init"):
        parts.append(f"plugin init (seed {seed})")
    if replay.get("own_draws"):
        parts.append(f"plugin's own draws (fairseq seed {seed})")
    if replay.get("draw_seed") is not None:
        parts.append(f"official-rule draws, seed {replay['draw_seed']}")
    if replay.get("batches_from"):
        parts.append(f"fairseq's batches (--batch-order random, seed {replay.get('batch_seed')})")
    return ", ".join(parts)


def summary(replays: list, window: int) -> str:
    """One row per replay: its x̂0 NLL per window of updates (the breakthrough shows as the fall from about 11
    to about 3) and its last window's loss; the official run's row first."""
    loaded = [json.loads(Path(path).read_text()) for path in replays]
    count = len(loaded[0]["updates"])
    starts = range(0, count, window)
    head = " | ".join(f"NLL {s + 1}–{min(s + window, count)}" for s in starts)
    lines = [f"| run | {head} | loss {count - window + 1}–{count} |", "|---" * (len(starts) + 2) + "|"]

    def row(label, updates, side, key):
        nll = " | ".join(f"{sum(u[side][key] for u in updates[s:s + window]) / len(updates[s:s + window]):.2f}"
                         for s in starts)
        last = updates[-window:]
        return f"| {label} | {nll} | {sum(u[side]['loss'] for u in last) / len(last):.4f} |"

    lines.append(row("official (lockstep run)", loaded[0]["updates"], "official", "nll"))
    lines += [row(f"plugin, {variant(replay)}", replay["updates"], "plugin", "anchor_nll") for replay in loaded]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("replays", nargs="+", type=Path, help="lockstep.json files written by lockstep_plugin.py")
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--summary", action="store_true", help="one row of x̂0 NLL per window for each replay instead")
    args = parser.parse_args(argv)
    print(summary(args.replays, args.window) if args.summary else table(args.replays, args.window))


if __name__ == "__main__":
    main()
