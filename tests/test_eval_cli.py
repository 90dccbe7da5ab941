"""The diffuseq-eval CLI: its table (scores x100, labelled), --json (fractions), --refs, its
warnings and its errors (exit status 2, no traceback)."""
import json

import pytest
from test_readers import GENERATE_OUTPUT, _write

from diffuseq_fairseq.evaluation import cli, metrics

KEYS = {"bleu", "rouge_l", "dist_1", "self_bleu", "div_4", "avg_len", "sacrebleu", "n", "candidates_per_source"}


def test_cli_json(tmp_path, capsys):
    assert cli.main([_write(tmp_path, "gen.txt", GENERATE_OUTPUT), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == KEYS
    assert result["n"] == 2 and result["candidates_per_source"] == 2
    assert 0.0 <= result["bleu"] <= 1.0


def test_cli_table_shows_the_scores_x100_and_says_so(tmp_path, capsys):
    line = json.dumps({"recover": "[CLS] a b c d [SEP]", "reference": "[CLS] a b c d [SEP]", "source": ""})
    assert cli.main([_write(tmp_path, "one.json", line + "\n")]) == 0
    rows = {row.split()[0]: row.split()[1:] for row in capsys.readouterr().out.splitlines()}
    assert set(rows) == KEYS
    assert rows["bleu"][:2] == ["100.00", "x100"] and rows["sacrebleu"][:2] == ["100.00", "x100"]
    assert rows["self_bleu"][:2] == ["n/a", "x100"]  # undefined with one candidate per source
    assert rows["avg_len"][:2] == ["4.00", "average"] and rows["n"][:2] == ["1", "sources"]


def test_cli_help_states_both_scales(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "The table shows the scores x100" in text
    assert "--json prints the same keys with the scores as fractions in [0, 1]" in text


def test_cli_refuses_a_concatenated_output(tmp_path, capsys):
    """`cat gen.txt gen.txt > g2.txt; diffuseq-eval g2.txt` reported 2 candidates per source,
    self-BLEU 1.0 and div-4 0.5."""
    assert cli.main([_write(tmp_path, "g2.txt", GENERATE_OUTPUT + GENERATE_OUTPUT)]) == 2
    err = capsys.readouterr().err
    assert f"diffuseq-eval: error: {tmp_path / 'g2.txt'}:" in err and "second S- line for id 10" in err


def test_cli_warns_about_bpe_separators(tmp_path, capsys):
    text = "S-0\tdie kat@@ ze\nT-0\tthe cat\nH-0\t-1\tthe c@@ at\nD-0\t-1\tthe c@@ at\n"
    path = _write(tmp_path, "bpe.txt", text)
    assert cli.main([path, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["n"] == 1
    assert (f"diffuseq-eval: warning: {path}: 3 lines still hold BPE separators ('@@ '), so the scores are over "
            "subword pieces: add --remove-bpe to fairseq-generate") in captured.err
    assert cli.main([_write(tmp_path, "plain.txt", GENERATE_OUTPUT)]) == 0
    assert capsys.readouterr().err == ""


def test_cli_refs_scores_against_every_reference(tmp_path, capsys):
    ids_in_order = "".join(f"S-{k}\tsource {k}\nT-{k}\tt line {k}\nH-{k}\t-1\t{h}\nD-{k}\t-1\t{h}\n"
                           for k, h in enumerate(["a cat sat on the mat today", "the cat sat on the mat"]))
    gen = _write(tmp_path, "gen.txt", ids_in_order)
    refs = [_write(tmp_path, "test.ref1", "a cat sat on a mat\nthe cat is on the mat\n"),
            _write(tmp_path, "test.ref2", "the dog sat on the mat today\nthere is a cat on the mat\n")]
    assert cli.main([gen, "--refs", *refs, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    expected = metrics.evaluate(["a cat sat on the mat today", "the cat sat on the mat"], None,
                                [["a cat sat on the mat today"], ["the cat sat on the mat"]],
                                reference_sets=[["a cat sat on a mat", "the dog sat on the mat today"],
                                                ["the cat is on the mat", "there is a cat on the mat"]])
    assert result == expected and set(result) == KEYS | {"references_per_source"}
    assert result["references_per_source"] == 2
    assert cli.main([gen, "--refs", *refs]) == 0
    assert "references_per_source 2 references per source" in " ".join(capsys.readouterr().out.split())


def test_cli_refs_errors(tmp_path, capsys):
    gen = _write(tmp_path, "gen.txt", GENERATE_OUTPUT)  # ids 2 and 10
    refs = _write(tmp_path, "test.ref1", "a\nb\n")
    assert cli.main([gen, "--refs", refs]) == 2
    assert f"{gen}: reference files need the ids 0..N-1" in capsys.readouterr().err
    one = _write(tmp_path, "one.json", json.dumps({"recover": "a", "reference": "a"}) + "\n")
    assert cli.main([one, "--refs", refs]) == 2
    assert f"{refs}: 2 lines, but {one} holds 1 sources" in capsys.readouterr().err
    bpe_refs = _write(tmp_path, "bpe.ref", "a@@ b\n")
    assert cli.main([one, "--refs", bpe_refs]) == 0
    assert f"{bpe_refs}: 1 lines still hold BPE separators" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("no_target.txt", "H-0\t-1\ta\nD-0\t-1\ta\n", "no_target.txt:1"),
        ("broken.jsonl", "{oops\n", "broken.jsonl:1"),
    ],
)
def test_cli_errors(tmp_path, capsys, name, text, message):
    assert cli.main([_write(tmp_path, name, text)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_missing_file(tmp_path, capsys):
    assert cli.main([str(tmp_path / "absent.txt")]) == 2
    assert "absent.txt" in capsys.readouterr().err
