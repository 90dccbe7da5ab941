"""The DiffuSeq denoiser as a fairseq model: one transformer stack over [source ; noisy target].

Layout. DiffuSeq concatenates ``x [SEP] y [PAD]*`` into one sequence and anchors the source span.
Here the batch is carried as two blocks, the right-padded source (fairseq's ``src_tokens``) and
the target canvas; target position ids continue from each row's source length, so the model sees
exactly the paper's contiguous sequence while every batch is only as long as it needs to be.
Source padding is masked out of attention; target padding is part of the canvas and is generated,
which is how DiffuSeq chooses the output length.
"""
import math
from dataclasses import dataclass, field
from typing import List, NamedTuple, Optional

import torch
import torch.nn as nn
from fairseq.dataclass import FairseqDataclass
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture

from ..diffusion import GaussianDiffusion
from ..step_sampler import LossSecondMomentSampler
from .transformer_stack import EncoderStack, KeyValue

IMPORTANCE_HISTORY = 10  # losses kept per step by the importance sampler (official value)


@dataclass
class DiffuSeqModelConfig(FairseqDataclass):
    encoder_layers: int = field(default=12, metadata={"help": "transformer layers"})
    encoder_embed_dim: int = field(default=768, metadata={"help": "hidden size of the transformer"})
    encoder_attention_heads: int = field(default=12, metadata={"help": "attention heads"})
    encoder_ffn_embed_dim: int = field(default=3072, metadata={"help": "feed-forward size"})
    latent_dim: int = field(default=128, metadata={"help": "word-embedding (diffusion space) size"})
    dropout: float = field(default=0.1, metadata={"help": "dropout"})
    attention_dropout: float = field(default=0.1, metadata={"help": "attention dropout"})
    max_positions: int = field(default=512, metadata={"help": "learned position embeddings"})
    num_timesteps: int = field(default=2000, metadata={"help": "T, number of diffusion steps of the training chain"})
    noise_schedule: str = field(default="sqrt", metadata={"help": "sqrt | linear | cosine"})
    self_condition: bool = field(
        default=False, metadata={"help": "feed the previous x0 estimate back in (50%% of training steps)"}
    )
    learned_mean_embed: bool = field(
        default=False, metadata={"help": "DiffuSeq-v2 soft absorbing state: noise centred on a learned vector"}
    )
    absorb_rate: float = field(
        default=0.0, metadata={"help": "v2 discrete noise: replace a target token by the absorbing state with "
                               "probability sqrt(1-abar_t)*rate (needs --learned-mean-embed)"}
    )
    encode_source_once: bool = field(
        default=False, metadata={"help": "source attends only to the source and gets no time embedding, so its "
                                 "keys/values are computed once per sentence and reused by every step"}
    )


class SourceContext(NamedTuple):
    """What the denoiser needs of a source batch; reusable across steps and MBR candidates."""

    embeddings: torch.Tensor  # [B, Ls, latent] (noisy z0 in training, clean at inference)
    key_mask: torch.Tensor  # [B, Ls] True on real tokens
    lengths: torch.Tensor  # [B]
    cache: Optional[List[KeyValue]]  # per-layer keys/values under --encode-source-once
    hidden: Optional[torch.Tensor]  # last-layer source states under --encode-source-once

    def repeat(self, times: int) -> "SourceContext":
        """Expand every sentence to ``times`` consecutive copies (MBR candidates)."""
        rep = lambda x: None if x is None else x.repeat_interleave(times, dim=0)  # noqa: E731
        cache = None if self.cache is None else [(rep(k), rep(v)) for k, v in self.cache]
        return SourceContext(rep(self.embeddings), rep(self.key_mask), rep(self.lengths), cache, rep(self.hidden))


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [cos ‖ sin] of (possibly fractional) steps, as in improved-diffusion."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.nn.functional.pad(emb, (0, dim % 2))


@register_model("diffuseq", dataclass=DiffuSeqModelConfig)
class DiffuSeqModel(BaseFairseqModel):
    def __init__(self, cfg: DiffuSeqModelConfig, dictionary):
        super().__init__()
        self.cfg = cfg
        self.padding_idx = dictionary.pad()
        hidden, latent = cfg.encoder_embed_dim, cfg.latent_dim
        self.embed_tokens = nn.Embedding(len(dictionary), latent)
        nn.init.normal_(self.embed_tokens.weight, std=1.0)  # the official N(0, 1) initialisation
        self.output_bias = nn.Parameter(torch.zeros(len(dictionary)))  # lm_head bias, untied
        self.time_embed = nn.Sequential(
            nn.Linear(latent, 4 * latent), nn.SiLU(), nn.Linear(4 * latent, hidden)
        )
        input_dim = 2 * latent if cfg.self_condition else latent
        self.input_up_proj = nn.Sequential(nn.Linear(input_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden))
        self.embed_positions = nn.Embedding(cfg.max_positions, hidden)
        self.input_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(cfg.dropout)
        self.encoder = EncoderStack(
            cfg.encoder_layers, hidden, cfg.encoder_attention_heads, cfg.encoder_ffn_embed_dim,
            cfg.dropout, cfg.attention_dropout,
        )
        self.output_down_proj = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, latent))
        if cfg.learned_mean_embed:
            self.mean_embed = nn.Parameter(torch.randn(latent) * latent**-0.5)
        else:
            self.register_parameter("mean_embed", None)
        if cfg.absorb_rate > 0 and not cfg.learned_mean_embed:
            raise ValueError("--absorb-rate needs --learned-mean-embed (the absorbing state)")
        self.diffusion = GaussianDiffusion(cfg.noise_schedule, cfg.num_timesteps)
        # Importance-sampler state: buffers, so checkpoints save it and resume restores it.
        self.register_buffer("timestep_loss_history", torch.zeros(cfg.num_timesteps, IMPORTANCE_HISTORY))
        self.register_buffer("timestep_loss_count", torch.zeros(cfg.num_timesteps, dtype=torch.long))

    @classmethod
    def build_model(cls, cfg: DiffuSeqModelConfig, task):
        if cfg.max_positions < task.cfg.max_total_len:
            raise ValueError(
                f"--max-positions {cfg.max_positions} is smaller than the task's --max-total-len {task.cfg.max_total_len}"
            )
        return cls(cfg, task.target_dictionary)

    def max_positions(self):
        return (self.cfg.max_positions, self.cfg.max_positions)

    def importance_sampler(self, uniform_prob: float) -> LossSecondMomentSampler:
        return LossSecondMomentSampler(self.timestep_loss_history, self.timestep_loss_count, uniform_prob)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """lm_head: tied to the embedding, with its own bias."""
        return x @ self.embed_tokens.weight.t() + self.output_bias

    def _input_states(self, x: torch.Tensor, positions: torch.Tensor, time: Optional[torch.Tensor], self_cond):
        if self.cfg.self_condition:
            x = torch.cat([x, torch.zeros_like(x) if self_cond is None else self_cond], dim=-1)
        h = self.input_up_proj(x) + self.embed_positions(positions)
        if time is not None:
            h = h + time.unsqueeze(1)
        return self.dropout(self.input_norm(h))

    def encode_source(self, src_tokens: torch.Tensor, src_lengths: torch.Tensor, noise_std: float = 0.0) -> SourceContext:
        """Embed the source (adding DiffuSeq's z0 noise in training) and, under
        --encode-source-once, run it through the stack once."""
        embeddings = self.embed_tokens(src_tokens)
        if noise_std > 0:
            embeddings = embeddings + noise_std * torch.randn_like(embeddings)
        key_mask = src_tokens.ne(self.padding_idx)
        cache = hidden = None
        if self.cfg.encode_source_once:
            positions = torch.arange(src_tokens.size(1), device=src_tokens.device).expand_as(src_tokens)
            self_cond = embeddings if self.cfg.self_condition else None
            states = self._input_states(embeddings, positions, None, self_cond)
            hidden, cache = self.encoder(states, key_mask)
        return SourceContext(embeddings, key_mask, src_lengths, cache, hidden)

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, source: SourceContext, self_cond=None, with_source=False):
        """Predict x0 for the target canvas x_t ([B, Lt, latent]) at steps t ([B]).

        With ``with_source`` also return the prediction at the source positions (the official
        loss covers them): a pair (source x̂0, target x̂0).
        """
        x_t = x_t.to(self.embed_tokens.weight.dtype)
        if self_cond is not None:
            self_cond = self_cond.to(x_t.dtype)
        batch, target_len = x_t.shape[:2]
        offsets = torch.arange(target_len, device=x_t.device)
        target_positions = source.lengths.unsqueeze(1) + offsets.unsqueeze(0)
        time = self.time_embed(timestep_embedding(self.diffusion.model_time(t), self.cfg.latent_dim).to(x_t.dtype))
        target_states = self._input_states(x_t, target_positions, time, self_cond)
        target_mask = torch.ones(batch, target_len, dtype=torch.bool, device=x_t.device)
        key_mask = torch.cat([source.key_mask, target_mask], dim=1)
        if source.cache is not None:
            hidden = self.encoder.forward_with_prefix(target_states, source.cache, key_mask)
            source_hidden = source.hidden
        else:
            src_len = source.embeddings.size(1)
            src_positions = torch.arange(src_len, device=x_t.device).expand(batch, src_len)
            src_embeddings = source.embeddings.to(x_t.dtype)
            src_self_cond = src_embeddings if self.cfg.self_condition else None
            src_states = self._input_states(src_embeddings, src_positions, time, src_self_cond)
            hidden, _ = self.encoder(torch.cat([src_states, target_states], dim=1), key_mask)
            source_hidden, hidden = hidden[:, :src_len], hidden[:, src_len:]
        if with_source:
            return self.output_down_proj(source_hidden), self.output_down_proj(hidden)
        return self.output_down_proj(hidden)

    def forward(self, src_tokens, src_lengths, x_t, t, self_cond=None):
        return self.denoise(x_t, t, self.encode_source(src_tokens, src_lengths), self_cond)


@register_model_architecture("diffuseq", "diffuseq_base")
def diffuseq_base(args):
    """The paper's model: BERT-base sized stack, 128-d embeddings (91.2M parameters at V=30,522)."""
    args.encoder_layers = getattr(args, "encoder_layers", 12)
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 768)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 12)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 3072)
    args.latent_dim = getattr(args, "latent_dim", 128)


@register_model_architecture("diffuseq", "diffuseq_small")
def diffuseq_small(args):
    args.encoder_layers = getattr(args, "encoder_layers", 6)
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 512)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 8)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 2048)
    diffuseq_base(args)


@register_model_architecture("diffuseq", "diffuseq_tiny")
def diffuseq_tiny(args):
    """CPU-sized: 4 layers, d=256."""
    args.encoder_layers = getattr(args, "encoder_layers", 4)
    args.encoder_embed_dim = getattr(args, "encoder_embed_dim", 256)
    args.encoder_attention_heads = getattr(args, "encoder_attention_heads", 4)
    args.encoder_ffn_embed_dim = getattr(args, "encoder_ffn_embed_dim", 1024)
    diffuseq_base(args)
