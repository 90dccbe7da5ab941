"""Unit tests of the fairseq-free diffusion math: schedules, q_sample, posteriors, vocabulary scoring
and rounding."""
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
