"""Unit tests of the batched MBR utility (sentence BLEU on token ids between candidates)."""
import math

import pytest
import torch

from diffuseq_fairseq.mbr import mbr_order, pairwise_bleu


def test_pairwise_bleu_and_mbr_pick_the_consensus():
    pad = 0
    cands = torch.tensor([[[5, 6, 7, 8, 9], [5, 6, 7, 8, 9], [5, 6, 7, 8, 1], [2, 3, 4, pad, pad]]])
    valid = cands.ne(pad)
    bleu = pairwise_bleu(cands, valid)
    assert bleu[0, 0, 1] == pytest.approx(1.0)
    assert bleu[0, 3, 0] < 0.1
    order, utility = mbr_order(cands, valid)
    assert order[0, 0] in (0, 1) and order[0, -1] == 3
    assert utility[0, 0] == pytest.approx(utility[0, 1])


def test_pairwise_bleu_counts_clipped_matches():
    # hyp "a a a a" vs ref "a b c d": clipped unigram precision 1/4; no higher-order matches.
    cands = torch.tensor([[[1, 1, 1, 1], [1, 2, 3, 4]]])
    bleu = pairwise_bleu(cands, torch.ones_like(cands, dtype=torch.bool))
    want = math.exp((math.log(1 / 4) + math.log(1 / 4) + math.log(1 / 3) + math.log(1 / 2)) / 4)
    assert bleu[0, 0, 1] == pytest.approx(want)


def test_empty_candidate_gets_zero_bleu():
    cands = torch.tensor([[[0, 0, 0], [4, 5, 6]]])
    bleu = pairwise_bleu(cands, cands.ne(0))
    assert bleu[0, 0, 1] == 0 and not torch.isnan(bleu).any()
