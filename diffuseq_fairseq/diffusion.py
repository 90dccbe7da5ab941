"""Gaussian diffusion over embeddings with partial noising (DiffuSeq), free of fairseq.

Conventions follow the official DiffuSeq code: discrete steps t = 0..T-1, ``alphas_cumprod[t]`` is
ᾱ_t, step 0 is the (slightly noisy) "z0" level, and the model predicts x0 directly. Sampling walks a
decreasing list of steps and ends with a jump to the clean level (ᾱ = 1), so the last update
returns the model's x̂0 itself.

All schedule tensors are float64 and never become module buffers, so ``model.half()`` cannot
round ᾱ ≈ 2e-7 to zero (which would give NaN in 1/sqrt(ᾱ) style expressions).
"""
import math
from typing import Callable, List, Optional, Sequence, Tuple

import torch

SCHEDULES = ("sqrt", "linear", "cosine")


def betas_for_alpha_bar(num_steps: int, alpha_bar: Callable[[float], float], max_beta: float = 0.999):
    """Discretise a continuous ᾱ(s), s ∈ [0, 1], into betas (capped like improved-diffusion)."""
    betas = [
        min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), max_beta)
        for i in range(num_steps)
    ]
    return torch.tensor(betas, dtype=torch.float64)


def make_betas(schedule: str, num_steps: int) -> torch.Tensor:
    if schedule == "sqrt":  # DiffuSeq's default: ᾱ(s) = 1 - sqrt(s + 1e-4)
        return betas_for_alpha_bar(num_steps, lambda s: 1 - math.sqrt(s + 1e-4))
    if schedule == "linear":  # DDPM's, rescaled so any T spans the same noise range
        scale = 1000 / num_steps
        return torch.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=torch.float64)
    if schedule == "cosine":
        return betas_for_alpha_bar(
            num_steps, lambda s: math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
        )
    raise ValueError(f"unknown noise schedule {schedule!r}; choose one of {SCHEDULES}")


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


def sampling_steps(
    num_steps: int, total: int, spacing: str = "uniform", alphas_cumprod=None, lowest: int = 0
) -> List[int]:
    """Decreasing list of ``num_steps`` step indices in [lowest, total), always containing total-1 and lowest.

    ``uniform`` spaces indices evenly (DDIM's time-uniform); ``logsnr`` spaces them evenly in
    log-SNR, which DPM-Solver recommends for few steps. ``lowest`` > 0 keeps every model call on
    the steps a model trained with noise-scale clipping has seen; the last step still jumps to
    the clean level (see step_pairs).
    """
    if not 0 <= lowest < total:
        raise ValueError(f"the lowest sampling step must be in [0, {total}), got {lowest}")
    if not 1 <= num_steps <= total - lowest:
        raise ValueError(f"--diffusion-steps must be in [1, {total - lowest}], got {num_steps}")
    if num_steps == 1:
        return [total - 1]
    if spacing == "uniform":
        points = torch.linspace(total - 1, lowest, num_steps, dtype=torch.float64)
    elif spacing == "logsnr":
        log_snr = (alphas_cumprod / (1 - alphas_cumprod)).log()
        targets = torch.linspace(float(log_snr[-1]), float(log_snr[lowest]), num_steps, dtype=torch.float64)
        points = torch.stack([(log_snr - v).abs().argmin() for v in targets]).double()
    else:
        raise ValueError(f"unknown step spacing {spacing!r}; choose uniform or logsnr")
    # Rounding can map neighbouring points to one index (log-SNR crowds near t=0): keep the
    # indices strictly decreasing while leaving room for the points still to come.
    steps: List[int] = []
    for i, p in enumerate(points.round().long().tolist()):
        upper = total - 1 if not steps else steps[-1] - 1
        steps.append(max(min(p, upper), lowest + num_steps - 1 - i))
    return steps


def ddim_step(
    x0_hat: torch.Tensor,
    x_t: torch.Tensor,
    abar_t: float,
    abar_s: float,
    eta: float = 0.0,
    noise: Optional[torch.Tensor] = None,
    mean: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Exact DDIM update from level ᾱ_t to level ᾱ_s (s < t) given x̂0.

    Uses ᾱ of the step actually jumped to (the official DiffuSeq ``ddim_sample`` uses ᾱ_{t-1}
    whatever the gap, which is not DDIM). η=1 with s = t-1 is the DDPM posterior with its
    "fixed small" variance. ``mean`` recentres the process on v2's soft absorbing state.
    """
    centre = 0 if mean is None else mean
    x0c, xtc = x0_hat - centre, x_t - centre
    eps = (xtc - math.sqrt(abar_t) * x0c) / math.sqrt(1 - abar_t)
    sigma = eta * math.sqrt(max((1 - abar_s) / (1 - abar_t) * (1 - abar_t / abar_s), 0.0))
    direction = math.sqrt(max(1 - abar_s - sigma**2, 0.0))
    x_s = math.sqrt(abar_s) * x0c + direction * eps
    if sigma > 0:
        x_s = x_s + sigma * noise
    return x_s + centre


def ddpm_step(
    x0_hat: torch.Tensor,
    x_t: torch.Tensor,
    abar_t: float,
    abar_s: float,
    noise: Optional[torch.Tensor] = None,
    mean: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Ancestral step with DiffuSeq's "fixed large" variance β, on a possibly respaced chain.

    With s = t-1 this is ``p_sample`` of the official code: posterior mean + sqrt(β_t) z; the
    final jump to the clean level (ᾱ_s = 1) adds no noise and returns x̂0.
    """
    centre = 0 if mean is None else mean
    x0c, xtc = x0_hat - centre, x_t - centre
    beta = 1 - abar_t / abar_s
    coef_x0 = math.sqrt(abar_s) * beta / (1 - abar_t)
    coef_xt = math.sqrt(1 - beta) * (1 - abar_s) / (1 - abar_t)
    mu = coef_x0 * x0c + coef_xt * xtc
    if abar_s < 1.0 and noise is not None:
        mu = mu + math.sqrt(beta) * noise
    return mu + centre


class DPMSolverPP:
    """DPM-Solver++ (multistep, 2nd order) for an x0-prediction model on a discrete VP chain.

    Call :meth:`step` once per model evaluation with x̂0; the first step and (when
    ``lower_order_final``) the last step are first order, which equals DDIM with η=0.
    """

    def __init__(self, order: int = 2, lower_order_final: bool = True):
        if order not in (1, 2):
            raise ValueError("DPM-Solver++ order must be 1 or 2")
        self.order = order
        self.lower_order_final = lower_order_final
        self._prev_x0: Optional[torch.Tensor] = None
        self._prev_h: Optional[float] = None

    @staticmethod
    def _lambda(abar: float) -> float:
        return 0.5 * math.log(abar / (1 - abar))

    def step(self, x0_hat, x_t, abar_t: float, abar_s: float, is_last: bool, mean=None):
        centre = 0 if mean is None else mean
        x0c, xtc = x0_hat - centre, x_t - centre
        if abar_s >= 1.0:  # jump to the clean level: σ_s = 0, so x_s is the (extrapolated) x̂0
            x_s = x0c
            if self.order == 2 and self._prev_x0 is not None and not self.lower_order_final:
                x_s = 1.5 * x0c - 0.5 * self._prev_x0  # r → 1 limit
            self._prev_x0 = None
            return x_s + centre
        sigma_t, sigma_s = math.sqrt(1 - abar_t), math.sqrt(1 - abar_s)
        h = self._lambda(abar_s) - self._lambda(abar_t)
        use_second = (
            self.order == 2 and self._prev_x0 is not None and not (is_last and self.lower_order_final)
        )
        if use_second:
            r = self._prev_h / h
            d = (1 + 1 / (2 * r)) * x0c - (1 / (2 * r)) * self._prev_x0
        else:
            d = x0c
        x_s = (sigma_s / sigma_t) * xtc - math.sqrt(abar_s) * math.expm1(-h) * d
        self._prev_x0, self._prev_h = x0c, h
        return x_s + centre

    def select_rows(self, index: torch.Tensor) -> None:
        """Keep the history rows ``index`` only (rows that stopped early leave the batch)."""
        if self._prev_x0 is not None:
            self._prev_x0 = self._prev_x0[index]


# A CPU decode scores blocks of this many [row, vocabulary] entries at a time: the block stays in
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


def discrete_absorb(
    x: torch.Tensor, rate: torch.Tensor, mask: torch.Tensor, mean: torch.Tensor, generator=None
) -> torch.Tensor:
    """DiffuSeq-v2's discrete noise: each noised position becomes m with probability ``rate`` ([B])."""
    u = torch.rand(x.shape[:2], device=x.device, generator=generator)
    replace = (u < rate.view(-1, 1)) & mask.bool()
    return torch.where(replace.unsqueeze(-1), mean.to(x.dtype).expand_as(x), x)


def step_pairs(steps: Sequence[int], alphas_cumprod: torch.Tensor):
    """(t, ᾱ_t, ᾱ_s) for consecutive steps, the last one jumping to the clean level ᾱ=1."""
    levels = [float(alphas_cumprod[s]) for s in steps] + [1.0]
    return [(steps[i], levels[i], levels[i + 1]) for i in range(len(steps))]
