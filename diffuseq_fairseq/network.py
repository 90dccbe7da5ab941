"""The DiffuSeq network, free of fairseq: one transformer stack over [source ; noisy target].

Layout. DiffuSeq concatenates ``x [SEP] y [PAD]*`` into one sequence and anchors the source span.
Here the batch is carried as two blocks, the right-padded source and the target canvas; target
position ids continue from each row's source length, so the model sees exactly the paper's
contiguous sequence while every batch is only as long as it needs to be (or, under
``target_positions="restart"``, start at 0 with a segment embedding marking the target). Source
padding is masked out of attention; target padding is part of the canvas and is generated, which
is how DiffuSeq chooses the output length.
"""
import math
from typing import Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .diffusion import GaussianDiffusion
from .length import LengthPredictor
from .network_config import TARGET_POSITIONS, NetworkConfig
from .network_records import Corruption, SourceContext, TrainingNoise
from .step_sampler import LossSecondMomentSampler
from .transformer_stack import EncoderStack
from .vocabulary_loss import vocabulary_cross_entropy

IMPORTANCE_HISTORY = 10  # losses kept per step by the importance sampler (official value)
LOSS_POSITIONS = ("target", "all")  # the choices of the criterion's --loss-positions, declared once


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [cos ‖ sin] of (possibly fractional) steps, as in improved-diffusion."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return torch.nn.functional.pad(emb, (0, dim % 2))


class DiffuSeqNetwork(nn.Module):
    """Denoiser, embedding space, lm_head, diffusion chain and importance-sampler state."""

    def __init__(self, cfg: NetworkConfig, vocab_size: int, padding_idx: int):
        super().__init__()
        self.cfg = cfg
        self.padding_idx = padding_idx
        hidden, latent = cfg.encoder_embed_dim, cfg.latent_dim
        self.embed_tokens = nn.Embedding(vocab_size, latent)
        nn.init.normal_(self.embed_tokens.weight, std=1.0)  # the official N(0, 1) initialisation
        self.output_bias = nn.Parameter(torch.zeros(vocab_size))  # lm_head bias, untied
        if cfg.uniform_output_bias:
            bound = 1 / math.sqrt(latent)
            nn.init.uniform_(self.output_bias, -bound, bound)
        self.time_dim = cfg.time_embed_dim or latent
        self.time_embed = nn.Sequential(
            nn.Linear(self.time_dim, 4 * self.time_dim), nn.SiLU(), nn.Linear(4 * self.time_dim, hidden)
        )
        if cfg.identity_projections and (latent != hidden or cfg.self_condition):
            raise ValueError("--identity-projections needs --latent-dim equal to --encoder-embed-dim "
                             f"({latent} and {hidden}) and no --self-condition")
        input_dim = 2 * latent if cfg.self_condition else latent
        self.input_up_proj = nn.Identity() if cfg.identity_projections else nn.Sequential(
            nn.Linear(input_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden))
        self.embed_positions = nn.Embedding(cfg.max_positions, hidden)
        if cfg.target_positions not in TARGET_POSITIONS:  # the fairseq option refuses it at parse time
            raise ValueError(f"unknown --target-positions {cfg.target_positions!r}; choose one of {TARGET_POSITIONS}")
        # Parts an option leaves out are plain None attributes, not None parameters: fairseq's trainer
        # would log every None parameter as "shared" with the others.
        # Segment embedding: 0 source, 1 target.
        self.embed_segment = nn.Embedding(2, hidden) if cfg.target_positions == "restart" else None
        if not 0 <= cfg.glance_rate <= 1:
            raise ValueError(f"--glance-rate must be in [0, 1], got {cfg.glance_rate}")
        # Added where a target word is given.
        self.embed_revealed = nn.Parameter(torch.zeros(hidden)) if cfg.glance_rate > 0 else None
        self.input_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.dropout = nn.Dropout(cfg.dropout)
        self.encoder = EncoderStack(
            cfg.encoder_layers, hidden, cfg.encoder_attention_heads, cfg.encoder_ffn_embed_dim,
            cfg.dropout, cfg.attention_dropout,
        )
        self.output_down_proj = nn.Identity() if cfg.identity_projections else nn.Sequential(
            nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, latent))
        self.mean_embed = nn.Parameter(torch.randn(latent) * latent**-0.5) if cfg.learned_mean_embed else None
        if cfg.noise_factor != 1.0 and not cfg.embed_norm:
            raise ValueError("--noise-factor needs --embed-norm (free embeddings would absorb the factor)")
        if cfg.noise_factor <= 0:
            raise ValueError("--noise-factor must be positive")
        if cfg.absorb_rate > 0 and not cfg.learned_mean_embed:
            raise ValueError("--absorb-rate needs --learned-mean-embed (the absorbing state)")
        self.diffusion = GaussianDiffusion(cfg.noise_schedule, cfg.num_timesteps)
        if not 0 <= cfg.min_timestep_fraction < 1:
            raise ValueError(f"--min-timestep-fraction must be in [0, 1), got {cfg.min_timestep_fraction}")
        self.first_train_step = round(cfg.min_timestep_fraction * cfg.num_timesteps)
        # Importance-sampler state: buffers, so checkpoints save it and resume restores it. The fill
        # counts are floats because fairseq's EMA (--store-ema) averages every state entry in place and
        # fails on integer tensors; the sampler rounds them.
        self.register_buffer("timestep_loss_history", torch.zeros(cfg.num_timesteps, IMPORTANCE_HISTORY))
        self.register_buffer("timestep_loss_count", torch.zeros(cfg.num_timesteps))
        # Built last, so that a model without it draws the same initial weights as before it existed.
        self.length_head = LengthPredictor(hidden, cfg.max_length_offset) if cfg.length_predictor else None

    def importance_sampler(self, uniform_prob: float, bins: int = 0) -> LossSecondMomentSampler:
        return LossSecondMomentSampler(self.timestep_loss_history, self.timestep_loss_count, uniform_prob, bins,
                                       self.first_train_step)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """lm_head: tied to the embedding, with its own bias."""
        return x @ self.word_embeddings().t() + self.output_bias

    def token_losses(self, x: torch.Tensor, tokens: torch.Tensor, smoothing: float = 0.0):
        """(−log p(token | lm_head(x)), its ε-smoothed version) per position, as PyTorch's
        cross_entropy(label_smoothing=ε) and LevT's nat_loss smooth; fused with lm_head, which
        spares the CPU four fresh [positions, V] tensors per call (vocabulary_loss)."""
        return vocabulary_cross_entropy(x, self.word_embeddings(), self.output_bias, tokens, smoothing)

    def word_embeddings(self) -> torch.Tensor:
        """The [V, latent] embedding space the diffusion runs in (normalised under --embed-norm)."""
        weight = self.embed_tokens.weight
        if not self.cfg.embed_norm:
            return weight
        return F.layer_norm(weight, weight.shape[-1:]) / self.cfg.noise_factor

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.embedding(tokens, self.word_embeddings())

    def _input_states(self, x: torch.Tensor, positions: torch.Tensor, time: Optional[torch.Tensor], self_cond,
                      segment: int, revealed: Optional[torch.Tensor] = None):
        if self.cfg.self_condition:
            x = torch.cat([x, torch.zeros_like(x) if self_cond is None else self_cond], dim=-1)
        h = self.input_up_proj(x) + self.embed_positions(positions)
        if self.embed_segment is not None:
            h = h + self.embed_segment.weight[segment]
        if revealed is not None:
            h = h + revealed.unsqueeze(-1).to(h.dtype) * self.embed_revealed
        if time is not None:
            h = h + time.unsqueeze(1)
        return self.dropout(self.input_norm(h))

    def encode_source(self, src_tokens: torch.Tensor, src_lengths: torch.Tensor, noise_std: float = 0.0,
                      noise: Optional[torch.Tensor] = None) -> SourceContext:
        """Embed the source (adding DiffuSeq's z0 noise ``noise_std`` · ε in training, ε drawn unless
        ``noise`` gives it) and, under --encode-source-once, run it through the stack once."""
        embeddings = self.embed(src_tokens)
        if noise_std > 0:
            embeddings = embeddings + noise_std * (torch.randn_like(embeddings) if noise is None else noise)
        key_mask = src_tokens.ne(self.padding_idx)
        cache = hidden = None
        if self.cfg.encode_source_once:
            hidden, cache = self._encode_alone(embeddings, key_mask)
        return SourceContext(embeddings, key_mask, src_lengths, cache, hidden)

    def _encode_alone(self, embeddings: torch.Tensor, key_mask: torch.Tensor):
        """(last-layer states, per-layer keys/values) of the source run through the stack on its own,
        without a step embedding."""
        positions = torch.arange(embeddings.size(1), device=embeddings.device).expand(embeddings.shape[:2])
        self_cond = embeddings if self.cfg.self_condition else None
        states = self._input_states(embeddings, positions, None, self_cond, segment=0)
        return self.encoder(states, key_mask)

    def length_logits(self, source: SourceContext) -> torch.Tensor:
        """The length predictor's logits [B, classes] for ``source``: from the states --encode-source-once
        already holds, else from one pass over the source alone (the joint pass mixes in the noisy
        canvas and the step, and the length must be known before there is a canvas)."""
        if self.length_head is None:
            raise ValueError("this model has no length predictor (train it with --length-predictor)")
        hidden = source.hidden
        if hidden is None:
            hidden, _ = self._encode_alone(source.embeddings.to(self.embed_tokens.weight.dtype), source.key_mask)
        return self.length_head(hidden, source.key_mask)

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, source: SourceContext, self_cond=None, with_source=False,
                revealed: Optional[torch.Tensor] = None, target_mask: Optional[torch.Tensor] = None):
        """Predict x0 for the target canvas x_t ([B, Lt, latent]) at steps t ([B]).

        With ``with_source`` also return the prediction at the source positions (the official
        loss covers them): a pair (source x̂0, target x̂0). ``revealed`` ([B, Lt] bool, in training
        under --glance-rate) marks the target positions whose x_t is a clean word embedding.
        ``target_mask`` ([B, Lt] bool, True inside each row's own canvas; None: all positions) keeps
        the positions beyond a row's canvas out of attention, so a row's x̂0 does not depend on the
        batch it is in (the predictions there are meaningless).
        """
        if revealed is not None and self.embed_revealed is None:
            raise ValueError("revealed target positions need a model trained with --glance-rate")
        x_t = x_t.to(self.embed_tokens.weight.dtype)
        if self_cond is not None:
            self_cond = self_cond.to(x_t.dtype)
        batch, target_len = x_t.shape[:2]
        offsets = torch.arange(target_len, device=x_t.device)
        if self.cfg.target_positions == "restart":
            target_positions = offsets.expand(batch, target_len)
        else:
            target_positions = source.lengths.unsqueeze(1) + offsets.unsqueeze(0)
        # Under clipping, steps below the first trained one are shown as that step: their input is
        # only cleaner than the model expects.
        t = t.clamp(min=self.first_train_step)
        time = self.time_embed(timestep_embedding(self.diffusion.model_time(t), self.time_dim).to(x_t.dtype))
        target_states = self._input_states(x_t, target_positions, time, self_cond, segment=1, revealed=revealed)
        if target_mask is None:
            target_mask = torch.ones(batch, target_len, dtype=torch.bool, device=x_t.device)
        key_mask = torch.cat([source.key_mask, target_mask.bool()], dim=1)
        if source.cache is not None:
            hidden = self.encoder.forward_with_prefix(target_states, source.cache, key_mask)
            source_hidden = source.hidden
        else:
            src_len = source.embeddings.size(1)
            src_positions = torch.arange(src_len, device=x_t.device).expand(batch, src_len)
            src_embeddings = source.embeddings.to(x_t.dtype)
            src_self_cond = src_embeddings if self.cfg.self_condition else None
            src_states = self._input_states(src_embeddings, src_positions, time, src_self_cond, segment=0)
            hidden, _ = self.encoder(torch.cat([src_states, target_states], dim=1), key_mask)
            source_hidden, hidden = hidden[:, :src_len], hidden[:, src_len:]
        if with_source:
            return self.output_down_proj(source_hidden), self.output_down_proj(hidden)
        return self.output_down_proj(hidden)

    def glance(self, x_t, t, source, target: torch.Tensor, z0: torch.Tensor, target_mask=None, uniform=None):
        """GLAT's draw: as many gold words as ⌈rate · (words the model gets wrong without help)⌉,
        at random positions of each row's canvas (those of the lowest ``uniform`` draws, drawn if
        None); returns (x_t with them given, the given positions)."""
        with torch.no_grad():
            guess = self.logits(self.denoise(x_t, t, source, target_mask=target_mask)).argmax(-1)
        wrong = guess.ne(target)
        if uniform is None:
            uniform = torch.rand(target.shape, device=target.device)
        if target_mask is not None:
            wrong = wrong & target_mask
            uniform = uniform.masked_fill(~target_mask, 2.0)  # ranked after every position of the canvas
        count = (wrong.sum(1, keepdim=True).float() * self.cfg.glance_rate).ceil()
        revealed = uniform.argsort(1).argsort(1) < count
        return torch.where(revealed.unsqueeze(-1), z0.to(x_t.dtype), x_t), revealed

    def corrupt(self, src_tokens: torch.Tensor, src_lengths: torch.Tensor, target: torch.Tensor, t: torch.Tensor,
                noise: Optional[TrainingNoise] = None, target_mask: Optional[torch.Tensor] = None) -> Corruption:
        """The forward process at steps t: z0 = Emb(w) + std_0 · ε on both sides (the source's z0 is
        what the denoiser is conditioned on), x_t = q_sample(z0, t) on the target canvas, then v2's
        discrete absorbing and GLAT's glancing where enabled. The draws come from ``noise`` or, when
        it is None, are drawn here in the order target z0, source z0, q_sample, absorbing, glancing.
        ``target_mask`` ([B, Lt] bool) marks each row's own canvas (see :meth:`denoise`)."""
        diffusion = self.diffusion
        noise_std = diffusion.z0_noise_std
        clean = self.embed(target)
        z0 = clean + noise_std * (torch.randn_like(clean) if noise is None else noise.target_z0)
        source = self.encode_source(src_tokens, src_lengths, noise_std, None if noise is None else noise.source_z0)
        epsilon = torch.randn_like(z0) if noise is None else noise.diffusion
        x_t = diffusion.q_sample(z0, t, epsilon, mean=self.mean_embed)
        if self.cfg.absorb_rate > 0:
            x_t = self.absorb(x_t, t, None if noise is None else noise.absorb)
        revealed = None
        if self.cfg.glance_rate > 0:
            glance_draws = None if noise is None else noise.glance
            x_t, revealed = self.glance(x_t, t, source, target, z0, target_mask, glance_draws)
        return Corruption(source, clean, z0, x_t, revealed, target_mask)

    def absorb(self, x_t: torch.Tensor, t: torch.Tensor, uniform: Optional[torch.Tensor] = None) -> torch.Tensor:
        """DiffuSeq-v2's discrete noise: a position becomes the absorbing state m with probability
        sqrt(1-ᾱ_t) · --absorb-rate, where its ``uniform`` draw ([B, Lt], drawn if None) is below it."""
        rate = (1 - self.diffusion.alphas_cumprod.to(t.device)[t]).sqrt().float() * self.cfg.absorb_rate
        if uniform is None:
            uniform = torch.rand(x_t.shape[:2], device=x_t.device)
        replace = uniform < rate.view(-1, 1)
        return torch.where(replace.unsqueeze(-1), self.mean_embed.to(x_t.dtype).expand_as(x_t), x_t)

    def predict(self, corruption: Corruption, t: torch.Tensor, self_condition_prob: float = 0.5,
                self_condition_draws: Optional[torch.Tensor] = None):
        """(source x̂0, target x̂0); under --self-condition, on a share of the steps, fed a first
        estimate made without gradient (as decoding feeds the previous step's). One draw decides for
        the batch, or with ``self_condition_draws`` ([B] U(0, 1)) each row for itself."""
        source, x_t, revealed, mask = corruption.source, corruption.x_t, corruption.revealed, corruption.target_mask
        self_cond = None
        if self.cfg.self_condition:
            chosen = (torch.rand(()) if self_condition_draws is None else self_condition_draws) < self_condition_prob
            if chosen.any():
                with torch.no_grad():
                    self_cond = self.denoise(x_t, t, source, revealed=revealed, target_mask=mask).detach()
                # A row not chosen gets zeros, the input of a step without an estimate.
                self_cond = torch.where(chosen.view(-1, 1, 1).to(x_t.device), self_cond, torch.zeros_like(self_cond))
        return self.denoise(x_t, t, source, self_cond=self_cond, with_source=True, revealed=revealed, target_mask=mask)

    def loss_terms(self, corruption: Corruption, predictions, src_tokens: torch.Tensor, target: torch.Tensor,
                   t: torch.Tensor, loss_positions: str = "target", rounding_term: bool = True,
                   label_smoothing: float = 0.0, anchor_trained: bool = True) -> Dict[str, torch.Tensor]:
        """Per-sentence terms of DiffuSeq's bound for the predictions (source x̂0, target x̂0).

        mse(x̂0, z0) (clean target at t = 0, as upstream), rounding −log p(w|z0), the tT term, and
        the anchor CE(lm_head(x̂0), w) that the official code logs but does not add.
        ``loss_positions``: "target" averages over each row's target canvas, padding included; "all"
        also over the source span, as the official code does. ``rounding_term=False`` skips the
        rounding term (reported as 0): a full-vocabulary softmax over every position, which is
        ≈ 0 once --embed-norm keeps the words far apart.
        ``anchor_loss`` is the anchor CE smoothed by ``label_smoothing`` ε (the term to train on);
        ``anchor_nll`` stays the plain CE, comparable across ε. ``anchor_trained=False`` (the paper's
        loss, which only logs it) computes the anchor terms without gradient: a full-vocabulary softmax
        that backward would otherwise go through only to multiply it by 0.
        """
        if loss_positions not in LOSS_POSITIONS:  # the fairseq option refuses it at parse time
            raise ValueError(f"unknown loss positions {loss_positions!r}; choose one of {LOSS_POSITIONS}")
        src_pred, tgt_pred = predictions
        at_zero = (t == 0).view(-1, 1, 1)

        def position_terms(pred, tokens, noisy, exact):
            mse = (pred.float() - torch.where(at_zero, exact, noisy).float()).pow(2).mean(-1)
            if rounding_term:
                rounding = self.token_losses(noisy, tokens)[0]
            else:
                rounding = torch.zeros_like(tokens, dtype=torch.float)
            return mse, rounding, self.diffusion.prior_loss(noisy).mean(-1)

        mse, rounding, prior = position_terms(tgt_pred, target, corruption.z0, corruption.clean)
        # Only a row's own canvas is scored; given words are copied, not predicted: as in GLAT, only the
        # others are scored.
        revealed, canvas = corruption.revealed, corruption.target_mask
        mask = torch.ones_like(target, dtype=torch.float) if canvas is None else canvas.float()
        if revealed is not None:
            mask = mask * (~revealed).float()
        if loss_positions == "all":
            source_z0 = corruption.source.embeddings
            src_terms = position_terms(src_pred, src_tokens, source_z0, self.embed(src_tokens))
            mse, rounding, prior = (torch.cat([a, b], dim=1) for a, b in zip(src_terms, (mse, rounding, prior)))
            mask = torch.cat([src_tokens.ne(self.padding_idx).float(), mask], dim=1)
        with torch.set_grad_enabled(anchor_trained and torch.is_grad_enabled()):
            anchor_nll, anchor_loss = self.token_losses(tgt_pred, target, label_smoothing)
        target_mask = mask[:, -target.size(1):]
        return {
            "mse": _masked_mean(mse, mask),
            "rounding_nll": _masked_mean(rounding, mask),
            "tT": _masked_mean(prior, mask),
            "anchor_nll": _masked_mean(anchor_nll, target_mask),
            "anchor_loss": _masked_mean(anchor_loss, target_mask),
        }

    def training_terms(
        self,
        src_tokens: torch.Tensor,
        src_lengths: torch.Tensor,
        target: torch.Tensor,
        t: torch.Tensor,
        loss_positions: str = "target",
        self_condition_prob: float = 0.5,
        rounding_term: bool = True,
        label_smoothing: float = 0.0,
        anchor_trained: bool = True,
        noise: Optional[TrainingNoise] = None,
        target_mask: Optional[torch.Tensor] = None,
    ) -> Dict[str, torch.Tensor]:
        """Per-sentence loss terms (see :meth:`loss_terms`) of a target canvas ([B, Lt], padded) at
        steps t: the corruption (with ``noise``'s draws if given), the denoiser, the terms, all within
        each row's own canvas where ``target_mask`` ([B, Lt] bool) marks it. With the length predictor,
        also ``length_nll``, the cross-entropy of each target's length (its words before padding)."""
        corruption = self.corrupt(src_tokens, src_lengths, target, t, noise, target_mask)
        predictions = self.predict(corruption, t, self_condition_prob, None if noise is None else noise.self_condition)
        terms = self.loss_terms(corruption, predictions, src_tokens, target, t, loss_positions, rounding_term,
                                label_smoothing, anchor_trained)
        if self.length_head is not None:
            logits = self.length_logits(corruption.source)
            terms["length_nll"] = self.length_head.nll(logits, src_lengths, target.ne(self.padding_idx).sum(1))
        return terms

    def seeded_draws(self, seeds: Sequence[int], sampler, src_lengths: torch.Tensor, canvas_lengths: torch.Tensor,
                     src_width: int, canvas_width: int) -> Tuple[torch.Tensor, TrainingNoise]:
        """Steps t (from ``sampler``) and every draw of a step, each row's from a CPU generator seeded
        with its ``seeds`` entry and shaped by its own lengths, then zero-padded to the batch: a row's
        draws, and so its loss, do not depend on the batch it is in (validation)."""
        latent, steps, rows = self.cfg.latent_dim, [], []
        for seed, src_len, canvas in zip(seeds, src_lengths.tolist(), canvas_lengths.tolist()):
            generator = torch.Generator().manual_seed(int(seed))
            steps.append(sampler.sample(1, "cpu", generator)[0])
            rows.append((torch.randn(src_len, latent, generator=generator),
                         torch.randn(canvas, latent, generator=generator),
                         torch.randn(canvas, latent, generator=generator),
                         torch.rand(canvas, generator=generator),
                         torch.rand(canvas, generator=generator),
                         torch.rand(1, generator=generator)))
        widths = (src_width, canvas_width, canvas_width, canvas_width, canvas_width, 1)
        device = self.embed_tokens.weight.device
        padded = [torch.stack([F.pad(x, (0, 0) * (x.dim() - 1) + (0, width - x.size(0))) for x in column]).to(device)
                  for column, width in zip(zip(*rows), widths)]
        *draws, self_condition = padded
        return torch.cat(steps).to(device), TrainingNoise(*draws, self_condition=self_condition.squeeze(1))


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sentence mean of [B, L] values over positions where mask is 1."""
    return (values * mask).sum(1) / mask.sum(1).clamp(min=1)


