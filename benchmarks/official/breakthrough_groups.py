"""How often does each group of training runs break through late? Groups of d=256 runs (replays of one official
lockstep run under different draws, free runs of either side) set side by side, each run's breakthrough found
as free_runs.py finds it, and the groups compared pairwise:

    .venv/bin/python benchmarks/official/breakthrough_groups.py \\
        rule='runs/ls300/rule_*' own='runs/ls300/own_*' official='runs/off256/official_*' --by 60

A run is a folder holding lockstep.json (lockstep_plugin.py: the plugin's logged x̂0 NLL, ``anchor_nll``),
lockstep.pt (lockstep_official.py: the official ``nll``) or record.json (free_runs.py: ``nll`` for the official
code, ``anchor_nll`` for the plugin). A run is *late* when it has not broken through by update --by; runs stopped before --by without a breakthrough are left out (their
outcome is unknown). For each pair of groups: the two-sided Fisher exact p of the late counts, and the
permutation p (100,000 random splits, seeded) of the mean x̂0 NLL over updates --nll-window of the runs that
reach its end. Seeds are not paired across groups: each group draws its own stream.
"""
import argparse
import glob
import itertools
import json
import math
import random
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import free_runs  # noqa: E402


def nll_curve(run: Path):
    """The logged x̂0 NLL per update of one run folder (a replay or a free run of either side); None for a
    folder with neither record (a replay still running writes lockstep.json only at its end)."""
    if (run / "lockstep.json").exists():
        return [row["plugin"]["anchor_nll"] for row in json.loads((run / "lockstep.json").read_text())["updates"]]
    if (run / "lockstep.pt").exists():
        import torch

        return [u["terms"]["nll"] for u in torch.load(run / "lockstep.pt", weights_only=False)["updates"]]
    if (run / "record.json").exists():
        updates = json.loads((run / "record.json").read_text())["updates"]
        return [u["terms"]["nll"] if "nll" in u["terms"] else u["terms"]["anchor_nll"] for u in updates]
    return None


def fisher_p(late_a: int, n_a: int, late_b: int, n_b: int) -> float:
    """Two-sided Fisher exact p of a 2×2 table: the hypergeometric tables as likely as the observed one or less."""
    late = late_a + late_b

    def probability(k: int) -> float:
        return math.comb(late, k) * math.comb(n_a + n_b - late, n_a - k) / math.comb(n_a + n_b, n_a)

    observed = probability(late_a)
    return min(1.0, sum(probability(k) for k in range(max(0, late - n_b), min(late, n_a) + 1)
                        if probability(k) <= observed * (1 + 1e-9)))


def permutation_p(a: list, b: list, splits: int = 100_000, seed: int = 0) -> float:
    """Two-sided permutation p of mean(a) − mean(b): exact when the splits are few, else random splits."""
    if math.comb(len(a) + len(b), len(a)) <= splits:
        return free_runs.permutation_p(a, b)
    pooled, observed, rng = a + b, abs(statistics.fmean(a) - statistics.fmean(b)), random.Random(seed)
    extreme = 0
    for _ in range(splits):
        rng.shuffle(pooled)
        extreme += abs(statistics.fmean(pooled[:len(a)]) - statistics.fmean(pooled[len(a):])) >= observed - 1e-12
    return extreme / splits


def outcomes(pattern: str, by: int, window: tuple, threshold: float) -> tuple:
    """([(run name, breakthrough or None, updates run, mean NLL over ``window`` or None)] per known outcome,
    [(run name, why it was left out)])."""
    rows, left_out = [], []
    folders = sorted({Path(p) for part in pattern.split(",") for p in glob.glob(part)}, key=lambda p: p.name)
    for folder in folders:
        if not folder.is_dir():
            continue
        nll = nll_curve(folder)
        if nll is None:
            left_out.append((folder.name, "no lockstep.json, lockstep.pt or record.json (running, or not a run)"))
            continue
        if len(nll) < 10:
            left_out.append((folder.name, f"{len(nll)} updates"))
            continue
        found = free_runs.breakthrough(nll, 10, threshold)
        if found is not None and found > by:
            found = None  # after --by counts as late, as a run stopped at --by would
        if found is None and len(nll) < by:
            left_out.append((folder.name, f"stopped at update {len(nll)}, before {by}, without a breakthrough"))
            continue
        first, last = window
        rows.append((folder.name, found, len(nll), statistics.fmean(nll[first - 1:last]) if len(nll) >= last else None))
    return rows, left_out


def late_count(rows: list) -> int:
    return sum(found is None for _, found, _, _ in rows)


def window_nll(rows: list) -> list:
    """The mean NLL over the window of each run that reaches its end."""
    return [value for *_, value in rows if value is not None]


def report(groups: dict, by: int, window: tuple, left_out: dict) -> str:
    lines = [f"# breakthrough: first update after the plateau whose 10-update mean x̂0 NLL is below the threshold; "
             f"late: none by update {by}"]
    for name, rows in groups.items():
        for run, found, length, nll in rows:
            shown = f"{nll:6.2f}" if nll is not None else "     -"
            lines.append(f"{name:<10} {run:<24} updates {length:>3}  breakthrough {found if found else f'none by {by}':>11}"
                         f"  x̂0 NLL {window[0]}-{window[1]} {shown}")
    for name, runs in left_out.items():
        for run, why in runs:
            lines.append(f"{name:<10} {run:<24} left out: {why}")
    lines.append("")
    for name, rows in groups.items():
        late, nll = late_count(rows), window_nll(rows)
        early = [found for _, found, _, _ in rows if found is not None]
        median = statistics.median(early) if early else float("nan")
        lines.append(f"{name:<10} runs {len(rows):>3}  late {late:>3} ({late / len(rows):.0%})  median breakthrough of "
                     f"the others {median:g}  mean x̂0 NLL {window[0]}-{window[1]} "
                     + (f"{statistics.fmean(nll):.2f} ({len(nll)} runs)" if nll else "-"))
    for (name_a, rows_a), (name_b, rows_b) in itertools.combinations(groups.items(), 2):
        late_a, late_b = late_count(rows_a), late_count(rows_b)
        nll_a, nll_b = window_nll(rows_a), window_nll(rows_b)
        perm = f"{permutation_p(nll_a, nll_b):.3f}" if len(nll_a) > 1 and len(nll_b) > 1 else "-"
        lines.append(f"{name_a} against {name_b}: late {late_a}/{len(rows_a)} against {late_b}/{len(rows_b)}, "
                     f"Fisher exact p {fisher_p(late_a, len(rows_a), late_b, len(rows_b)):.3f}; "
                     f"mean x̂0 NLL permutation p {perm}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("groups", nargs="+", metavar="NAME=GLOB[,GLOB]",
                        help="a group name and globs of its run folders")
    parser.add_argument("--by", type=int, default=60, help="late: no breakthrough by this update")
    parser.add_argument("--nll-window", default="41-60", help="updates FIRST-LAST whose mean x̂0 NLL is compared")
    parser.add_argument("--breakthrough-nll", type=float, default=5.0)
    args = parser.parse_args(argv)
    first, _, last = args.nll_window.partition("-")
    window = (int(first), int(last))
    groups, left_out = {}, {}
    for spec in args.groups:
        name, sep, pattern = spec.partition("=")
        if not sep or not name:
            raise SystemExit(f"group {spec!r}: expected NAME=GLOB")
        rows, left_out[name] = outcomes(pattern, args.by, window, args.breakthrough_nll)
        if not rows:
            raise SystemExit(f"group {name}: no run folder with a known outcome matches {pattern!r}")
        groups[name] = rows
    print(report(groups, args.by, window, left_out))


if __name__ == "__main__":
    main()
