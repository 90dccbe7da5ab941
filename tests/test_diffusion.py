"""Unit tests of the fairseq-free diffusion math: schedules, q_sample, posteriors, vocabulary scoring
and rounding, and the importance sampler."""
import math

import pytest
import torch

from diffuseq_fairseq.diffusion import (
    ROUNDINGS,
    SCHEDULES,
    GaussianDiffusion,
    make_betas,
    most_likely_words,
    nearest_embedding_ids,
)
from diffuseq_fairseq.step_sampler import LossSecondMomentSampler, UniformSampler


def test_sqrt_schedule_matches_official_values():
    d = GaussianDiffusion("sqrt", 2000)
    assert float(d.alphas_cumprod[0]) == pytest.approx(0.98536, abs=1e-5)
    assert float(d.alphas_cumprod[1000]) == pytest.approx(0.295, abs=5e-4)
    assert float(d.alphas_cumprod[100]) == pytest.approx(0.783, abs=5e-4)
    assert float(d.alphas_cumprod[1999]) == pytest.approx(2.0e-7, rel=0.05)
    assert d.z0_noise_std == pytest.approx(0.1210, abs=1e-4)
    assert float(d.betas.max()) == pytest.approx(0.999)  # only the last beta hits the cap
    assert int((d.betas >= 0.999).sum()) == 1


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_schedules_are_monotone_and_valid(schedule):
    betas = make_betas(schedule, 500)
    abar = torch.cumprod(1 - betas, 0)
    assert (betas > 0).all() and (betas <= 0.999).all()
    assert (abar[1:] < abar[:-1]).all()
    assert abar[-1] < 0.05


def test_unknown_schedule_is_a_clear_error():
    assert list(SCHEDULES) == ["sqrt", "linear", "cosine"]
    with pytest.raises(ValueError, match="unknown noise schedule 'quadratic'; choose one of sqrt, linear, cosine"):
        make_betas("quadratic", 10)


def test_q_sample_leaves_source_span_untouched():
    d = GaussianDiffusion("sqrt", 100)
    x0 = torch.randn(3, 7, 4)
    mask = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 1]])
    t = torch.tensor([99, 50, 10])
    x_t = d.q_sample(x0, t, torch.randn_like(x0), mask=mask)
    keep = mask == 0
    assert torch.equal(x_t[keep], x0[keep])
    assert not torch.allclose(x_t[~keep], x0[~keep])


def test_q_sample_statistics_and_soft_absorbing_mean():
    d = GaussianDiffusion("sqrt", 2000)
    x0 = torch.full((20000, 1, 2), 3.0)
    t = torch.full((20000,), 1000)
    mean = torch.tensor([1.0, -1.0])
    x_t = d.q_sample(x0, t, torch.randn_like(x0), mean=mean)
    a = math.sqrt(float(d.alphas_cumprod[1000]))
    expected = a * (3.0 - mean) + mean
    assert torch.allclose(x_t.mean(0).squeeze(), expected.float(), atol=0.03)
    assert x_t.std(0).squeeze() == pytest.approx(torch.full((2,), math.sqrt(1 - a * a)), abs=0.03)


def test_posterior_mean_matches_closed_form():
    d = GaussianDiffusion("sqrt", 50)
    x0, x_t = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    t = torch.tensor([10, 30])
    got = d.q_posterior_mean(x0, x_t, t)
    for i, step in enumerate(t.tolist()):
        abar, abar_prev = float(d.alphas_cumprod[step]), float(d.alphas_cumprod[step - 1])
        beta = float(d.betas[step])
        want = (math.sqrt(abar_prev) * beta / (1 - abar)) * x0[i] + (math.sqrt(1 - beta) * (1 - abar_prev) / (1 - abar)) * x_t[i]
        assert torch.allclose(got[i], want, atol=1e-5)


def test_nearest_embedding_ids_pick_the_nearest_row_in_l2():
    emb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]])
    x = torch.tensor([[[0.9, 0.1], [0.1, 4.0], [-0.2, 0.1]]])
    assert nearest_embedding_ids(x, emb).tolist() == [[1, 2, 0]]
    big = torch.randn(3, 7, 16)
    table = torch.randn(50, 16)
    assert torch.equal(nearest_embedding_ids(big, table), torch.cdist(big.view(-1, 16), table).argmin(-1).view(3, 7))
    assert torch.equal(nearest_embedding_ids(big, table, block_rows=4), nearest_embedding_ids(big, table))


def test_most_likely_words_match_the_log_softmax_argmax_in_any_block_size():
    x, table, bias = torch.randn(3, 7, 16), torch.randn(50, 16), torch.randn(50)
    scores, ids = torch.log_softmax(x @ table.t() + bias, -1).max(-1)
    for block_rows in (None, 1, 5, 100):
        got_ids, got_scores = most_likely_words(x, table, bias, block_rows)
        assert torch.equal(got_ids, ids) and torch.allclose(got_scores, scores, atol=1e-5)
        assert torch.equal(most_likely_words(x, table, bias, block_rows, with_log_probs=False)[0], ids)


def test_roundings_by_name_pick_the_nearest_or_the_likeliest_word():
    table = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]])
    bias = torch.tensor([0.0, 0.0, -100.0])  # word 2 is nearest to x but never likely
    x = torch.tensor([[[0.1, 4.0]]])
    assert list(ROUNDINGS) == ["l2", "logits", "none"] and ROUNDINGS["none"] is None
    assert ROUNDINGS["l2"](x, table, bias).tolist() == [[2]]
    assert ROUNDINGS["logits"](x, table, bias).tolist() == [[1]]


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
