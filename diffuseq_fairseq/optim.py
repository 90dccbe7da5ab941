"""``--optimizer adamw``: torch's AdamW, the optimizer of the official DiffuSeq code.

fairseq's ``--optimizer adam`` is not the same update off the GPU. On a CPU (and under
``--use-old-adam``) it runs fairseq's own Adam, which adds ε to √v before the bias correction:
its step is lr·m̂ / (√v̂ + ε/√(1−β₂ᵗ)), an ε 31.6× larger at the first update and still 4× at the
60th with β₂ = 0.999. Parameters whose gradients are small at the start (the embeddings of words
absent from a batch, attention's queries and keys) then move more slowly than under torch's AdamW
(ε added after the correction), which the official code uses; the CUDA fused Adam adds it after too.
This optimizer is torch.optim.AdamW itself, with the official defaults (weight decay 0).
"""
from dataclasses import dataclass, field
from typing import Any, List

import torch
from fairseq.dataclass import FairseqDataclass
from fairseq.optim import FairseqOptimizer, register_optimizer
from omegaconf import II


@dataclass
class AdamWConfig(FairseqDataclass):
    adam_betas: Any = field(default=(0.9, 0.999), metadata={"help": "betas for AdamW"})
    adam_eps: float = field(default=1e-8, metadata={"help": "epsilon for AdamW (added after the bias correction)"})
    weight_decay: float = field(default=0.0, metadata={"help": "decoupled weight decay (the official default, 0)"})
    lr: List[float] = II("optimization.lr")


def _betas(value) -> tuple:
    """fairseq passes --adam-betas as the string '(0.9, 0.999)' from the command line."""
    if isinstance(value, str):
        parts = value.strip("()[] ").split(",")
        try:
            betas = tuple(float(part) for part in parts if part.strip())
        except ValueError:
            betas = ()
        if len(betas) != 2:
            raise ValueError(f"--adam-betas must be two numbers such as '(0.9, 0.999)', got {value!r}")
        return betas
    return tuple(float(beta) for beta in value)


@register_optimizer("adamw", dataclass=AdamWConfig)
class FairseqAdamW(FairseqOptimizer):
    def __init__(self, cfg: AdamWConfig, params):
        super().__init__(cfg)
        self._optimizer = torch.optim.AdamW(params, **self.optimizer_config)

    @property
    def optimizer_config(self) -> dict:
        lr = self.cfg.lr if isinstance(self.cfg.lr, (int, float)) else self.cfg.lr[0]  # --lr is a list in fairseq
        return {"lr": float(lr), "betas": _betas(self.cfg.adam_betas), "eps": self.cfg.adam_eps,
                "weight_decay": self.cfg.weight_decay}
