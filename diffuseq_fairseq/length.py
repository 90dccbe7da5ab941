"""Target-length prediction, free of fairseq: a classifier over length offsets from the source.

The paper's model writes padding into a fixed canvas and so chooses its length implicitly. With
``--length-predictor`` the length is decided first, as in CMLM, Difformer and DINOISER: a linear
head over the mean of the encoded source's states predicts the offset ``|y| - |x|`` (canvas
positions with the layout's specials, so a word count difference), and decoding gives every
candidate a canvas of exactly the length it was assigned.

Why offsets rather than absolute lengths (fairseq's NAT ``--pred-length-offset``, Difformer's): a
translation's or a paraphrase's length follows its source's, so the offset's distribution is narrow
and much the same for every source length, while a classifier over absolute lengths has to learn
each length from the few sentences of that length. Offsets beyond ``±max_offset`` are trained as
the edge class. Predicted lengths are clamped to ``[1, limit - |x|]`` (the total-length limit of
the task): several classes can then fall on one length, whose probability is their sum. A length
beam of L takes the L likeliest lengths within L - 1 positions of the likeliest (see
:func:`likeliest_lengths`).
"""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class LengthPredictor(nn.Module):
    """Linear classifier over offsets -max_offset..max_offset from mean-pooled source states."""

    def __init__(self, hidden: int, max_offset: int):
        super().__init__()
        if max_offset < 0:
            raise ValueError(f"--max-length-offset must be at least 0, got {max_offset}")
        self.max_offset = max_offset
        self.project = nn.Linear(hidden, self.num_classes)

    @property
    def num_classes(self) -> int:
        return 2 * self.max_offset + 1

    def forward(self, states: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        """Logits [B, classes] from source states [B, Ls, hidden], averaged over the real tokens."""
        weights = key_mask.to(states.dtype).unsqueeze(-1)
        pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1)
        return self.project(pooled)

    def classes_of(self, src_lengths: torch.Tensor, tgt_lengths: torch.Tensor) -> torch.Tensor:
        """The class of each target length: its offset from the source's, clamped to the edge classes."""
        offsets = tgt_lengths.long() - src_lengths.long()
        return offsets.clamp(-self.max_offset, self.max_offset) + self.max_offset

    def lengths_of(self, classes: torch.Tensor, src_lengths: torch.Tensor) -> torch.Tensor:
        """The target length of each class (before clamping), ``src_lengths`` broadcast over ``classes``."""
        return src_lengths.long().unsqueeze(-1) + classes.long() - self.max_offset

    def nll(self, logits: torch.Tensor, src_lengths: torch.Tensor, tgt_lengths: torch.Tensor) -> torch.Tensor:
        """Per-sentence cross-entropy of the true length's class ([B])."""
        return F.cross_entropy(logits.float(), self.classes_of(src_lengths, tgt_lengths).to(logits.device),
                               reduction="none")

    def length_log_probs(self, logits: torch.Tensor, src_lengths: torch.Tensor, limit: int) -> torch.Tensor:
        """log p(length) for lengths 0..limit ([B, limit + 1]): each class's probability goes to its
        length clamped to [1, limit - |x|]; a length no class reaches (and 0) gets -inf."""
        src_lengths = src_lengths.to(logits.device)
        upper = (limit - src_lengths).clamp(min=1).unsqueeze(1)
        classes = torch.arange(self.num_classes, device=logits.device)
        lengths = torch.minimum(self.lengths_of(classes, src_lengths).clamp(min=1), upper)
        probs = logits.float().softmax(-1)
        by_length = torch.zeros(logits.size(0), limit + 1, device=logits.device).scatter_add_(1, lengths, probs)
        return by_length.log()


def likeliest_lengths(predictor: LengthPredictor, logits: torch.Tensor, src_lengths: torch.Tensor, beam: int,
                      limit: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The ``beam`` likeliest target lengths of each row among those within ``beam - 1`` positions of
    its likeliest one, most likely first, and their log-probs ([B, beam] each); every length in
    [1, limit - |x|].

    Why the window: beyond its first choices a confident predictor's ranking is noise (on the toy
    task, after the right length came length 1 and length 71), and a far length costs a canvas of its
    size and gives MBR nonsense to weigh; for a smooth distribution the window changes nothing.
    Lengths without probability (a source near the limit, whose classes are clamped onto one length)
    come after the others, nearest the likeliest first; where the limit leaves fewer than ``beam``
    lengths, the likeliest comes again (its candidates differ by their noise)."""
    log_probs = predictor.length_log_probs(logits, src_lengths, limit)
    lengths = torch.arange(limit + 1, device=logits.device)
    best = log_probs.argmax(1, keepdim=True)
    distance = (lengths - best).abs()
    upper = (limit - src_lengths.to(logits.device)).clamp(min=1).unsqueeze(1)
    allowed = (lengths >= 1) & (lengths <= upper) & (distance < beam)
    # A float32 log-probability is above -104: lengths without probability rank below every other.
    key = torch.where(torch.isfinite(log_probs), log_probs.double(), -1e6 - distance.double())
    top = key.masked_fill(~allowed, float("-inf")).topk(min(beam, limit + 1), dim=1)
    chosen = torch.where(torch.isinf(top.values), best, top.indices)
    if beam > limit + 1:
        chosen = torch.cat([chosen, best.expand(-1, beam - limit - 1)], dim=1)
    return chosen, log_probs.gather(1, chosen)
