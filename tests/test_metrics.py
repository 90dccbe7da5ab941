"""diffuseq_fairseq.evaluation.metrics against hand-computed values and the libraries the official
script calls (nltk, torchmetrics, sacrebleu), with one and with several references per source."""
import math
import sys

import pytest
import sacrebleu

from diffuseq_fairseq.evaluation import metrics

SHORT, LONG = "the cat sat on", "the cat sat on the mat"


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


def test_div_4_scores_a_set_without_4_grams_zero_as_the_official_script():
    # 4-grams (a b c d) x2, (b c d e), (b c d f): 3 unique / 4; second set 1 unique / 2; third set has
    # no 4-gram: 0 (distinct_n_gram_inter_sent returns 0 when total_ngrams == 0). Single-candidate
    # sources are left out (the official script computes diversity only over several files).
    sets = [["a b c d e", "a b c d f"], ["x y z w", "x y z w"], ["a b", "c"], ["only one candidate here"]]
    assert metrics.div_4(sets) == pytest.approx((0.75 + 0.5 + 0.0) / 3)
    assert metrics.div_4([["a b", "c"]]) == 0.0
    assert metrics.div_4([["only one candidate here"]]) is None


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




# ---------------------------------------------------------------- several references

HYP = "a cat sat on the mat today"
REF_A, REF_B = "a cat sat on a mat", "the dog sat on the mat today"


def test_multi_reference_bleu_hand_computed():
    # Clipped counts against the most generous reference: 1-grams 7/7, 2-grams 6/6, 3-grams 5/5
    # (a cat sat, cat sat on from A; sat on the, on the mat, the mat today from B), 4-grams 3/4
    # (a cat sat on from A; sat on the mat, on the mat today from B). The closest reference length is
    # B's 7 = the hypothesis length: no brevity penalty. No zero count, so method4 changes nothing.
    assert metrics.multi_reference_bleu(HYP, [REF_A, REF_B]) == pytest.approx(0.75 ** 0.25)
    assert metrics.multi_reference_bleu(HYP, [REF_A, REF_B]) > max(
        metrics.sentence_bleu_score(HYP, REF_A), metrics.sentence_bleu_score(HYP, REF_B))
    assert metrics.multi_reference_bleu(HYP, [REF_B]) == metrics.sentence_bleu_score(HYP, REF_B)


def test_multi_reference_bleu_matches_nltk_with_the_list_of_references():
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    cases = [(HYP, [REF_A, REF_B]),
             ("how do i lose weight", ["how can i lose weight ?", "what is the way to lose weight"]),
             ("", ["x y", "z"]), ("a", ["a b c", "a", "b"]), ("the the the the", ["the cat", "the mat the"])]
    for hyp, refs in cases:
        expected = sentence_bleu([r.split() for r in refs], hyp.split(), smoothing_function=SmoothingFunction().method4)
        assert metrics.multi_reference_bleu(hyp, refs) == pytest.approx(expected, abs=1e-12)


def test_multi_reference_rouge_l_is_the_best_f1():
    # A: LCS a cat sat on mat = 5, P 5/7, R 5/6, F 10/13; B: LCS sat on the mat today = 5, F 5/7.
    assert metrics.rouge_l_f1(HYP, REF_A) == pytest.approx(10 / 13)
    assert metrics.rouge_l_f1(HYP, REF_B) == pytest.approx(5 / 7)
    assert metrics.multi_reference_rouge_l(HYP, [REF_A, REF_B]) == pytest.approx(10 / 13)
    assert metrics.multi_reference_rouge_l(HYP, [REF_B, REF_A]) == pytest.approx(10 / 13)


def test_multi_reference_sacrebleu_matches_sacrebleu():
    hyps = [HYP, "how do i lose weight"]
    sets = [[REF_A, REF_B], ["how can i lose weight ?", "what is the way to lose weight"]]
    expected = sacrebleu.corpus_bleu(hyps, [[REF_A, sets[1][0]], [REF_B, sets[1][1]]]).score / 100
    assert metrics.multi_reference_sacrebleu(hyps, sets) == pytest.approx(expected)
    ragged = sacrebleu.corpus_bleu(hyps, [[REF_A, sets[1][0]], [REF_B, None]]).score / 100
    assert metrics.multi_reference_sacrebleu(hyps, [[REF_A, REF_B], sets[1][:1]]) == pytest.approx(ragged)


def test_evaluate_with_reference_sets():
    selected, sets = [HYP, SHORT], [[REF_A, REF_B], [LONG, SHORT]]
    candidates = [[HYP, REF_A], [SHORT, LONG]]
    result = metrics.evaluate(selected, None, candidates, reference_sets=sets)
    single = metrics.evaluate(selected, [REF_B, LONG], candidates)
    assert set(result) == set(single) | {"references_per_source"}
    assert result["references_per_source"] == 2
    assert result["bleu"] == pytest.approx((0.75 ** 0.25 + 1.0) / 2)
    assert result["rouge_l"] == pytest.approx((10 / 13 + 1.0) / 2)
    assert result["sacrebleu"] == pytest.approx(metrics.multi_reference_sacrebleu(selected, sets))
    for key in ("dist_1", "self_bleu", "div_4", "avg_len", "n", "candidates_per_source"):
        assert result[key] == single[key]  # the candidate metrics do not look at references
    # One reference per source reduces to the single-reference metrics exactly.
    one = metrics.evaluate(selected, ["x"], candidates, reference_sets=[[REF_B], [LONG]])
    assert {k: v for k, v in one.items() if k != "references_per_source"} == single
    uneven = metrics.evaluate(selected, None, candidates, reference_sets=[[REF_A, REF_B, LONG], [LONG]])
    assert uneven["references_per_source"] == 2.0
    with pytest.raises(ValueError, match="source 1 has no reference"):
        metrics.evaluate(selected, None, candidates, reference_sets=[[REF_A], []])
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        metrics.evaluate(selected, None, candidates, reference_sets=[[REF_A]])


def test_bertscore_gets_every_reference(monkeypatch):
    """bert_score takes a list of references per candidate and keeps the best F1 (bert-score is an
    optional dependency, so a stand-in module records the call)."""
    import types

    import torch

    calls = []

    def score(cands, refs, **kwargs):
        calls.append((cands, refs, kwargs))
        return None, None, torch.tensor([0.5, 0.7])

    fake = types.SimpleNamespace(score=score, utils=types.SimpleNamespace(model2layers={"hub/model": 9}))
    monkeypatch.setitem(sys.modules, "bert_score", fake)
    sets = [[REF_A, REF_B], [LONG]]
    result = metrics.evaluate([HYP, SHORT], None, [[HYP], [SHORT]], bert_model="hub/model", reference_sets=sets)
    assert result["bertscore"] == pytest.approx(0.6)
    assert calls[-1][:2] == ([HYP, SHORT], sets)
    assert calls[-1][2] == dict(model_type="hub/model", num_layers=None, idf=False, rescale_with_baseline=False)
    metrics.evaluate([HYP], [REF_A], [[HYP]], bert_model="hub/model")
    assert calls[-1][1] == [REF_A]  # one reference per candidate, as the official script
