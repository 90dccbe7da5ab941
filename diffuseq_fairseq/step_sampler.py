"""Timestep samplers: uniform and DiffuSeq's loss-second-moment importance sampler (Eq. 9).

The importance sampler keeps, per step t, the last ``history`` training losses L_t and draws t with
p_t ∝ sqrt(E[L_t²]) mixed with ``uniform_prob`` of the uniform distribution; until every step has
a full history it samples uniformly. The state lives in tensors owned by the caller (the model
registers them as buffers), so it is saved in checkpoints and restored on resume.

With ``bins`` < T the losses of neighbouring steps are pooled: p_t ∝ the RMS loss of t's bin of
T/bins steps, and the sampler leaves the uniform warm-up once every bin (not every step) holds
``history`` losses. With T = 2,000 and about 60 sentences per update, the per-step rule stays
uniform for about 800 updates, most of a CPU budget; 100 bins warm up in a few dozen.

With ``first_step`` > 0 (DINOISER's noise-scale clipping) both samplers draw t only from
[first_step, T); the importance sampler then keeps and weighs the histories of those steps alone.

Updates take fixed-size per-step sums and counts, which a distributed caller can all-reduce before
calling :meth:`update`: every rank then pushes the same values and the histories stay identical.
"""
from typing import Optional, Tuple

import torch

TIMESTEP_SAMPLERS = ("lossaware", "uniform")  # the criterion's --timestep-sampler choices


class UniformSampler:
    def __init__(self, num_steps: int, first_step: int = 0):
        if not 0 <= first_step < num_steps:
            raise ValueError(f"first_step must be in [0, {num_steps}), got {first_step}")
        self.num_steps = num_steps - first_step  # steps it draws from
        self.first_step = first_step

    def sample(self, batch_size: int, device, generator=None) -> Tuple[torch.Tensor, torch.Tensor]:
        t = torch.randint(self.first_step, self.first_step + self.num_steps, (batch_size,), device=device,
                          generator=generator)
        return t, torch.ones(batch_size, device=device)


class LossSecondMomentSampler:
    """Importance sampler over a ``[T, history]`` loss table and a ``[T]`` fill counter (their rows
    from ``first_step`` on, as views, so updates land in the caller's tensors)."""

    def __init__(self, loss_history: torch.Tensor, loss_count: torch.Tensor, uniform_prob: float = 0.001,
                 bins: int = 0, first_step: int = 0):
        if loss_history.dim() != 2 or loss_count.shape != loss_history.shape[:1]:
            raise ValueError("loss_history must be [T, K] and loss_count [T]")
        if not 0 <= first_step < loss_history.size(0):
            raise ValueError(f"first_step must be in [0, {loss_history.size(0)}), got {first_step}")
        steps = loss_history.size(0) - first_step
        if not 0 <= bins <= steps:
            raise ValueError(f"bins must be between 1 and the {steps} steps sampled (0: one per step), got {bins}")
        self.loss_history = loss_history[first_step:]
        self.loss_count = loss_count[first_step:]
        self.first_step = first_step
        self.uniform_prob = uniform_prob
        self.bins = bins or steps

    @property
    def num_steps(self) -> int:
        """Steps it draws from (T − first_step)."""
        return self.loss_history.size(0)

    @property
    def history_size(self) -> int:
        return self.loss_history.size(1)

    def _filled(self) -> torch.Tensor:
        """Losses held per step, as integers (the caller may keep the counts as floats)."""
        return self.loss_count.round().long()

    def _pooled_rms(self) -> Optional[torch.Tensor]:
        """Every step's bin RMS loss, or None while some bin holds fewer than ``history_size`` losses."""
        device = self.loss_count.device
        held = torch.arange(self.history_size, device=device) < self._filled().unsqueeze(-1)
        squares = (self.loss_history.double().pow(2) * held).sum(-1)
        step_bin = torch.arange(self.num_steps, device=device) * self.bins // self.num_steps
        zeros = torch.zeros(self.bins, dtype=torch.float64, device=device)
        bin_squares = zeros.index_add(0, step_bin, squares)
        bin_held = zeros.index_add(0, step_bin, held.sum(-1).double())
        if not bool((bin_held >= self.history_size).all()):
            return None
        return (bin_squares / bin_held).sqrt()[step_bin]

    def warmed_up(self) -> bool:
        return self._pooled_rms() is not None

    def probabilities(self) -> torch.Tensor:
        """p_t as float64 (uniform until every bin has a full history)."""
        steps = self.num_steps
        rms = self._pooled_rms()
        if rms is None:
            return torch.full((steps,), 1.0 / steps, dtype=torch.float64, device=self.loss_history.device)
        p = rms / rms.sum()
        return p * (1 - self.uniform_prob) + self.uniform_prob / steps

    def sample(self, batch_size: int, device, generator=None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Steps t and importance weights 1 / (N p_t) over the N steps it draws from, so the weighted
        loss stays an unbiased estimate of the uniform average over them."""
        p = self.probabilities()
        index = torch.multinomial(p.to(device), batch_size, replacement=True, generator=generator)
        weights = 1.0 / (self.num_steps * p.to(device)[index])
        return index + self.first_step, weights.float()

    def step_statistics(self, t: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """[2, num_steps] loss sums and counts of one batch per step it draws from: the fixed-size
        thing to all-reduce."""
        index = t - self.first_step
        stats = torch.zeros(2, self.num_steps, dtype=torch.float64, device=losses.device)
        stats[0].index_add_(0, index, losses.detach().double())
        stats[1].index_add_(0, index, torch.ones_like(losses, dtype=torch.float64))
        return stats

    @torch.no_grad()
    def update(self, stats: torch.Tensor) -> None:
        """Push the mean loss of every step seen in ``stats`` into that step's history (FIFO)."""
        sums, counts = stats[0], stats[1]
        # A NaN/inf loss (a batch fairseq is about to skip or abort on) must not poison p_t.
        seen = ((counts > 0) & sums.isfinite()).nonzero(as_tuple=True)[0].to(self.loss_history.device)
        if seen.numel() == 0:
            return
        means = (sums[seen] / counts[seen]).to(self.loss_history.dtype).to(self.loss_history.device)
        history = self.loss_history[seen]
        filled = self._filled()[seen]
        full = filled >= self.history_size
        # Full rows drop their oldest entry; rows still filling write at their fill position.
        shifted = torch.where(full.unsqueeze(-1), history.roll(-1, dims=1), history)
        position = torch.clamp(filled, max=self.history_size - 1)
        shifted[torch.arange(seen.numel(), device=seen.device), position] = means
        self.loss_history[seen] = shifted
        self.loss_count[seen] = torch.clamp(filled + 1, max=self.history_size).to(self.loss_count.dtype)
