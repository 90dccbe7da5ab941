"""The official samplers' own step rules, run on the plugin's network (harness only; plugin venv).

Where the official code departs from the textbook samplers the plugin implements, these functions
apply the official rule to the converted model, so that compare_reverse.py can show the departures
are the only differences (the rule run here gives the official words and states). They are written
from the arithmetic of the official code, which is described below; none of it is imported here.

* ``ddim_official_grid``: DiffuSeq v1's ``ddim_sample_loop`` with ``gap = T // S``: the steps
  ``range(T)[::-1][::gap]`` (so T-1, T-1-gap, ..., never step 0), rounding x̂0 to the nearest word
  embedding, then moving to the level ᾱ_{t-1} of the step below t whatever the gap (η = 0); the
  output is lm_head of the last state, not of x̂0. The plugin's DDIMSampler does the moving.
* ``dpm_solver_official_rule``: DiffuSeq-v2's ``sample_seq2seq_dpmSolver.py`` (DPM-Solver++,
  multistep, order 2, time_uniform, an x_start model): continuous time t in [1/N, 1] with
  log α(t) = ½ log ᾱ interpolated linearly between the steps' knots t_n = (n+1)/N, the model shown
  1000·t (a step n is shown as n+1, where training showed n), x̂0 taken through the noise
  prediction and back, and the solver's state x_t replaced by the anchored x̂0 after every model
  call (the script assigns the model output to ``x``, which the next update then starts from); with
  fewer than 10 steps the last update is first order; the output is lm_head of the state at t = 1/N.
"""
from unittest import mock

import torch

from diffuseq_fairseq.diffusion import nearest_embedding_ids
from diffuseq_fairseq.samplers import DDIMSampler


def ddim_official_grid(network, batch, start: torch.Tensor, grid):
    """(per step (x_t, t, x̂0), final state) of the official DDIM loop over ``grid``."""
    diffusion, embeddings = network.diffusion, network.word_embeddings()
    source = network.encode_source(batch.src_tokens, batch.lengths)
    sampler, x, steps = DDIMSampler(0.0), start.clone(), []
    for t in grid:
        x0_hat = network.denoise(x, torch.full((x.size(0),), t), source, target_mask=batch.inside)
        steps.append((x, t, x0_hat))
        rounded = embeddings[nearest_embedding_ids(x0_hat, embeddings)]
        x = sampler.step(rounded, x, float(diffusion.alphas_cumprod[t]), float(diffusion.alphas_cumprod_prev[t]))
    return steps, x


class ContinuousSchedule:
    """A discrete chain of N steps in continuous time: log α at the knots t_n = (n+1)/N, linear between
    them, float32 as the official NoiseScheduleVP('discrete')."""

    def __init__(self, betas: torch.Tensor):
        self.knots = torch.linspace(0.0, 1.0, len(betas) + 1)[1:]
        self.log_alphas = (0.5 * torch.log(1 - betas).cumsum(0)).float()

    def log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        k = (torch.searchsorted(self.knots, t) - 1).clamp(0, len(self.knots) - 2)
        t0, t1, y0, y1 = self.knots[k], self.knots[k + 1], self.log_alphas[k], self.log_alphas[k + 1]
        return y0 + (t - t0) * (y1 - y0) / (t1 - t0)

    def alpha(self, t):
        return torch.exp(self.log_alpha(t))

    def sigma(self, t):
        return torch.sqrt(1.0 - torch.exp(2.0 * self.log_alpha(t)))

    def lam(self, t):
        log_alpha = self.log_alpha(t)
        return log_alpha - 0.5 * torch.log(1.0 - torch.exp(2.0 * log_alpha))


def _solver_update(schedule, x, history, t, order: int):
    """One multistep DPM-Solver++ update to t from ``history`` [(t, x̂0), ...] (first or second order)."""
    (t_prev, x0_prev) = history[-1]
    h = schedule.lam(t) - schedule.lam(t_prev)
    phi = torch.expm1(-h)
    alpha_t, ratio = schedule.alpha(t), schedule.sigma(t) / schedule.sigma(t_prev)
    if order == 1:
        return ratio * x - alpha_t * phi * x0_prev
    (t_older, x0_older) = history[-2]
    r0 = (schedule.lam(t_prev) - schedule.lam(t_older)) / h
    d1 = (1.0 / r0) * (x0_prev - x0_older)
    return ratio * x - alpha_t * phi * x0_prev - 0.5 * (alpha_t * phi) * d1


def dpm_solver_official_rule(network, batch, start: torch.Tensor, betas: torch.Tensor, steps: int, order: int = 2):
    """(per model call (x_t, t, model output), final state) of the official script's solver."""
    schedule = ContinuousSchedule(betas)
    source = network.encode_source(batch.src_tokens, batch.lengths)
    times = torch.linspace(1.0, 1.0 / len(betas), steps + 1)
    calls = []

    def data_prediction(x, t):
        shown = t.expand(x.size(0))
        # The official model is shown 1000·t for continuous t.
        with mock.patch.object(network.diffusion, "model_time", lambda s: s.float() * 1000.0):
            out = network.denoise(x, shown, source, target_mask=batch.inside)
        calls.append((x, shown, out))
        alpha, sigma = schedule.alpha(t), schedule.sigma(t)
        noise = (x - alpha * out) / sigma  # the x_start model as a noise model, and back
        return (x - sigma * noise) / alpha

    x = data_prediction(start.clone(), times[:1])
    history = [(times[:1], x)]
    for step in range(1, steps + 1):
        t = times[step:step + 1]
        step_order = min(order, step)
        if steps < 10:  # lower_order_final
            step_order = min(step_order, steps + 1 - step)
        x = _solver_update(schedule, x, history, t, step_order)
        if step < steps:
            x = data_prediction(x, t)  # the state becomes x̂0, as in the official script
            history = (history + [(t, x)])[-order:]
    return calls, x
