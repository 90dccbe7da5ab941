"""The records :class:`~diffuseq_fairseq.network.DiffuSeqNetwork` passes between its forward
process and its denoiser: the encoded source, the random draws of a training step, the corrupted batch.
Fairseq-free."""
from typing import List, NamedTuple, Optional

import torch

from .transformer_stack import KeyValue


class SourceContext(NamedTuple):
    """What the denoiser needs of a source batch; reusable across steps and MBR candidates."""

    embeddings: torch.Tensor  # [B, Ls, latent] (noisy z0 in training, clean at inference)
    key_mask: torch.Tensor  # [B, Ls] True on real tokens
    lengths: torch.Tensor  # [B]
    cache: Optional[List[KeyValue]]  # per-layer keys/values under --encode-source-once
    hidden: Optional[torch.Tensor]  # last-layer source states under --encode-source-once

    def select(self, index: torch.Tensor) -> "SourceContext":
        """Rows ``index`` of the batch (repeats allowed: one copy per MBR candidate)."""
        pick = lambda x: None if x is None else x[index]  # noqa: E731
        cache = None if self.cache is None else [(pick(k), pick(v)) for k, v in self.cache]
        return SourceContext(pick(self.embeddings), pick(self.key_mask), pick(self.lengths), cache, pick(self.hidden))


class TrainingNoise(NamedTuple):
    """The random draws of one training step, given instead of drawn: to replay a step of another
    implementation (the official ``training_losses_seq2seq``) exactly, or to make validation a
    function of each sentence (``DiffuSeqNetwork.seeded_draws``). The Gaussian draws are standard
    normal, scaled where they are used; an optional draw left None is drawn as in training."""

    source_z0: torch.Tensor  # [B, Ls, latent]: the source's z0 is Emb(x) + std_0 · source_z0
    target_z0: torch.Tensor  # [B, Lt, latent]: z0 is Emb(y) + std_0 · target_z0
    diffusion: torch.Tensor  # [B, Lt, latent]: the ε of x_t = q_sample(z0, t, ε)
    absorb: Optional[torch.Tensor] = None  # [B, Lt] U(0, 1): --absorb-rate absorbs a position where below its rate
    glance: Optional[torch.Tensor] = None  # [B, Lt] U(0, 1): glancing gives the positions of the lowest draws
    self_condition: Optional[torch.Tensor] = None  # [B] U(0, 1): a row gets a first estimate where below the share


class Corruption(NamedTuple):
    """DiffuSeq's forward process applied to one batch: what the denoiser sees and must recover."""

    source: SourceContext  # its embeddings are the source's z0
    clean: torch.Tensor  # [B, Lt, latent] Emb(y)
    z0: torch.Tensor  # [B, Lt, latent]
    x_t: torch.Tensor  # [B, Lt, latent]
    revealed: Optional[torch.Tensor]  # [B, Lt] positions given their z0 by glancing (None without it)
    target_mask: Optional[torch.Tensor]  # [B, Lt] True inside each row's own canvas (None: every position)
