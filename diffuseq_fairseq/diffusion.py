"""Gaussian diffusion over embeddings with partial noising (DiffuSeq), free of fairseq.

Conventions follow the official DiffuSeq code: discrete steps t = 0..T-1, ``alphas_cumprod[t]`` is
ᾱ_t, step 0 is the (slightly noisy) "z0" level, and the model predicts x0 directly. The reverse
process (samplers and their step grids) is in :mod:`diffuseq_fairseq.samplers`; this module holds
the noise schedules, the forward process and the scoring of vectors against the vocabulary.

All schedule tensors are float64 and never become module buffers, so ``model.half()`` cannot
round ᾱ ≈ 2e-7 to zero (which would give NaN in 1/sqrt(ᾱ) style expressions).
"""
import math
from typing import Callable, Dict, Optional, Tuple

import torch


def betas_for_alpha_bar(num_steps: int, alpha_bar: Callable[[float], float], max_beta: float = 0.999):
    """Discretise a continuous ᾱ(s), s ∈ [0, 1], into betas (capped like improved-diffusion)."""
    betas = [
        min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta)
        for i in range(num_steps)
    ]
    return torch.tensor(betas, dtype=torch.float64)


def _sqrt_betas(num_steps: int) -> torch.Tensor:
    """DiffuSeq's default: ᾱ(s) = 1 - sqrt(s + 1e-4)."""
    return betas_for_alpha_bar(num_steps, lambda s: 1 - math.sqrt(s + 1e-4))


def _linear_betas(num_steps: int) -> torch.Tensor:
    """DDPM's, rescaled so any T spans the same noise range."""
    scale = 1000 / num_steps
    return torch.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=torch.float64)


def _cosine_betas(num_steps: int) -> torch.Tensor:
    return betas_for_alpha_bar(num_steps, lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2)


# The noise schedules by name (T -> float64 betas); --noise-schedule's choices are these names.
SCHEDULES: Dict[str, Callable[[int], torch.Tensor]] = {
    "sqrt": _sqrt_betas, "linear": _linear_betas, "cosine": _cosine_betas,
}


def make_betas(schedule: str, num_steps: int) -> torch.Tensor:
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    return SCHEDULES[schedule](num_steps)


def _gather(table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """table[t] as float32 on like's device, shaped to broadcast over like ([B, ...])."""
    values = table.to(like.device)[t].float()
    return values.view(-1, *([1] * (like.dim() - 1)))


class GaussianDiffusion:
    """Forward process, posteriors and the training-time terms of DiffuSeq."""

    def __init__(self, schedule: str = "sqrt", num_steps: int = 2000):
        self.schedule = schedule
        self.num_steps = num_steps
        self.betas = make_betas(schedule, num_steps)
        self.alphas_cumprod = torch.cumprod(1 - self.betas, dim=0)
        self.alphas_cumprod_prev = torch.cat([torch.ones(1, dtype=torch.float64), self.alphas_cumprod[:-1]])
        ac, acp = self.alphas_cumprod, self.alphas_cumprod_prev
        self.posterior_variance = self.betas * (1 - acp) / (1 - ac)
        self.posterior_mean_coef_x0 = self.betas * acp.sqrt() / (1 - ac)
        self.posterior_mean_coef_xt = (1 - acp) * (1 - self.betas).sqrt() / (1 - ac)

    def model_time(self, t: torch.Tensor) -> torch.Tensor:
        """DiffuSeq rescales the step index to [0, 1000) before the time embedding."""
        return t.float() * (1000.0 / self.num_steps)

    @property
    def z0_noise_std(self) -> float:
        """std of the noise that turns Emb(w) into z0 (0.121 for sqrt, T=2000)."""
        return float((1 - self.alphas_cumprod[0]).sqrt())

    def q_sample(
        self,
        x0: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor,
        mask: Optional[torch.Tensor] = None,
        mean: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """x_t = sqrt(ᾱ_t)(x0 - m) + sqrt(1-ᾱ_t) ε + m where mask is 1; x0 where mask is 0.

        ``mask`` ([B, L], 1 = noised) implements partial noising: the source span stays anchored.
        ``mean`` is DiffuSeq-v2's learned soft absorbing state m (None = 0, the v1 process).
        """
        a = _gather(self.alphas_cumprod, t, x0).sqrt()
        s = _gather(1 - self.alphas_cumprod, t, x0).sqrt()
        centre = 0 if mean is None else mean
        x_t = a * (x0 - centre) + s * noise + centre
        if mask is None:
            return x_t
        return torch.where(mask.unsqueeze(-1).bool(), x_t, x0)

    def q_posterior_mean(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Mean of q(x_{t-1} | x_t, x0)."""
        return (
            _gather(self.posterior_mean_coef_x0, t, x_t) * x0
            + _gather(self.posterior_mean_coef_xt, t, x_t) * x_t
        )

    def prior_loss(self, x0: torch.Tensor) -> torch.Tensor:
        """DiffuSeq's tT term, ‖sqrt(ᾱ_{T-1}) x0‖² per position: the mean of q(x_T|x0) against N(0, I)."""
        a = float(self.alphas_cumprod[-1].sqrt())
        return (a * x0.float()) ** 2



# cache, and MBR's B·S·L rows never hold a [B·S·L, V] matrix (480 MiB for 100 sentences × 10
# candidates on Multi30k). GPUs take the whole matrix in one call (see vocabulary_block_rows).
CPU_VOCABULARY_BLOCK = 2**21


def vocabulary_block_rows(device: torch.device, vocabulary_size: int) -> Optional[int]:
    """Rows per vocabulary-scoring block on ``device``; None: all rows at once."""
    return max(1, CPU_VOCABULARY_BLOCK // vocabulary_size) if device.type == "cpu" else None


def _by_blocks(x: torch.Tensor, vocabulary_size: int, block_rows: Optional[int], score):
    """Apply ``score`` ([rows, D] -> tuple of [rows] tensors) to the vectors of x block by block
    (``block_rows`` None: as vocabulary_block_rows picks for x's device)."""
    block_rows = block_rows or vocabulary_block_rows(x.device, vocabulary_size)
    flat = x.reshape(-1, x.size(-1))
    parts = [score(block) for block in (flat.split(block_rows) if block_rows else (flat,))]
    return tuple(torch.cat(column).view(x.shape[:-1]) for column in zip(*parts))


def nearest_embedding_ids(x: torch.Tensor, embeddings: torch.Tensor, block_rows: Optional[int] = None) -> torch.Tensor:
    """Index of the nearest embedding row (L2) of each vector of x ([..., D] -> [...])."""
    squared_norms = embeddings.pow(2).sum(-1)
    # ‖x - e‖² = ‖x‖² - 2 x·e + ‖e‖²; the ‖x‖² term does not change the argmin. One fused
    # addmm: a separate subtraction over the [N, V] score matrix cost a third of the rounding.
    (ids,) = _by_blocks(x.to(embeddings.dtype), embeddings.size(0), block_rows,
                        lambda block: (torch.addmm(squared_norms, block, embeddings.t(), alpha=-2).argmin(-1),))
    return ids


def most_likely_words(
    x: torch.Tensor, embeddings: torch.Tensor, bias: torch.Tensor, block_rows: Optional[int] = None,
    with_log_probs: bool = True,
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(argmax, its log-probability) of softmax(x·Eᵀ + b) for each vector of x ([..., D] -> two [...]);
    without ``with_log_probs`` the second is None and no softmax is computed."""
    def score(block):
        logits = torch.addmm(bias, block, embeddings.t())
        if not with_log_probs:
            return (logits.argmax(-1),)
        # log_softmax is one fused pass; on a CPU torch.logsumexp over the block was 15 % slower.
        log_probs, ids = torch.log_softmax(logits.float(), -1).max(-1)
        return ids, log_probs

    columns = _by_blocks(x.to(embeddings.dtype), embeddings.size(0), block_rows, score)
    return columns if with_log_probs else (columns[0], None)


def nearest_word_ids(x: torch.Tensor, embeddings: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """L2 rounding: the nearest embedding (the official DiffuSeq clamp)."""
    return nearest_embedding_ids(x, embeddings)


def likeliest_word_ids(x: torch.Tensor, embeddings: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Argmax lm_head(x) (Difformer's clamp: it uses the trained output bias)."""
    return most_likely_words(x, embeddings, bias, with_log_probs=False)[0]


# How the reverse process clamps x̂0 to a word at every step, by name: (x, embeddings, output bias)
# -> word ids; "none" keeps x̂0 as predicted. --rounding's choices are these names.
ROUNDINGS: Dict[str, Optional[Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]]] = {
    "l2": nearest_word_ids, "logits": likeliest_word_ids, "none": None,
}


def discrete_absorb(
    x: torch.Tensor, rate: torch.Tensor, mask: torch.Tensor, mean: torch.Tensor, generator=None
) -> torch.Tensor:
    """DiffuSeq-v2's discrete noise: each noised position becomes m with probability ``rate`` ([B])."""
    u = torch.rand(x.shape[:2], device=x.device, generator=generator)
    replace = (u < rate.view(-1, 1)) & mask.bool()
    return torch.where(replace.unsqueeze(-1), mean.to(x.dtype).expand_as(x), x)
