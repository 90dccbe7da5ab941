"""Minimum Bayes Risk selection with a sentence-BLEU utility computed on token ids, batched.

For each source with S candidates, candidate i scores Σ_{j≠i} BLEU(hyp=c_i, ref=c_j), as in the
official DiffuSeq MBR; the reference is never used. Everything is tensor algebra over
[B, S, S, L, L] n-gram equality tables (no Python loop over sentences or pairs), so MBR adds
little to decoding time and is counted in fairseq-generate's timer.

Smoothing: add-one on the n>1 precisions (Lin & Och, 2004), so that short candidates without a
4-gram match still get a graded utility instead of the 0 that unsmoothed BLEU gives.
"""
import torch

MAX_ORDER = 4


def _ngram_ids(tokens: torch.Tensor, valid: torch.Tensor, n: int):
    """Hash each n-gram starting at a position into one int64; invalid n-grams get a unique -id."""
    length = tokens.size(-1) - n + 1
    if length <= 0:
        shape = tokens.shape[:-1] + (0,)
        return tokens.new_zeros(shape), valid.new_zeros(shape)
    ids = tokens[..., :length].clone()
    ok = valid[..., :length].clone()
    for k in range(1, n):
        ids = ids * 1_000_003 + tokens[..., k : k + length]
        ok &= valid[..., k : k + length]
    return ids, ok


def pairwise_bleu(tokens: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """BLEU[b, i, j] of candidate i as hypothesis against candidate j as reference.

    tokens: [B, S, L] int64, valid: [B, S, L] bool (False on padding).
    """
    lengths = valid.sum(-1).double()  # [B, S]
    log_precision = torch.zeros(tokens.shape[:2] + (tokens.size(1),), dtype=torch.float64, device=tokens.device)
    for n in range(1, MAX_ORDER + 1):
        ids, ok = _ngram_ids(tokens, valid, n)  # [B, S, Ln]
        if ids.size(-1) == 0:
            matches = torch.zeros_like(log_precision)
        else:
            # eq[b, i, p, j, q]: n-gram p of candidate i equals n-gram q of candidate j
            eq = (ids[:, :, :, None, None] == ids[:, None, None, :, :]) & ok[:, :, :, None, None] & ok[:, None, None, :, :]
            count_in_ref = eq.sum(-1).double()  # [B, i, p, j]
            idx = torch.arange(tokens.size(1), device=tokens.device)
            count_in_hyp = eq[:, idx, :, idx, :].sum(-1).double().permute(1, 0, 2)  # [B, i, p]
            # Σ_p min(c_hyp, c_ref)/c_hyp = Σ over distinct n-grams of the clipped count.
            clipped = torch.minimum(count_in_ref, count_in_hyp.unsqueeze(-1)) / count_in_hyp.clamp(min=1).unsqueeze(-1)
            matches = (clipped * ok.unsqueeze(-1)).sum(2)  # [B, i, j]
        total = (lengths - n + 1).clamp(min=0).unsqueeze(-1).expand_as(matches)
        smooth = 0.0 if n == 1 else 1.0
        precision = (matches + smooth) / (total + smooth).clamp(min=1e-9)  # empty hypothesis → 0
        # A hypothesis too short for any n-gram of this order gets precision 0 (log → -inf → BLEU 0).
        log_precision = log_precision + torch.where(precision > 0, precision.clamp(min=1e-300).log(), torch.full_like(precision, float("-inf")))
    hyp_len, ref_len = lengths.unsqueeze(-1), lengths.unsqueeze(1)
    brevity = torch.where(hyp_len < ref_len, 1 - ref_len / hyp_len.clamp(min=1), torch.zeros_like(hyp_len * ref_len))
    return torch.exp(log_precision / MAX_ORDER + brevity)


def mbr_order(tokens: torch.Tensor, valid: torch.Tensor):
    """Candidates sorted by MBR utility (best first): returns (order [B, S], utility [B, S])."""
    bleu = pairwise_bleu(tokens, valid)
    num_candidates = tokens.size(1)
    off_diagonal = 1 - torch.eye(num_candidates, dtype=bleu.dtype, device=bleu.device)
    utility = (bleu * off_diagonal).sum(-1)  # Σ_{j≠i} BLEU(c_i, c_j)
    # Stable sort keeps candidate order among ties, so S=1 or identical candidates are deterministic.
    order = torch.sort(-utility, dim=-1, stable=True).indices
    return order, utility
