"""DiffuSeq Table-1 metrics, computed the way the official ``scripts/eval_seq2seq.py`` does.

Pure functions over lists of strings. Tokens are ``str.split()`` (the text is already lowercased,
BERT-detokenized), except for ROUGE-L, which uses torchmetrics' default normalizer. Every score is
a fraction: 0.2413 means 24.13 in the paper's tables. Set-diversity metrics (self-BLEU, div-4)
return ``None`` when no example has two or more candidates, because they are undefined there.

Several references per source (``reference_sets``): sentence BLEU takes them all at once (nltk's
multi-reference BLEU: clipped counts against the most generous reference, brevity penalty against
the closest length), ROUGE-L takes the best F1 over them, sacreBLEU its own multi-reference corpus
BLEU. The official script has a single reference, which this reduces to exactly.
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
    return multi_reference_bleu(hyp, [ref])


def multi_reference_bleu(hyp: str, refs: Sequence[str]) -> float:
    """nltk sentence BLEU-4 of ``hyp`` against all of ``refs`` in one call, method4 smoothing."""
    return float(sentence_bleu([ref.split() for ref in refs], hyp.split(), smoothing_function=_METHOD4))


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


def multi_reference_rouge_l(hyp: str, refs: Sequence[str]) -> float:
    """The best ROUGE-L F1 of ``hyp`` over ``refs``."""
    return max(rouge_l_f1(hyp, ref) for ref in refs)


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
    candidates, averaged over examples with at least two candidates. An example whose candidates
    hold no 4-gram at all (every one shorter than 4 tokens) scores 0, as in the official
    ``distinct_n_gram_inter_sent``."""
    per_example = []
    for cands in _multi(candidate_sets):
        grams = []
        for cand in cands:
            tokens = cand.split()
            grams.extend(tuple(tokens[i : i + 4]) for i in range(len(tokens) - 3))
        per_example.append(len(set(grams)) / len(grams) if grams else 0.0)
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
    return multi_reference_sacrebleu(hyps, [[ref] for ref in refs])


def multi_reference_sacrebleu(hyps: Sequence[str], reference_sets: Sequence[Sequence[str]]) -> float:
    """sacrebleu corpus BLEU against every source's references (a source with fewer references than
    the most has its missing ones as None, which sacrebleu skips)."""
    _check_aligned(hyps, reference_sets)
    width = max(len(refs) for refs in reference_sets)
    streams = [[refs[k] if k < len(refs) else None for refs in reference_sets] for k in range(width)]
    return sacrebleu.corpus_bleu(list(hyps), streams).score / 100.0


def bertscore_f1(
    hyps: Sequence[str], refs: Sequence[Union[str, Sequence[str]]], model_path: str, num_layers: Optional[int] = None
) -> float:
    """Mean BERTScore F1, no idf and no baseline rescaling, as in the official script. ``refs``
    holds one reference or a list of references per hypothesis (bert_score keeps the best F1).

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


def _count(sizes: Sequence[int]) -> Union[int, float]:
    """An int when every source has the same number (the usual case), else the mean."""
    return sizes[0] if len(set(sizes)) == 1 else fmean(sizes)


def _check_inputs(selected, refs, candidate_sets, bert_model, bert_layers, reference_sets) -> None:
    if reference_sets is None:
        _check_aligned(selected, refs)
    else:
        _check_aligned(selected, reference_sets)
        empty = next((k for k, refs_k in enumerate(reference_sets) if not refs_k), None)
        if empty is not None:
            raise ValueError(f"source {empty} has no reference")
    if len(candidate_sets) != len(selected):
        raise ValueError(f"{len(candidate_sets)} candidate sets for {len(selected)} hypotheses")
    if not selected:
        raise ValueError("nothing to evaluate: no hypotheses")
    if bert_layers is not None and bert_model is None:
        raise ValueError("bert_layers given without bert_model")


def evaluate(
    selected: Sequence[str],
    refs: Optional[Sequence[str]],
    candidate_sets: Sequence[Sequence[str]],
    bert_model: Optional[str] = None,
    bert_layers: Optional[int] = None,
    reference_sets: Optional[Sequence[Sequence[str]]] = None,
) -> dict[str, Union[float, int, None]]:
    """All metrics for one system: quality on ``selected`` (one hypothesis per source, e.g. the
    MBR pick) and set diversity on ``candidate_sets`` (all candidates per source).

    Quality is against ``refs`` (one reference per source), or, given ``reference_sets`` (the
    references of each source), against all of them; ``refs`` is then not used (may be None), and
    the result also says ``references_per_source``.
    """
    _check_inputs(selected, refs, candidate_sets, bert_model, bert_layers, reference_sets)
    multi = reference_sets is not None
    if not multi:
        reference_sets = [[ref] for ref in refs]
    result: dict[str, Union[float, int, None]] = {
        "bleu": _mean([multi_reference_bleu(h, r) for h, r in zip(selected, reference_sets)]),
        "rouge_l": _mean([multi_reference_rouge_l(h, r) for h, r in zip(selected, reference_sets)]),
        "dist_1": dist_1_avg(selected),
        "self_bleu": self_bleu(candidate_sets),
        "div_4": div_4(candidate_sets),
        "avg_len": avg_len(selected),
        "sacrebleu": multi_reference_sacrebleu(selected, reference_sets),
        "n": len(selected),
        "candidates_per_source": _count([len(c) for c in candidate_sets]),
    }
    if multi:
        result["references_per_source"] = _count([len(r) for r in reference_sets])
    if bert_model is not None:
        result["bertscore"] = bertscore_f1(selected, reference_sets if multi else refs, bert_model, bert_layers)
    return result
