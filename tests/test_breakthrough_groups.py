"""benchmarks/official/breakthrough_groups.py on made-up run folders: which runs count as late, which are left out,
and its exact tests against hand computations."""
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "official"))
import breakthrough_groups as groups  # noqa: E402

PLATEAU, LEARNED = 12.0, 2.0


def curve(breakthrough_at, length):
    """An x̂0 NLL curve: a plateau, then (from ``breakthrough_at`` on, if given) learned."""
    return [LEARNED if breakthrough_at is not None and update >= breakthrough_at else PLATEAU for update in range(length)]


def replay(folder: Path, nll):
    folder.mkdir(parents=True)
    rows = [{"update": i + 1, "plugin": {"anchor_nll": value}} for i, value in enumerate(nll)]
    (folder / "lockstep.json").write_text(json.dumps({"updates": rows}))


def free_run(folder: Path, nll, key):
    folder.mkdir(parents=True)
    (folder / "record.json").write_text(json.dumps({"updates": [{"terms": {key: value}} for value in nll]}))


def test_late_early_and_unknown_runs(tmp_path):
    replay(tmp_path / "own_1", curve(30, 60))      # 10-update mean below 5 once 8 of 10 are learned: update 38
    replay(tmp_path / "own_2", curve(None, 60))    # never: late
    replay(tmp_path / "own_3", curve(58, 66))      # after update 60: late at --by 60
    replay(tmp_path / "own_4", curve(None, 40))    # stopped at 40 without one: unknown
    (tmp_path / "own_5").mkdir()                   # still running: no record yet
    rows, left_out = groups.outcomes(str(tmp_path / "own_*"), 60, (41, 60), 5.0)
    assert [(name, found) for name, found, _, _ in rows] == [("own_1", 38), ("own_2", None), ("own_3", None)]
    assert rows[0][3] == LEARNED and rows[1][3] == PLATEAU
    assert [name for name, _ in left_out] == ["own_4", "own_5"]


def test_free_runs_of_either_side_read_their_own_nll(tmp_path):
    free_run(tmp_path / "official_102", curve(20, 60), "nll")
    free_run(tmp_path / "plugin_padded_102", curve(None, 60), "anchor_nll")
    official, _ = groups.outcomes(str(tmp_path / "official_*"), 60, (41, 60), 5.0)
    plugin, _ = groups.outcomes(str(tmp_path / "plugin_*"), 60, (41, 60), 5.0)
    assert official[0][1] == 28 and plugin[0][1] is None


def test_fisher_exact_against_hand_computation():
    # 3 of 3 late against 0 of 3: the observed table and its mirror, each 1 / C(6, 3)
    assert math.isclose(groups.fisher_p(3, 3, 0, 3), 2 / 20)
    # 2 of 13 against 5 of 13: tables with 0-2 or 5-7 late on the first side, 0.37826 (R's fisher.test)
    assert math.isclose(groups.fisher_p(2, 13, 5, 13), 0.3782608695652174)
    assert groups.fisher_p(1, 4, 1, 4) == 1.0


def test_permutation_exact_when_few_splits_and_seeded_otherwise():
    assert groups.permutation_p([0.0, 0.0], [1.0, 1.0]) == 2 / 6  # the two extreme splits of C(4, 2)
    a, b = [float(i) for i in range(12)], [float(i) + 3 for i in range(12)]
    assert groups.permutation_p(a, b, splits=2000) == groups.permutation_p(a, b, splits=2000)
    assert 0 < groups.permutation_p(a, b, splits=2000) < 0.2


def test_report_counts_and_lists_what_it_left_out(tmp_path):
    replay(tmp_path / "a_1", curve(None, 60))
    replay(tmp_path / "b_1", curve(20, 60))
    rows_a, out_a = groups.outcomes(str(tmp_path / "a_*"), 60, (41, 60), 5.0)
    rows_b, _ = groups.outcomes(str(tmp_path / "b_*"), 60, (41, 60), 5.0)
    text = groups.report({"a": rows_a, "b": rows_b}, 60, (41, 60), {"a": [("a_2", "no record")], "b": []})
    assert "a_2" in text and "left out: no record" in text
    assert "late   1 (100%)" in text and "late 1/1 against 0/1, Fisher exact p 1.000" in text
