"""The clocks and tables of benchmarks/official_parity.py (benchmarks/official/parity_measures.py), on made-up records."""
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "official"))
import parity_measures as measures  # noqa: E402


def record(starts, tokens, terms):
    return {"updates": [{"start": s, "tokens": n, "terms": t} for s, n, t in zip(starts, tokens, terms)]}


def test_speed_counts_from_the_warmup_update_to_the_start_of_the_last():
    # Update 0 (start-up stalls) and the last update (its end is not clocked) are left out.
    timed = measures.speed(record([0.0, 10.0, 12.0, 14.0, 16.0], [99, 100, 100, 200, 7], [{}] * 5), warmup=1)
    assert timed == {"updates": 5, "timed_updates": 3, "seconds_per_update": 2.0, "tokens_per_update": 400 / 3,
                     "tokens_per_second": 400 / 6}


def test_speed_needs_one_timed_update():
    with pytest.raises(ValueError, match="3 updates recorded: the speed needs at least 4"):
        measures.speed(record([0.0, 1.0, 2.0], [1, 1, 1], [{}] * 3), warmup=2)


def test_loss_windows_pair_the_official_and_plugin_terms():
    official = record(range(4), [1] * 4, [{"loss": 1.0 + i, "mse": 0.5, "nll": 3.0, "weighted_loss": 1.0}
                                          for i in range(4)])
    plugin = record(range(4), [1] * 4, [{"loss": 2.0, "mse": 1.5, "anchor_nll": 4.0 + i, "rounding_nll": 0.5}
                                        for i in range(4)])
    first, second = measures.loss_windows(official, 0, window=2)
    assert first["updates"] == 2 and first["loss"] == (1.5, 0.5) and first["loss - mse"] == (1.0, 0.5)
    assert first["training loss (weighted)"] == (1.0, 0.0)
    assert second["nll (logged)"] == (3.0, 0.0)
    plugin_rows = measures.loss_windows(plugin, 1, window=2)
    assert [row["nll (logged)"] for row in plugin_rows] == [(4.5, 0.5), (6.5, 0.5)]
    assert plugin_rows[0]["loss - mse"] == (0.5, 0.0)


def test_a_window_of_one_update_has_no_standard_error():
    (row,) = measures.loss_windows(record([0], [1], [{"loss": 2.0, "mse": 1.0}]), 0, window=1)
    assert row["loss"][0] == 2.0 and math.isnan(row["loss"][1]) and "nll (logged)" not in row


def test_tables_show_ratios_to_their_baseline_and_every_decode():
    speeds = {"official": {"timed_updates": 3, "seconds_per_update": 2.0, "tokens_per_update": 100, "tokens_per_second": 50},
              "plugin": {"timed_updates": 3, "seconds_per_update": 0.5, "tokens_per_update": 100, "tokens_per_second": 200}}
    lines = measures.speed_table(speeds, {"plugin": "official"})
    assert lines[1].split()[-1] == "1" and lines[2].split()[-1] == "4.00x"
    decodes = [{"model": "official", "decoder": "plugin", "sampler": "ddim 20", "candidates": 10, "bleu": 0.1234,
                "seconds": 0.0, "sentences_per_second": math.nan}]
    assert measures.decode_table(decodes)[1].split()[-3:] == ["12.34", "0.0", "n/a"]
    windows = {"a": [{"updates": 2, "loss": (1.0, 0.1)}], "b": [{"updates": 2, "loss": (1.1, 0.2)}]}
    table = measures.loss_table(windows)
    assert len(table) == 1 + len(measures.TERMS)  # a header, then one row per term at the one window end
    rows = dict(zip(measures.TERMS, table[1:]))
    assert "1.0000 ± 0.1000" in rows["loss"] and "1.1000 ± 0.2000" in rows["loss"] and "nan ± nan" in rows["mse"]
