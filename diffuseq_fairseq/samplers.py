"""Reverse-process samplers and their step grids, free of fairseq.

Every sampler moves x_t from level ᾱ_t to level ᾱ_s (s < t) given the model's x̂0, through one
interface, ``step(x0_hat, x_t, abar_t, abar_s, noise, mean)``; ``stochastic`` says whether a step
needs ``noise`` (drawn by the caller, so the caller owns the random stream). The samplers are
chosen by name from :data:`SAMPLERS` (as diffusers' schedulers and DINOISER's solvers are), the
step grids by name from :data:`STEP_SPACINGS`; the option help texts read these names.

The walk over a grid ends with a jump to the clean level (ᾱ = 1), so the last update returns x̂0
itself (see :func:`step_pairs`). ``mean`` recentres the process on DiffuSeq-v2's soft absorbing
state (None = 0, the v1 process).
"""
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch


def choose(registry: Dict[str, object], name: str, what: str):
    """``registry[name]``, or an error naming the choices."""
    try:
        return registry[str(name)]
    except KeyError:
        raise ValueError(f"unknown {what} {name!r}; choose one of {', '.join(registry)}") from None


def _uniform_points(num_steps: int, total: int, lowest: int, alphas_cumprod) -> torch.Tensor:
    """Evenly in t (DDIM's time-uniform grid)."""
    return torch.linspace(total - 1, lowest, num_steps, dtype=torch.float64)


def _logsnr_points(num_steps: int, total: int, lowest: int, alphas_cumprod) -> torch.Tensor:
    """Evenly in log-SNR, which DPM-Solver recommends for few steps."""
    log_snr = (alphas_cumprod / (1 - alphas_cumprod)).log()
    targets = torch.linspace(float(log_snr[-1]), float(log_snr[lowest]), num_steps, dtype=torch.float64)
    return torch.stack([(log_snr - v).abs().argmin() for v in targets]).double()


# name -> (num_steps, total, lowest, alphas_cumprod) -> decreasing float step positions
STEP_SPACINGS: Dict[str, Callable[..., torch.Tensor]] = {"uniform": _uniform_points, "logsnr": _logsnr_points}


def sampling_steps(
    num_steps: int, total: int, spacing: str = "uniform", alphas_cumprod=None, lowest: int = 0
) -> List[int]:
    """Decreasing list of ``num_steps`` step indices in [lowest, total), always containing total-1 and lowest.

    ``lowest`` > 0 keeps every model call on the steps a model trained with noise-scale clipping
    has seen; the last step still jumps to the clean level (see step_pairs).
    """
    if not 0 <= lowest < total:
        raise ValueError(f"the lowest sampling step must be in [0, {total}), got {lowest}")
    if not 1 <= num_steps <= total - lowest:
        raise ValueError(f"--diffusion-steps must be in [1, {total - lowest}], got {num_steps}")
    points = choose(STEP_SPACINGS, spacing, "step spacing")
    if num_steps == 1:
        return [total - 1]
    # Rounding can map neighbouring points to one index (log-SNR crowds near t=0): keep the
    # indices strictly decreasing while leaving room for the points still to come.
    steps: List[int] = []
    for i, p in enumerate(points(num_steps, total, lowest, alphas_cumprod).round().long().tolist()):
        upper = total - 1 if not steps else steps[-1] - 1
        steps.append(max(min(p, upper), lowest + num_steps - 1 - i))
    return steps


def step_pairs(steps: Sequence[int], alphas_cumprod: torch.Tensor) -> List[Tuple[int, float, float]]:
    """(t, ᾱ_t, ᾱ_s) for consecutive steps, the last one jumping to the clean level ᾱ=1."""
    levels = [float(alphas_cumprod[s]) for s in steps] + [1.0]
    return [(steps[i], levels[i], levels[i + 1]) for i in range(len(steps))]


class Sampler:
    """One reverse update per model call; subclasses implement :meth:`step`."""

    stochastic = False  # whether step() adds ``noise``

    def step(self, x0_hat: torch.Tensor, x_t: torch.Tensor, abar_t: float, abar_s: float,
             noise: Optional[torch.Tensor] = None, mean: Optional[torch.Tensor] = None) -> torch.Tensor:
        raise NotImplementedError

    def select_rows(self, index: torch.Tensor) -> None:
        """Keep the state of rows ``index`` only (rows that stopped early leave the batch)."""


class DDPMSampler(Sampler):
    """Ancestral step with DiffuSeq's "fixed large" variance β, on a possibly respaced chain.

    With s = t-1 this is ``p_sample`` of the official code: posterior mean + sqrt(β_t) z; the
    final jump to the clean level (ᾱ_s = 1) adds no noise and returns x̂0.
    """

    stochastic = True

    def step(self, x0_hat, x_t, abar_t, abar_s, noise=None, mean=None):
        centre = 0 if mean is None else mean
        x0c, xtc = x0_hat - centre, x_t - centre
        beta = 1 - abar_t / abar_s
        coef_x0 = math.sqrt(abar_s) * beta / (1 - abar_t)
        coef_xt = math.sqrt(1 - beta) * (1 - abar_s) / (1 - abar_t)
        mu = coef_x0 * x0c + coef_xt * xtc
        if abar_s < 1.0 and noise is not None:
            mu = mu + math.sqrt(beta) * noise
        return mu + centre


class DDIMSampler(Sampler):
    """Exact DDIM update from level ᾱ_t to level ᾱ_s given x̂0, with η in [0, 1].

    Uses ᾱ of the step actually jumped to (the official DiffuSeq ``ddim_sample`` uses ᾱ_{t-1}
    whatever the gap, which is not DDIM). η=1 with s = t-1 is the DDPM posterior with its
    "fixed small" variance; η=0 is deterministic.
    """

    def __init__(self, eta: float = 0.0):
        self.eta = eta
        self.stochastic = eta > 0

    def step(self, x0_hat, x_t, abar_t, abar_s, noise=None, mean=None):
        centre = 0 if mean is None else mean
        x0c, xtc = x0_hat - centre, x_t - centre
        eps = (xtc - math.sqrt(abar_t) * x0c) / math.sqrt(1 - abar_t)
        sigma = self.eta * math.sqrt(max((1 - abar_s) / (1 - abar_t) * (1 - abar_t / abar_s), 0.0))
        direction = math.sqrt(max(1 - abar_s - sigma**2, 0.0))
        x_s = math.sqrt(abar_s) * x0c + direction * eps
        if sigma > 0:
            x_s = x_s + sigma * noise
        return x_s + centre


class DPMSolverPP(Sampler):
    """DPM-Solver++ (multistep, 2nd order) for an x0-prediction model on a discrete VP chain.

    One instance walks one grid: it keeps the previous x̂0. The first step is first order, which
    equals DDIM with η=0; so is the final jump to the clean level when ``lower_order_final``.
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

    def step(self, x0_hat, x_t, abar_t, abar_s, noise=None, mean=None):
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
        if self.order == 2 and self._prev_x0 is not None:
            r = self._prev_h / h
            d = (1 + 1 / (2 * r)) * x0c - (1 / (2 * r)) * self._prev_x0
        else:
            d = x0c
        x_s = (sigma_s / sigma_t) * xtc - math.sqrt(abar_s) * math.expm1(-h) * d
        self._prev_x0, self._prev_h = x0c, h
        return x_s + centre

    def select_rows(self, index: torch.Tensor) -> None:
        if self._prev_x0 is not None:
            self._prev_x0 = self._prev_x0[index]


# name -> a fresh sampler for one walk over a grid, given DDIM's η (which the others ignore)
SAMPLERS: Dict[str, Callable[[float], Sampler]] = {
    "ddpm": lambda eta: DDPMSampler(),
    "ddim": DDIMSampler,
    "dpm-solver++": lambda eta: DPMSolverPP(),
}


def make_sampler(name: str, eta: float = 0.0) -> Sampler:
    return choose(SAMPLERS, name, "sampler")(eta)
