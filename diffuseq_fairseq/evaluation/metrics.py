"""DiffuSeq Table-1 metrics, computed the way the official ``scripts/eval_seq2seq.py`` does.

Pure functions over lists of strings. Tokens are ``str.split()`` (the text is already lowercased,
BERT-detokenized), except for ROUGE-L, which uses torchmetrics' default normalizer. Every score is
a fraction: 0.2413 means 24.13 in the paper's tables. Set-diversity metrics (self-BLEU, div-4)
return ``None`` when no example has two or more candidates, because they are undefined there.
"""
from __future__ import annotations

import re
from statistics import fmean
from typing import Optional, Sequence, Union

import sacrebleu
from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

# Chen & Cherry method 4, as in the official script. Its formula changed in nltk 3.6 (nltk#2676),
# so the nltk version must be pinned for comparable numbers.
_METHOD4 = SmoothingFunction().method4
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def _mean(values: Sequence[float]) -> float:
    return fmean(values) if values else 0.0


def _check_aligned(hyps: Sequence[str], refs: Sequence[str]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses but {len(refs)} references")


def sentence_bleu_score(hyp: str, ref: str) -> float:
    """nltk sentence BLEU-4 of ``hyp`` against the single reference ``ref``, method4 smoothing.

    The order matters (brevity penalty, clipping): DiffuSeq releases before e44113d swapped the
    two, and ports copied from them still do.
    """
    return float(sentence_bleu([ref.split()], hyp.split(), smoothing_function=_METHOD4))


def sentence_bleu_avg(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Mean sentence BLEU; the paper's "BLEU" column (not corpus BLEU)."""
    _check_aligned(hyps, refs)
    return _mean([sentence_bleu_score(h, r) for h, r in zip(hyps, refs)])


def _rouge_tokens(text: str) -> list[str]:
    """torchmetrics ROUGEScore's default normalizer and tokenizer (no stemming)."""
    return _NON_ALNUM.sub(" ", text.lower()).split()


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, 1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1]))
        previous = current
    return previous[-1]


def rouge_l_f1(hyp: str, ref: str) -> float:
    """ROUGE-L F-measure of one pair, equal to torchmetrics' ``rougeL_fmeasure``."""
    hyp_tokens, ref_tokens = _rouge_tokens(hyp), _rouge_tokens(ref)
    if not hyp_tokens or not ref_tokens:
        return 0.0
    lcs = _lcs_length(hyp_tokens, ref_tokens)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(hyp_tokens), lcs / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def rouge_l_f1_avg(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """Mean per-sentence ROUGE-L F1, without needing torchmetrics (whose default ROUGEScore also
    tries to download nltk punkt for rougeLsum)."""
    _check_aligned(hyps, refs)
    return _mean([rouge_l_f1(h, r) for h, r in zip(hyps, refs)])


def _distinct_1(hyp: str) -> float:
    tokens = hyp.split()
    return len(set(tokens)) / len(tokens) if tokens else 0.0


def dist_1_avg(hyps: Sequence[str]) -> float:
    """Intra-sentence diversity: unique / total unigrams per sentence (empty → 0), averaged."""
    return _mean([_distinct_1(h) for h in hyps])


def _multi(candidate_sets: Sequence[Sequence[str]]) -> list[Sequence[str]]:
    return [c for c in candidate_sets if len(c) >= 2]


def self_bleu(candidate_sets: Sequence[Sequence[str]]) -> Optional[float]:
    """Set diversity (lower = more diverse): per example the mean over pairs i<j of
    BLEU(hyp=s_i, ref=s_j), one direction only as in the official ``diversityOfSet``; averaged over
    examples with at least two candidates."""
    per_example = []
    for cands in _multi(candidate_sets):
        pairs = [
            sentence_bleu_score(cands[i], cands[j])
            for i in range(len(cands))
            for j in range(i + 1, len(cands))
        ]
        per_example.append(fmean(pairs))
    return fmean(per_example) if per_example else None


def div_4(candidate_sets: Sequence[Sequence[str]]) -> Optional[float]:
    """Set diversity (higher = more diverse): unique / total 4-grams pooled over an example's
    candidates, averaged over examples with at least two candidates.

    Examples whose candidates hold no 4-gram at all are skipped; the official script scores them 0,
    which only matters for outputs shorter than 4 tokens.
    """
    per_example = []
    for cands in _multi(candidate_sets):
        grams = []
        for cand in cands:
            tokens = cand.split()
            grams.extend(tuple(tokens[i : i + 4]) for i in range(len(tokens) - 3))
        if grams:
            per_example.append(len(set(grams)) / len(grams))
    return fmean(per_example) if per_example else None


def avg_len(hyps: Sequence[str]) -> float:
    """Mean number of whitespace tokens.

    The official "Len" column uses ``len(recover.split(' '))`` after deleting [CLS]/[SEP] by string
    replacement, which counts the empty strings left behind and comes out about 2 higher.
    """
    return _mean([len(h.split()) for h in hyps])


def corpus_sacrebleu(hyps: Sequence[str], refs: Sequence[str]) -> float:
    """sacrebleu corpus BLEU (default 13a tokenizer) as a fraction; a standard number that is not
    comparable with the paper's sentence-level BLEU."""
    _check_aligned(hyps, refs)
    return sacrebleu.corpus_bleu(list(hyps), [list(refs)]).score / 100.0


def bertscore_f1(
    hyps: Sequence[str], refs: Sequence[str], model_path: str, num_layers: Optional[int] = None
) -> float:
    """Mean BERTScore F1, no idf and no baseline rescaling, as in the official script.

    The paper used ``microsoft/deberta-xlarge-mnli``. A local model directory needs ``num_layers``
    because bert_score only knows default layers for hub names.
    """
    _check_aligned(hyps, refs)
    try:
        import bert_score
    except ImportError as err:
        raise ImportError("BERTScore needs the optional package bert-score (pip install bert-score)") from err
    if num_layers is None and model_path not in bert_score.utils.model2layers:
        raise ValueError(f"bert_score has no default layer for {model_path!r}; give the number of layers")
    _, _, f1 = bert_score.score(
        list(hyps), list(refs), model_type=model_path, num_layers=num_layers, idf=False, rescale_with_baseline=False
    )
    return float(f1.mean())


def evaluate(
    selected: Sequence[str],
    refs: Sequence[str],
    candidate_sets: Sequence[Sequence[str]],
    bert_model: Optional[str] = None,
    bert_layers: Optional[int] = None,
) -> dict[str, Union[float, int, None]]:
    """All metrics for one system: quality on ``selected`` (one hypothesis per source, e.g. the
    MBR pick) and set diversity on ``candidate_sets`` (all candidates per source)."""
    _check_aligned(selected, refs)
    if len(candidate_sets) != len(selected):
        raise ValueError(f"{len(candidate_sets)} candidate sets for {len(selected)} hypotheses")
    if not selected:
        raise ValueError("nothing to evaluate: no hypotheses")
    if bert_layers is not None and bert_model is None:
        raise ValueError("bert_layers given without bert_model")
    sizes = [len(c) for c in candidate_sets]
    result: dict[str, Union[float, int, None]] = {
        "bleu": sentence_bleu_avg(selected, refs),
        "rouge_l": rouge_l_f1_avg(selected, refs),
        "dist_1": dist_1_avg(selected),
        "self_bleu": self_bleu(candidate_sets),
        "div_4": div_4(candidate_sets),
        "avg_len": avg_len(selected),
        "sacrebleu": corpus_sacrebleu(selected, refs),
        "n": len(selected),
        # An int when every source has the same number of candidates (the usual case), else the mean.
        "candidates_per_source": sizes[0] if len(set(sizes)) == 1 else fmean(sizes),
    }
    if bert_model is not None:
        result["bertscore"] = bertscore_f1(selected, refs, bert_model, bert_layers)
    return result
