"""Tests for diffuseq_fairseq.evaluation: metrics against hand-computed values and the reference
libraries, the two output readers, and the diffuseq-eval CLI."""
import json
import math
import sys

import pytest

from diffuseq_fairseq.evaluation import cli, metrics, readers

SHORT, LONG = "the cat sat on", "the cat sat on the mat"


# ---------------------------------------------------------------- metrics


def test_bleu_identical_is_one():
    assert metrics.sentence_bleu_avg([LONG, SHORT], [LONG, SHORT]) == pytest.approx(1.0)


def test_bleu_hand_computed_and_order_matters():
    # hyp shorter than ref: all precisions 1, brevity penalty exp(1 - 6/4).
    assert metrics.sentence_bleu_score(SHORT, LONG) == pytest.approx(math.exp(-0.5))
    # swapped (the old DiffuSeq bug): no penalty, precisions 4/6, 3/5, 2/4, 1/3 -> (1/15)^(1/4).
    assert metrics.sentence_bleu_score(LONG, SHORT) == pytest.approx(15 ** -0.25)
    assert metrics.sentence_bleu_avg([SHORT], [LONG]) == pytest.approx(math.exp(-0.5))


def test_bleu_matches_nltk_call():
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    hyps = ["what is the best way to learn python ?", "how do i lose weight", "", "a"]
    refs = ["how can i learn python fast ?", "what is the fastest way to lose weight ?", "x y", "a b c"]
    smooth = SmoothingFunction().method4
    expected = [sentence_bleu([r.split()], h.split(), smoothing_function=smooth) for h, r in zip(hyps, refs)]
    assert metrics.sentence_bleu_avg(hyps, refs) == pytest.approx(sum(expected) / len(expected))


def test_rouge_l_hand_computed():
    assert metrics.rouge_l_f1(LONG, LONG) == pytest.approx(1.0)
    # normalized hyp: a cat sitting on the mat (6); ref: the cat sat on the red mat (7);
    # LCS "cat on the mat" = 4 -> P 4/6, R 4/7, F = 8/13.
    assert metrics.rouge_l_f1("A cat, sitting on the mat!", "the cat sat on the red mat") == pytest.approx(8 / 13)
    assert metrics.rouge_l_f1("", LONG) == 0.0
    assert metrics.rouge_l_f1("dog", LONG) == 0.0
    assert metrics.rouge_l_f1_avg([LONG, "dog"], [LONG, LONG]) == pytest.approx(0.5)


def test_rouge_l_matches_torchmetrics():
    rouge = pytest.importorskip("torchmetrics.text.rouge")
    scorer = rouge.ROUGEScore(rouge_keys="rougeL")  # rougeL only: no nltk punkt download
    hyps = ["what's the best way to learn Python?", "how do i lose weight", "", "a b a b c", "x"]
    refs = ["How can I learn python fast ?", "what is the fastest way to lose weight ?", "x y", "b a b c a", "x"]
    expected = [scorer(h, r)["rougeL_fmeasure"].item() for h, r in zip(hyps, refs)]
    for hyp, ref, value in zip(hyps, refs, expected):
        assert metrics.rouge_l_f1(hyp, ref) == pytest.approx(value, abs=1e-4)
    assert metrics.rouge_l_f1_avg(hyps, refs) == pytest.approx(sum(expected) / len(expected), abs=1e-4)


def test_dist_1_and_avg_len():
    assert metrics.dist_1_avg(["a a b"]) == pytest.approx(2 / 3)
    assert metrics.dist_1_avg(["a a b", "", "c d"]) == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert metrics.avg_len(["a a b", "", "c  d"]) == pytest.approx(5 / 3)


def test_self_bleu():
    assert metrics.self_bleu([[LONG, LONG, LONG]]) == pytest.approx(1.0)
    # one direction only: BLEU(hyp=s_i, ref=s_j) for i < j.
    assert metrics.self_bleu([[SHORT, LONG]]) == pytest.approx(math.exp(-0.5))
    assert metrics.self_bleu([[LONG, SHORT]]) == pytest.approx(15 ** -0.25)
    # single-candidate examples are skipped; none left -> undefined.
    assert metrics.self_bleu([[SHORT, LONG], [LONG]]) == pytest.approx(math.exp(-0.5))
    assert metrics.self_bleu([[LONG], [SHORT]]) is None


def test_div_4():
    # 4-grams (a b c d) x2, (b c d e), (b c d f): 3 unique / 4; second set 1 unique / 2.
    sets = [["a b c d e", "a b c d f"], ["x y z w", "x y z w"], ["a b", "c"], ["only one candidate here"]]
    assert metrics.div_4(sets) == pytest.approx((0.75 + 0.5) / 2)
    assert metrics.div_4([["a b", "c"]]) is None


def test_corpus_sacrebleu_is_fraction():
    assert metrics.corpus_sacrebleu([LONG], [LONG]) == pytest.approx(1.0)
    assert 0.0 < metrics.corpus_sacrebleu([SHORT + " mat"], [LONG]) < 1.0


def test_evaluate_keys_and_errors(monkeypatch):
    result = metrics.evaluate([LONG, SHORT], [LONG, LONG], [[LONG, SHORT], [SHORT, SHORT]])
    assert set(result) == {
        "bleu", "rouge_l", "dist_1", "self_bleu", "div_4", "avg_len", "sacrebleu", "n", "candidates_per_source"
    }
    assert result["n"] == 2 and result["candidates_per_source"] == 2
    assert result["bleu"] == pytest.approx((1 + math.exp(-0.5)) / 2)
    with pytest.raises(ValueError):
        metrics.evaluate([LONG], [LONG, LONG], [[LONG]])
    monkeypatch.setitem(sys.modules, "bert_score", None)
    with pytest.raises(ImportError, match="bert-score"):
        metrics.evaluate([LONG], [LONG], [[LONG]], bert_model="some/model", bert_layers=3)


# ---------------------------------------------------------------- readers

GENERATE_OUTPUT = """\
2024-05-01 12:00:00 | INFO | fairseq_cli.generate | {'_name': None, 'common': {'seed': 1}}
2024-05-01 12:00:01 | INFO | fairseq.tasks | [src] dictionary: 30522 types
S-10\thow do i learn python ?
T-10\thow can i learn python quickly ?
H-10\t-0.41\thow can i learn python ?
D-10\t-0.41\thow can i learn python ?
P-10\t-0.1 -0.2 -0.3 -0.4 -0.5 -0.6
H-10\t-0.93\thow do i learn python [PAD]
D-10\t-0.93\thow do i learn python [PAD]
P-10\t-0.2 -0.2 -0.3 -0.4 -0.5 -0.6
I-10\t10
E-10_0\twhat what what
2024-05-01 12:00:02 | INFO | fairseq_cli.generate | some progress line
S-2\twhy is the sky blue ?
T-2\t
H-2\t-0.20\twhy is the sky blue ?
D-2\t-0.20\twhy is the sky blue ?
H-2\t-0.50\twhy sky blue
D-2\t-0.50\twhy sky blue
Generate test with beam=2: BLEU4 = 10.00, 40.0/20.0/10.0/5.0 (BP=1.000, ratio=1.000)
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_fairseq_generate_reader(tmp_path):
    gens = readers.read_file(_write(tmp_path, "gen.txt", GENERATE_OUTPUT))
    assert gens.ids == [2, 10]
    assert gens.references == ["", "how can i learn python quickly ?"]
    assert gens.sources == ["why is the sky blue ?", "how do i learn python ?"]
    assert gens.candidates == [
        ["why is the sky blue ?", "why sky blue"],
        ["how can i learn python ?", "how do i learn python"],
    ]
    assert gens.selected == ["why is the sky blue ?", "how can i learn python ?"]


def test_fairseq_reader_falls_back_to_h_lines(tmp_path):
    text = "T-0\tx y\nH-0\t-1.0\tx y\nH-0\t-2.0\tx z\n"
    assert readers.read_file(_write(tmp_path, "h.txt", text)).candidates == [["x y", "x z"]]


def test_fairseq_reader_missing_target(tmp_path):
    text = "S-0\ta\nT-0\ta\nD-0\t-1\ta\nS-1\tb\nH-1\t-1\tb\nD-1\t-1\tb\n"
    path = _write(tmp_path, "no_target.txt", text)
    with pytest.raises(ValueError, match=r"no_target\.txt:5: id 1 "):
        readers.read_file(path)


def test_jsonl_reader_merges_seeds(tmp_path):
    seed1 = [
        {
            "recover": "[CLS] how are you [SEP] [PAD] [PAD]",
            "reference": "[CLS] how are you ? [SEP]",
            "source": "[CLS] hi [SEP]",
        },
        {"recover": "[CLS] fine [SEP]", "reference": "[CLS] i am fine [SEP]", "source": "[CLS] and you [SEP]"},
    ]
    seed2 = [dict(r, recover=r["recover"].replace("you", "u").replace("fine", "good")) for r in seed1]
    paths = [
        _write(tmp_path, f"seed{i}.json", "".join(json.dumps(r) + "\n" for r in rows))
        for i, rows in enumerate([seed1, seed2])
    ]
    gens = readers.read_files(paths)
    assert gens.ids == [0, 1]
    assert gens.references == ["how are you ?", "i am fine"]
    assert gens.sources == ["hi", "and you"]
    assert gens.candidates == [["how are you", "how are u"], ["fine", "good"]]


def test_jsonl_reader_bad_json(tmp_path):
    path = _write(tmp_path, "broken.jsonl", '{"recover": "a", "reference": "a", "source": ""}\n{"recover": "a",\n')
    with pytest.raises(ValueError, match=r"broken\.jsonl:2: invalid JSON"):
        readers.read_file(path)


def test_read_files_rejects_mismatched_seeds(tmp_path):
    one = _write(tmp_path, "one.json", json.dumps({"recover": "a", "reference": "a"}) + "\n")
    two = _write(tmp_path, "two.json", json.dumps({"recover": "a", "reference": "b"}) + "\n")
    with pytest.raises(ValueError, match="reference of id 0"):
        readers.read_files([one, two])


# ---------------------------------------------------------------- CLI


def test_cli_json(tmp_path, capsys):
    assert cli.main([_write(tmp_path, "gen.txt", GENERATE_OUTPUT), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {
        "bleu", "rouge_l", "dist_1", "self_bleu", "div_4", "avg_len", "sacrebleu", "n", "candidates_per_source"
    }
    assert result["n"] == 2 and result["candidates_per_source"] == 2
    assert 0.0 <= result["bleu"] <= 1.0


def test_cli_table(tmp_path, capsys):
    line = json.dumps({"recover": "[CLS] a b c d [SEP]", "reference": "[CLS] a b c d [SEP]", "source": ""})
    assert cli.main([_write(tmp_path, "one.json", line + "\n")]) == 0
    table = capsys.readouterr().out
    assert "bleu" in table and "1.0000" in table and "n/a" in table  # self-BLEU undefined with one seed


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
