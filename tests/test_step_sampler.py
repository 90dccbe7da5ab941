"""Unit tests of the timestep samplers (fairseq-free): uniform, and DiffuSeq's loss-second-moment
importance sampler with its binning, clipping, EMA-safe state and non-finite losses."""
import math

import pytest
import torch

from diffuseq_fairseq.step_sampler import LossSecondMomentSampler, UniformSampler


@pytest.mark.parametrize("count_dtype", [torch.float32, torch.long])  # the model's buffer, an older checkpoint's
def test_importance_sampler_is_uniform_until_warm_then_follows_second_moment(count_dtype):
    steps, hist = 4, 3
    sampler = LossSecondMomentSampler(torch.zeros(steps, hist), torch.zeros(steps, dtype=count_dtype), uniform_prob=0.1)
    assert torch.allclose(sampler.probabilities(), torch.full((steps,), 0.25, dtype=torch.float64))
    losses = {0: 1.0, 1: 1.0, 2: 2.0, 3: 4.0}
    for _ in range(hist):
        t = torch.tensor(list(losses))
        sampler.update(sampler.step_statistics(t, torch.tensor(list(losses.values()))))
    assert sampler.warmed_up()
    p = sampler.probabilities()
    rms = torch.tensor([1.0, 1.0, 2.0, 4.0], dtype=torch.float64)
    want = 0.9 * rms / rms.sum() + 0.1 / steps
    assert torch.allclose(p, want)
    t, w = sampler.sample(1000, "cpu", torch.Generator().manual_seed(0))
    assert torch.allclose(w.double(), 1 / (steps * p[t]), rtol=1e-6)
    # FIFO: a new loss pushes out the oldest one.
    sampler.update(sampler.step_statistics(torch.tensor([3, 3]), torch.tensor([10.0, 20.0])))
    assert sampler.loss_history[3].tolist() == [4.0, 4.0, 15.0]
    assert sampler.loss_count.tolist() == [hist] * steps


def test_importance_sampler_state_survives_fairseq_ema_averaging():
    """fairseq's --store-ema averages every state entry in place (ema·d + live·(1−d)), which fails on
    integer tensors: the counts are floats, and the averaged copy is itself a working sampler."""
    steps, hist = 4, 3
    history, count = torch.zeros(steps, hist), torch.zeros(steps)
    live = LossSecondMomentSampler(history, count)
    for _ in range(hist):
        live.update(live.step_statistics(torch.arange(steps), torch.tensor([1.0, 1.0, 2.0, 4.0])))
    ema_history, ema_count = torch.zeros(steps, hist), torch.zeros(steps)
    for _ in range(500):
        for ema, value in ((ema_history, history), (ema_count, count)):
            ema.mul_(0.99).add_(value, alpha=0.01)
    assert 2.9 < ema_count[0] < hist  # never exactly full: the sampler rounds
    averaged = LossSecondMomentSampler(ema_history, ema_count)
    assert averaged.warmed_up()
    assert torch.allclose(averaged.probabilities(), live.probabilities(), atol=1e-3)
    averaged.update(averaged.step_statistics(torch.tensor([3]), torch.tensor([8.0])))
    assert ema_history[3, -1] == 8.0 and ema_count[3] == hist


def test_binned_importance_sampler_pools_neighbouring_steps_and_warms_up_early():
    steps, hist, bins = 8, 3, 2  # bins: steps 0-3 and 4-7
    sampler = LossSecondMomentSampler(torch.zeros(steps, hist), torch.zeros(steps, dtype=torch.long), uniform_prob=0.0,
                                      bins=bins)
    # Three losses per bin, spread over its steps: the per-step rule would still be uniform.
    t = torch.tensor([0, 1, 1, 4, 6, 7])
    losses = torch.tensor([1.0, 1.0, 1.0, 3.0, 3.0, 5.0])
    for step, loss in zip(t, losses):  # one update per loss, so step 1 keeps both of its losses
        sampler.update(sampler.step_statistics(step.view(1), loss.view(1)))
    assert sampler.warmed_up()
    assert not LossSecondMomentSampler(sampler.loss_history, sampler.loss_count).warmed_up()
    rms_low, rms_high = 1.0, math.sqrt((9 + 9 + 25) / 3)
    want = torch.tensor([rms_low] * 4 + [rms_high] * 4, dtype=torch.float64)
    p = sampler.probabilities()
    assert torch.allclose(p, want / want.sum())
    # Unbiased: E_p[w · L] over a loss that is constant per bin is the uniform average.
    t, w = sampler.sample(20000, "cpu", torch.Generator().manual_seed(0))
    assert torch.allclose(w.double(), 1 / (steps * p[t]), rtol=1e-6)
    bin_loss = torch.where(t < 4, 1.0, 2.0)
    assert (w * bin_loss).mean().item() == pytest.approx(1.5, rel=0.03)


def test_one_bin_per_step_is_the_paper_sampler():
    history = torch.rand(6, 4) + 0.1
    count = torch.full((6,), 4, dtype=torch.long)
    per_step = LossSecondMomentSampler(history, count, uniform_prob=0.01)
    assert torch.allclose(LossSecondMomentSampler(history, count, uniform_prob=0.01, bins=6).probabilities(),
                          per_step.probabilities())
    want = history.double().pow(2).mean(-1).sqrt()
    assert torch.allclose(per_step.probabilities(), 0.99 * want / want.sum() + 0.01 / 6)
    with pytest.raises(ValueError, match="bins"):
        LossSecondMomentSampler(history, count, bins=7)


def test_clipped_samplers_draw_only_from_the_first_step_on_and_stay_unbiased():
    steps, first, hist = 10, 6, 2
    t, w = UniformSampler(steps, first).sample(2000, "cpu", torch.Generator().manual_seed(0))
    assert set(t.tolist()) == set(range(first, steps)) and torch.equal(w, torch.ones(2000))
    history, count = torch.zeros(steps, hist), torch.zeros(steps, dtype=torch.long)
    sampler = LossSecondMomentSampler(history, count, uniform_prob=0.0, first_step=first)
    assert sampler.num_steps == steps - first
    loss_of = {6: 1.0, 7: 1.0, 8: 2.0, 9: 4.0}
    for _ in range(hist):
        t = torch.tensor(list(loss_of))
        sampler.update(sampler.step_statistics(t, torch.tensor(list(loss_of.values()))))
    # The histories land in the caller's rows of those steps; the unsampled steps stay empty.
    assert count.tolist() == [0] * first + [hist] * (steps - first)
    assert history[9].tolist() == [4.0, 4.0] and sampler.warmed_up()
    t, w = sampler.sample(20000, "cpu", torch.Generator().manual_seed(0))
    assert t.min() >= first and t.max() < steps
    # E_p[w · L] is the uniform average of L over the sampled steps: (1 + 1 + 2 + 4) / 4.
    losses = torch.tensor([loss_of[step] for step in t.tolist()])
    assert (w * losses).mean().item() == pytest.approx(2.0, rel=0.03)
    with pytest.raises(ValueError, match="first_step"):
        UniformSampler(steps, steps)


def test_importance_sampler_ignores_non_finite_losses():
    sampler = LossSecondMomentSampler(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long))
    losses = torch.tensor([1.0, float("nan"), float("inf")])
    sampler.update(sampler.step_statistics(torch.tensor([0, 1, 2]), losses))
    assert sampler.loss_count.tolist() == [1, 0, 0]
    assert torch.isfinite(sampler.loss_history).all()
