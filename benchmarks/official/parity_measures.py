"""What benchmarks/official_parity.py reads from its runs' update records, and its tables.

A record (train_tiny.py --record, fairseq_timed.py) holds per update the clock at its start, its
real tokens and its logged loss terms. Both sides are measured the same way: the steady-state time
of an update is the clock from the start of update ``warmup`` to the start of the last update,
divided by the updates in between, so it covers everything the loop does per update (data loading,
forward, backward, optimizer, EMA, logging) and nothing before the first update (start-up, data
preparation).
"""
import math
from statistics import fmean, stdev
from typing import Dict, List, Optional, Sequence

# The loss terms set side by side, per sentence and unweighted (the sentences' own terms): name -> (the
# official record's key, the plugin record's key). The loss is mse + decoder_nll + tT on both sides (the
# plugin's rounding_nll is decoder_nll), so loss - mse is decoder_nll + tT. nll is CE(lm_head(x̂0)) over the
# target span, which the official code logs and does not train (the plugin's anchor_nll). The training
# loss is the importance-weighted one each side minimised (equal to the loss during the sampler's
# uniform warm-up: until every step has 10 losses).
TERMS = {"training loss (weighted)": ("weighted_loss", "weighted_loss"), "loss": ("loss", "loss"),
         "mse": ("mse", "mse"), "loss - mse": (None, None), "nll (logged)": ("nll", "anchor_nll")}


def speed(record: dict, warmup: int) -> dict:
    """Seconds per update and real tokens per second over the updates from ``warmup`` on."""
    updates = record["updates"]
    if len(updates) < warmup + 2:
        raise ValueError(f"{len(updates)} updates recorded: the speed needs at least {warmup + 2} "
                         f"(--warmup-updates {warmup} skipped, one more to time)")
    timed = updates[warmup:-1]
    seconds = updates[-1]["start"] - updates[warmup]["start"]
    tokens = sum(u["tokens"] for u in timed)
    return {"updates": len(updates), "timed_updates": len(timed), "seconds_per_update": seconds / len(timed),
            "tokens_per_update": tokens / len(timed), "tokens_per_second": tokens / seconds}


def term_value(terms: dict, name: str, side: int) -> Optional[float]:
    """Term ``name`` of one update's logged terms (side 0: official, 1: plugin)."""
    if name == "loss - mse":
        return terms["loss"] - terms["mse"] if "loss" in terms and "mse" in terms else None
    return terms.get(TERMS[name][side])


def loss_windows(record: dict, side: int, window: int) -> List[dict]:
    """Per window of ``window`` updates: its last update and (mean, standard error) of every term."""
    updates, rows = record["updates"], []
    for end in range(window, len(updates) + 1, window):
        row = {"updates": end}
        for name in TERMS:
            values = [term_value(u["terms"], name, side) for u in updates[end - window:end]]
            values = [v for v in values if v is not None]
            if values:
                error = stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
                row[name] = (fmean(values), error)
        rows.append(row)
    return rows


def _number(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "n/a"


def _columns(rows: Sequence[Sequence[str]]) -> List[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in
                      enumerate(zip(row, widths))).rstrip() for row in rows]


def speed_table(speeds: Dict[str, dict], baseline: Dict[str, str]) -> List[str]:
    """One row per run; ``baseline[name]`` is the run whose tokens/s the ratio divides by."""
    rows = [("run", "updates timed", "s/update", "real tokens/update", "real tokens/s", "ratio")]
    for name, s in speeds.items():
        base = speeds.get(baseline.get(name, ""))
        ratio = f"{s['tokens_per_second'] / base['tokens_per_second']:.2f}x" if base and base is not s else "1"
        rows.append((name, str(s["timed_updates"]), f"{s['seconds_per_update']:.3f}", f"{s['tokens_per_update']:.0f}",
                     f"{s['tokens_per_second']:.0f}", ratio))
    return _columns(rows)


def loss_table(windows: Dict[str, List[dict]]) -> List[str]:
    """Every term at every window end, one column per run: mean ± standard error."""
    names = list(windows)
    rows = [("updates", "term", *names)]
    for index, first in enumerate(windows[names[0]]):
        for term in TERMS:
            cells = []
            for name in names:
                row = windows[name][index] if index < len(windows[name]) else {}
                mean, error = row.get(term, (math.nan, math.nan))
                cells.append(f"{mean:.4f} ± {error:.4f}")
            rows.append((str(first["updates"]), term, *cells))
    return _columns(rows)


def decode_table(decodes: Sequence[dict]) -> List[str]:
    rows = [("model", "decoder", "sampler", "candidates", "BLEU", "seconds", "sentences/s")]
    for d in decodes:
        rows.append((d["model"], d["decoder"], d["sampler"], str(d["candidates"]), f"{100 * d['bleu']:.2f}",
                     f"{d['seconds']:.1f}", _number(d["sentences_per_second"])))
    return _columns(rows)
