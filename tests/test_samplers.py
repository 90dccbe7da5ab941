"""Unit tests of the reverse-process samplers (one ``step`` interface, chosen by name) and their step grids."""
import math

import pytest
import torch

from diffuseq_fairseq.diffusion import GaussianDiffusion
from diffuseq_fairseq.samplers import (
    SAMPLERS,
    STEP_SPACINGS,
    DDIMSampler,
    DDPMSampler,
    DPMSolverPP,
    make_sampler,
    sampling_steps,
    step_pairs,
)


def test_ddim_gap_one_eta_one_is_the_ddpm_posterior():
    d = GaussianDiffusion("sqrt", 50)
    x0, x_t, noise = torch.randn(1, 3, 4), torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    step = 20
    abar_t, abar_s = float(d.alphas_cumprod[step]), float(d.alphas_cumprod[step - 1])
    got = DDIMSampler(eta=1.0).step(x0, x_t, abar_t, abar_s, noise)
    mean = d.q_posterior_mean(x0, x_t, torch.tensor([step]))
    std = math.sqrt(float(d.posterior_variance[step]))
    assert torch.allclose(got, mean + std * noise, atol=1e-5)


def test_ddpm_step_uses_fixed_large_variance_and_final_jump_is_x0():
    d = GaussianDiffusion("sqrt", 50)
    x0, x_t, noise = torch.randn(1, 3, 4), torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    step = 20
    got = DDPMSampler().step(x0, x_t, float(d.alphas_cumprod[step]), float(d.alphas_cumprod[step - 1]), noise)
    mean = d.q_posterior_mean(x0, x_t, torch.tensor([step]))
    assert torch.allclose(got, mean + math.sqrt(float(d.betas[step])) * noise, atol=1e-5)
    assert torch.allclose(DDPMSampler().step(x0, x_t, float(d.alphas_cumprod[0]), 1.0, noise), x0, atol=1e-6)
    assert torch.allclose(DDIMSampler().step(x0, x_t, float(d.alphas_cumprod[0]), 1.0), x0, atol=1e-6)


def test_ddim_uses_the_level_it_jumps_to():
    """Consistency: with the true x0 and eps, deterministic DDIM lands exactly on q at level s."""
    d = GaussianDiffusion("sqrt", 2000)
    x0, eps = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    t, s = 1500, 900
    abar_t, abar_s = float(d.alphas_cumprod[t]), float(d.alphas_cumprod[s])
    x_t = math.sqrt(abar_t) * x0 + math.sqrt(1 - abar_t) * eps
    want = math.sqrt(abar_s) * x0 + math.sqrt(1 - abar_s) * eps
    assert torch.allclose(DDIMSampler().step(x0, x_t, abar_t, abar_s), want, atol=1e-5)


def test_dpm_solver_first_order_equals_ddim_and_exact_with_true_x0():
    d = GaussianDiffusion("sqrt", 2000)
    x0, eps = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    steps = sampling_steps(10, 2000)
    pairs = step_pairs(steps, d.alphas_cumprod)
    _, abar_t, abar_s = pairs[0]
    x_t = math.sqrt(abar_t) * x0 + math.sqrt(1 - abar_t) * eps
    solver = DPMSolverPP()
    first = solver.step(x0, x_t, abar_t, abar_s)
    assert torch.allclose(first, DDIMSampler().step(x0, x_t, abar_t, abar_s), atol=1e-5)
    # With a perfect (constant) x0 prediction the 2nd-order steps stay on the true trajectory.
    x = first
    for _, a_t, a_s in pairs[1:]:
        x = solver.step(x0, x, a_t, a_s)
    assert torch.allclose(x, x0, atol=1e-4)


def test_samplers_are_chosen_by_name_and_share_one_step_signature():
    d = GaussianDiffusion("sqrt", 50)
    x0, x_t, noise = torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    abar_t, abar_s = float(d.alphas_cumprod[30]), float(d.alphas_cumprod[20])
    assert list(SAMPLERS) == ["ddpm", "ddim", "dpm-solver++"] and list(STEP_SPACINGS) == ["uniform", "logsnr"]
    kinds = {name: make_sampler(name, eta=0.5) for name in SAMPLERS}
    assert [type(s) for s in kinds.values()] == [DDPMSampler, DDIMSampler, DPMSolverPP]
    assert kinds["ddim"].eta == 0.5
    assert {name: s.stochastic for name, s in kinds.items()} == {"ddpm": True, "ddim": True, "dpm-solver++": False}
    assert not make_sampler("ddim").stochastic  # η = 0: deterministic, needs no noise
    for sampler in kinds.values():
        x_s = sampler.step(x0, x_t, abar_t, abar_s, noise, mean=None)
        assert x_s.shape == x_t.shape and torch.isfinite(x_s).all()
        sampler.select_rows(torch.tensor([1]))
    with pytest.raises(ValueError, match="unknown sampler 'euler'; choose one of ddpm, ddim, dpm-solver"):
        make_sampler("euler")
    with pytest.raises(ValueError, match="unknown step spacing 'karras'; choose one of uniform, logsnr"):
        sampling_steps(5, 50, "karras")


def test_every_sampler_recentres_on_the_soft_absorbing_state():
    """With v2's mean m, a step is the v1 step of the process shifted by m."""
    d = GaussianDiffusion("sqrt", 50)
    x0, x_t, noise, m = torch.randn(1, 3, 4), torch.randn(1, 3, 4), torch.randn(1, 3, 4), torch.randn(4)
    abar_t, abar_s = float(d.alphas_cumprod[30]), float(d.alphas_cumprod[20])
    for name in SAMPLERS:
        shifted = make_sampler(name, 0.5).step(x0 + m, x_t + m, abar_t, abar_s, noise, mean=m)
        plain = make_sampler(name, 0.5).step(x0, x_t, abar_t, abar_s, noise)
        assert torch.allclose(shifted, plain + m, atol=1e-5), name


def test_dpm_solver_select_rows_keeps_the_history_of_the_rows_left():
    d = GaussianDiffusion("sqrt", 100)
    pairs = step_pairs(sampling_steps(4, 100), d.alphas_cumprod)
    x0, x = torch.randn(3, 2, 4), torch.randn(3, 2, 4)
    whole, part = DPMSolverPP(), DPMSolverPP()
    for (_, a_t, a_s), x0_step in zip(pairs[:2], (x0, 0.5 * x0)):
        part.step(x0_step, x, a_t, a_s)
        x = whole.step(x0_step, x, a_t, a_s)
    part.select_rows(torch.tensor([0, 2]))
    _, a_t, a_s = pairs[2]
    assert torch.allclose(part.step(x0[[0, 2]], x[[0, 2]], a_t, a_s), whole.step(x0, x, a_t, a_s)[[0, 2]])


def test_sampling_steps():
    assert sampling_steps(2000, 2000) == list(range(1999, -1, -1))
    steps = sampling_steps(20, 2000)
    assert len(steps) == 20 and steps[0] == 1999 and steps[-1] == 0
    assert all(a > b for a, b in zip(steps, steps[1:]))
    d = GaussianDiffusion("sqrt", 2000)
    logsnr = sampling_steps(10, 2000, "logsnr", d.alphas_cumprod)
    assert logsnr[0] == 1999 and logsnr[-1] == 0 and len(logsnr) == 10
    assert all(a > b for a, b in zip(logsnr, logsnr[1:]))
    assert len(sampling_steps(10, 100, "logsnr", GaussianDiffusion("sqrt", 100).alphas_cumprod)) == 10
    with pytest.raises(ValueError, match="diffusion-steps"):
        sampling_steps(0, 2000)


def test_sampling_steps_from_a_lowest_step_stay_in_the_trained_range():
    assert sampling_steps(5, 2000, lowest=1600) == [1999, 1899, 1800, 1700, 1600]
    d = GaussianDiffusion("sqrt", 2000)
    logsnr = sampling_steps(6, 2000, "logsnr", d.alphas_cumprod, lowest=1600)
    assert logsnr[0] == 1999 and logsnr[-1] == 1600 and len(logsnr) == 6
    assert all(a > b for a, b in zip(logsnr, logsnr[1:]))
    assert sampling_steps(400, 2000, lowest=1600) == list(range(1999, 1599, -1))
    with pytest.raises(ValueError, match=r"--diffusion-steps must be in \[1, 400\]"):
        sampling_steps(401, 2000, lowest=1600)
    with pytest.raises(ValueError, match="lowest sampling step"):
        sampling_steps(5, 2000, lowest=2000)
