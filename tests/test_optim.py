"""``--optimizer adamw``: torch's AdamW (the official DiffuSeq optimizer) behind fairseq's optimizer API."""
import pytest
import torch
from fairseq import optim
from omegaconf import OmegaConf

import diffuseq_fairseq  # noqa: F401  (registers the optimizer)
from diffuseq_fairseq.optim import FairseqAdamW, _betas


def build(name: str, params, **extra):
    cfg = OmegaConf.create({"_name": name, "adam_betas": "(0.9, 0.999)", "adam_eps": 1e-8, "weight_decay": 0.0,
                            "lr": [1e-3], **extra})
    return optim.build_optimizer(cfg, params)


def first_step(name: str, gradient: torch.Tensor, **extra) -> torch.Tensor:
    param = torch.nn.Parameter(torch.zeros_like(gradient))
    optimizer = build(name, [param], **extra)
    param.grad = gradient.clone()
    optimizer.step()
    return param.detach()


def test_adamw_steps_exactly_as_torch_adamw():
    torch.manual_seed(0)
    start = torch.randn(5, 7)
    gradients = [torch.randn(5, 7) * scale for scale in (1e-9, 1e-3, 1.0)]
    ours, reference = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    fairseq_optimizer = build("adamw", [ours], weight_decay=0.01)
    assert isinstance(fairseq_optimizer, FairseqAdamW)
    torch_optimizer = torch.optim.AdamW([reference], lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    for gradient in gradients:
        ours.grad, reference.grad = gradient.clone(), gradient.clone()
        fairseq_optimizer.step()
        torch_optimizer.step()
    assert torch.equal(ours.detach(), reference.detach())


def test_small_gradients_move_as_in_the_official_code_not_as_under_fairseq_cpu_adam():
    # A gradient of 1e-7: AdamW's first step is lr·g/(|g| + ε) = 0.91·lr; fairseq's CPU Adam adds ε
    # before the bias correction, an ε √(1/(1-β₂)) = 31.6× larger, and moves it 0.24·lr.
    gradient = torch.full((3,), 1e-7)
    assert first_step("adamw", gradient) == pytest.approx(torch.full((3,), -1e-3 / 1.1), rel=1e-5)
    old_adam = first_step("adam", gradient, use_old_adam=True, fp16_adam_stats=False, tpu=False)
    assert old_adam == pytest.approx(torch.full((3,), -1e-3 * 1e-7 / (1e-7 + 1e-8 / 0.001 ** 0.5)), rel=1e-4)


def test_weight_decay_defaults_to_the_official_zero():
    param = torch.nn.Parameter(torch.ones(2))
    cfg = OmegaConf.create({"_name": "adamw", "lr": [1e-3]})
    assert optim.build_optimizer(cfg, [param]).optimizer_config["weight_decay"] == 0.0


@pytest.mark.parametrize("text, betas", [("(0.9, 0.999)", (0.9, 0.999)), ("(0.9,0.98)", (0.9, 0.98)),
                                          ([0.8, 0.99], (0.8, 0.99))])
def test_betas_from_the_command_line(text, betas):
    assert _betas(text) == betas


@pytest.mark.parametrize("text", ["(0.9)", "0.9, x", "(0.9, 0.99, 0.999)"])
def test_bad_betas_are_refused(text):
    with pytest.raises(ValueError, match="--adam-betas must be two numbers"):
        _betas(text)
