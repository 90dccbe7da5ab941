"""Cross-entropy over the full vocabulary, fused with the lm_head that produces its logits.

DiffuSeq's rounding term (and the anchor CE) score every canvas position against all V words. Built
from ``x @ Wᵀ + b`` and ``F.cross_entropy``, autograd allocates five [N, V] tensors per call (the
logits, the biased logits, the log-probabilities, nll_loss's zero-filled gradient, log_softmax's
gradient). Each is a fresh block of tens of MB, which the allocator takes from the OS page by page,
so on a CPU those page faults and the extra passes cost as much as the matrix products themselves.
Here the logits are the only [N, V] tensor: the log-sum-exp is taken over blocks of rows small enough
to be reused from the heap, and backward turns the logits into their own gradient in place.
Exponents are floored at -70, and in backward the probabilities at the floor are set to 0. PyTorch's
CPU exp runs about 10 times slower on arguments below float32's range (under about -87), which most
of a large vocabulary's log-probabilities are once a model has learned anything; and probabilities
that small, times a gradient, become subnormal numbers, which make the next matrix product several
times slower. A probability under e^-70 (4e-31) is 0 next to the terms it is summed with; one above
it stays a normal number times any gradient above 3e-8.
"""
import math
from typing import Tuple

import torch
import torch.nn.functional as F

# Rows per block on a CPU: about 8 MB of float32 logits, under glibc's largest mmap threshold (32 MB), so
# the blocks' temporaries come back from the heap instead of from fresh pages. A GPU's caching allocator
# has no such cost, and there one block keeps the kernels few.
_BLOCK_FLOATS = 1 << 21
_EXPONENT_FLOOR = -70.0
# exp(floor) as float32 rounds it, with a margin: probabilities at the floor are zeroed in backward
_FLOOR_PROBABILITY = math.exp(_EXPONENT_FLOOR) * (1 + 1e-4)


def _blocks(logits: torch.Tensor):
    rows, vocabulary = logits.shape
    step = max(1, _BLOCK_FLOATS // max(1, vocabulary)) if logits.device.type == "cpu" else max(1, rows)
    return (slice(start, min(start + step, rows)) for start in range(0, rows, step))


class _LinearCrossEntropy(torch.autograd.Function):
    """(−log p(token), its label-smoothed version) per row, p = softmax(x Wᵀ + b)."""

    @staticmethod
    def forward(ctx, x, weight, bias, tokens, smoothing: float):
        logits = torch.addmm(bias, x, weight.t())
        rows = logits.size(0)
        # log p = (logit − peak) − log Σ exp(logit − peak), in log_softmax's order of operations
        peak = torch.empty(rows, dtype=torch.float32, device=logits.device)
        log_sum, mean = torch.empty_like(peak), torch.empty_like(peak) if smoothing else None
        for block in _blocks(logits):
            shifted = logits[block].float()
            peak[block] = shifted.amax(-1)
            shifted = shifted - peak[block, None]
            if smoothing:
                mean[block] = shifted.mean(-1)
            log_sum[block] = shifted.clamp_(min=_EXPONENT_FLOOR).exp_().sum(-1).log_()
        nll = log_sum - (logits.gather(1, tokens.unsqueeze(1)).squeeze(1).float() - peak)
        if smoothing:  # −mean over the vocabulary of log p = log_sum − mean(logit − peak)
            loss = (1 - smoothing) * nll + smoothing * (log_sum - mean)
        else:
            loss = nll.clone()  # the two outputs must be distinct tensors
        ctx.save_for_backward(x, weight, tokens, peak, log_sum)
        ctx.logits, ctx.smoothing = logits, smoothing
        return nll, loss

    @staticmethod
    def backward(ctx, grad_nll, grad_loss):
        x, weight, tokens, peak, log_sum = ctx.saved_tensors
        logits, smoothing = ctx.logits, ctx.smoothing
        ctx.logits = None  # consumed in place below: a second backward through this graph is not supported
        if logits is None:
            raise RuntimeError("vocabulary_cross_entropy: backward ran twice through the same graph")
        zeros = torch.zeros_like(peak)
        grad_nll = zeros if grad_nll is None else grad_nll.float()
        grad_loss = zeros if grad_loss is None else grad_loss.float()
        # d/dlogits = (g_nll + g_loss)·softmax − (g_nll + (1−ε)·g_loss)·onehot − ε·g_loss/V
        softmax_scale = grad_nll + grad_loss
        target_scale = grad_nll + (1 - smoothing) * grad_loss
        vocabulary = logits.size(1)
        for block in _blocks(logits):
            values = logits[block]
            grad = ((values.float() - peak[block, None]) - log_sum[block, None]).clamp_(min=_EXPONENT_FLOOR).exp_()
            F.threshold_(grad, _FLOOR_PROBABILITY, 0.0)
            grad.mul_(softmax_scale[block, None])
            if smoothing:
                grad.sub_((smoothing / vocabulary) * grad_loss[block, None])
            values.copy_(grad)
        logits.scatter_add_(1, tokens.unsqueeze(1), -target_scale.unsqueeze(1).to(logits.dtype))
        grad_x = logits @ weight if ctx.needs_input_grad[0] else None
        grad_weight = logits.t() @ x if ctx.needs_input_grad[1] else None
        grad_bias = logits.sum(0) if ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias, None, None


def vocabulary_cross_entropy(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, tokens: torch.Tensor,
                             smoothing: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """(−log p(token), (1−ε)·(−log p(token)) + ε·mean over the vocabulary of −log p), each shaped as
    ``tokens``, for p = softmax(x Wᵀ + b) with x [..., d], W [V, d], b [V]; float32, as
    ``F.cross_entropy(logits.float(), tokens, label_smoothing=ε)`` gives them."""
    flat = x.reshape(-1, x.size(-1))
    nll, loss = _LinearCrossEntropy.apply(flat, weight.to(flat.dtype), bias.to(flat.dtype), tokens.reshape(-1),
                                          float(smoothing))
    return nll.view(tokens.shape), loss.view(tokens.shape)
