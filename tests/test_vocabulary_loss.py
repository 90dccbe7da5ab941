"""The fused lm_head + cross-entropy equals F.cross_entropy over x Wᵀ + b, in value and gradient."""
import pytest
import torch
import torch.nn.functional as F

from diffuseq_fairseq import vocabulary_loss
from diffuseq_fairseq.vocabulary_loss import vocabulary_cross_entropy


def reference(x, weight, bias, tokens, smoothing):
    logits = (x @ weight.t() + bias).float().flatten(0, 1)
    nll = F.cross_entropy(logits, tokens.flatten(), reduction="none")
    loss = F.cross_entropy(logits, tokens.flatten(), reduction="none", label_smoothing=smoothing)
    return nll.view_as(tokens), loss.view_as(tokens)


def inputs(dtype=torch.float32, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 5, 8, generator=generator, dtype=dtype, requires_grad=True)
    weight = torch.randn(11, 8, generator=generator, dtype=dtype, requires_grad=True)
    bias = torch.randn(11, generator=generator, dtype=dtype, requires_grad=True)
    tokens = torch.randint(0, 11, (3, 5), generator=generator)
    return x, weight, bias, tokens


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("block_floats", [1 << 21, 11 * 2])  # one block; blocks of two rows, the last one shorter
def test_values_and_gradients_equal_cross_entropy(monkeypatch, smoothing, block_floats):
    monkeypatch.setattr(vocabulary_loss, "_BLOCK_FLOATS", block_floats)
    x, weight, bias, tokens = inputs()
    nll, loss = vocabulary_cross_entropy(x, weight, bias, tokens, smoothing)
    expected_nll, expected_loss = reference(x, weight, bias, tokens, smoothing)
    torch.testing.assert_close(nll, expected_nll, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(loss, expected_loss, atol=1e-6, rtol=1e-6)
    # a mix of both outputs, as the criterion logs one and trains on the other (here both carry gradient)
    scales = torch.rand(2, 3, 5, generator=torch.Generator().manual_seed(1))
    grads = torch.autograd.grad((scales[0] * nll).sum() + (scales[1] * loss).sum(), (x, weight, bias))
    expected = torch.autograd.grad((scales[0] * expected_nll).sum() + (scales[1] * expected_loss).sum(),
                                   (x, weight, bias))
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_double_precision_inputs_match_to_float32_rounding():
    """Float64 inputs: the logits and gradients stay float64; the per-row values are float32, as
    F.cross_entropy over .float() logits gives them."""
    x, weight, bias, tokens = inputs(torch.float64)
    nll, loss = vocabulary_cross_entropy(x, weight, bias, tokens, 0.2)
    expected_nll, expected_loss = reference(x, weight, bias, tokens, 0.2)
    assert nll.dtype == torch.float32
    torch.testing.assert_close(loss, expected_loss)
    grads = torch.autograd.grad((0.3 * nll + loss).sum(), (x, weight, bias))
    expected = torch.autograd.grad((0.3 * expected_nll + expected_loss).sum(), (x, weight, bias))
    for got, want in zip(grads, expected):
        assert got.dtype == torch.float64
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_only_one_output_used_and_no_gradient_needed():
    x, weight, bias, tokens = inputs()
    nll, _ = vocabulary_cross_entropy(x, weight, bias, tokens)
    (grad_x,) = torch.autograd.grad(nll.sum(), (x,))
    expected_nll, _ = reference(x, weight, bias, tokens, 0.0)
    torch.testing.assert_close(grad_x, torch.autograd.grad(expected_nll.sum(), (x,))[0], atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        nll, loss = vocabulary_cross_entropy(x, weight, bias, tokens, 0.1)
    assert not nll.requires_grad and not loss.requires_grad


def test_a_second_backward_through_the_graph_is_refused():
    x, weight, bias, tokens = inputs()
    nll, _ = vocabulary_cross_entropy(x, weight, bias, tokens)
    nll.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice"):
        nll.sum().backward()


def test_words_far_below_the_floor_get_no_gradient_and_the_rest_stay_exact():
    """Log-probabilities under -70 give an exact 0 in the gradient (not a subnormal, not e^-70), while
    the value and the other words' gradients match cross_entropy."""
    x = torch.tensor([[1.0, 0.0]], requires_grad=True)
    weight = torch.tensor([[0.0, 0.0], [100.0, 0.0], [-100.0, 0.0], [99.0, 0.0]])  # logits 0, 100, -100, 99
    bias = torch.zeros(4, requires_grad=True)
    tokens = torch.tensor([3])
    nll, _ = vocabulary_cross_entropy(x, weight, bias, tokens)
    expected_nll, _ = reference(x.unsqueeze(0), weight, bias, tokens.unsqueeze(0), 0.0)
    torch.testing.assert_close(nll, expected_nll.view(1))
    (grad_bias,) = torch.autograd.grad(nll.sum(), (bias,))
    assert grad_bias[0] == 0 and grad_bias[2] == 0  # e^-100, e^-200: under the floor
    torch.testing.assert_close(grad_bias[1:4:2], torch.softmax(torch.tensor([100.0, 99.0]), 0) - torch.tensor([0.0, 1.0]))
