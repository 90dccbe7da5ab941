"""How a source-target pair becomes the model's two blocks: token layouts, the official truncation
and the target canvas rule.

fairseq-preprocess stores each side as ``words </s>``. A token layout says what the model sees:

* ``fairseq``: source ``x </s>``, target ``y </s>``;
* ``diffuseq``: the official DiffuSeq sequence ``[CLS] x [SEP] [SEP] [CLS] y [SEP] [PAD]*``, i.e.
  source ``<s> x </s> </s>`` (the anchored span) and target ``<s> y </s>``.

Truncation is the official rule: while the pair is over the limit, pop from the longer side (both
on ties). The official code counts ``[CLS] x`` and ``[CLS] y`` against ``seq_len - 3``, which are as
long as fairseq's ``x </s>`` and ``y </s>``: so the rule runs on the stored sides, against the limit
less the tokens the layout adds.
"""
import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch
from fairseq.data import AppendTokenDataset, BaseWrapperDataset, PrependTokenDataset


class TruncatedItems(BaseWrapperDataset):
    """Token sequences cut to per-item lengths, keeping the final </s>."""

    def __init__(self, dataset, lengths: np.ndarray):
        super().__init__(dataset)
        self.lengths = lengths

    def __getitem__(self, index):
        item = self.dataset[index]
        n = int(self.lengths[index])
        if item.numel() <= n:
            return item
        return torch.cat([item[: n - 1], item[-1:]])

    @property
    def sizes(self):
        return self.lengths

    def size(self, index):
        return int(self.lengths[index])


def truncate_pair_lengths(src: np.ndarray, tgt: np.ndarray, limit: int):
    """Official rule: while |x|+|y| > limit, pop from the longer side (both when equal).

    Lengths include </s>; each side keeps at least one real token plus </s>.
    """
    src, tgt = src.astype(np.int64).copy(), tgt.astype(np.int64).copy()
    while True:
        over = src + tgt > limit
        if not over.any():
            return src, tgt
        src_longer, tgt_longer = over & (src > tgt), over & (tgt > src)
        tie = over & (src == tgt)
        src[src_longer | tie] -= 1
        tgt[tgt_longer | tie] -= 1
        if (src < 2).any() or (tgt < 2).any():
            raise ValueError(f"--max-total-len {limit} is too small to keep a token on each side")


@dataclass(frozen=True)
class TokenLayout:
    """The tokens a layout adds around the stored ``x </s>`` and ``y </s>``."""

    name: str
    source_bos: bool  # <s> before the source
    source_extra_eos: bool  # a second </s> after it
    target_bos: bool  # <s> before the target

    @property
    def source_added(self) -> int:
        return int(self.source_bos) + int(self.source_extra_eos)

    @property
    def target_added(self) -> int:
        return int(self.target_bos)

    @property
    def min_source(self) -> int:
        """A one-word source with its specials."""
        return 2 + self.source_added

    @property
    def min_target(self) -> int:
        """A one-word target with its specials: the smallest useful canvas."""
        return 2 + self.target_added

    @property
    def min_total(self) -> int:
        return self.min_source + self.min_target

    def wrap(self, src, tgt, bos: int, eos: int):
        """The stored source and target datasets, with the layout's tokens."""
        if self.source_bos:
            src = PrependTokenDataset(src, bos)
        if self.source_extra_eos:
            src = AppendTokenDataset(src, eos)
        if self.target_bos and tgt is not None:
            tgt = PrependTokenDataset(tgt, bos)
        return src, tgt

    def wrap_source(self, tokens: torch.Tensor, bos: int, eos: int) -> torch.Tensor:
        """One stored source (``x </s>``) with the layout's tokens."""
        head = tokens.new_tensor([bos] if self.source_bos else [])
        tail = tokens.new_tensor([eos] if self.source_extra_eos else [])
        return torch.cat([head, tokens, tail])


TOKEN_LAYOUTS = {
    "fairseq": TokenLayout("fairseq", source_bos=False, source_extra_eos=False, target_bos=False),
    "diffuseq": TokenLayout("diffuseq", source_bos=True, source_extra_eos=True, target_bos=True),
}


@dataclass(frozen=True)
class CanvasRule:
    """Target canvas of a source of length n (the layout's, specials included):
    ``min(limit - n, ceil(a·n + b))``, and in training at least the target's length."""

    a: float
    b: float
    limit: int

    def __str__(self):
        return f"{self.a}·|x|+{self.b}"

    def wanted(self, src_lengths: torch.Tensor) -> torch.Tensor:
        """ceil(a·n + b): the canvas the rule asks for, before the limit."""
        return torch.ceil(self.a * src_lengths.double() + self.b).long()

    def lengths(self, src_lengths: torch.Tensor, tgt_lengths=None) -> torch.Tensor:
        rows = torch.minimum(self.limit - src_lengths, self.wanted(src_lengths)).clamp(min=2)
        return rows if tgt_lengths is None else torch.maximum(rows, tgt_lengths)

    def check(self, layout: TokenLayout) -> None:
        """Refuse a rule that leaves some source length fewer positions than a one-word target needs
        (the rule is linear: its ends decide)."""
        for n in (layout.min_source, self.limit - layout.min_target):
            canvas = int(self.wanted(torch.tensor(n)))
            if canvas < layout.min_target:
                raise ValueError(
                    f"the canvas rule {self} leaves {canvas} target positions to a {n}-token source; a canvas "
                    f"needs at least {layout.min_target} (a word and its specials): check --canvas-len-a and "
                    f"--canvas-len-b"
                )

    def fit_source(self, n: int, layout: TokenLayout) -> int:
        """Source length (the layout's) that a source of ``n`` keeps when the target must have the
        canvas the rule asks for: the official truncation between the two, on their stored sides."""
        wanted = int(self.wanted(torch.tensor(n)))
        kept, _ = truncate_pair_lengths(np.array([n - layout.source_added]), np.array([wanted - layout.target_added]),
                                        self.limit - layout.source_added - layout.target_added)
        return int(kept[0]) + layout.source_added
