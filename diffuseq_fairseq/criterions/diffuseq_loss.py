"""``diffuseq_loss``: DiffuSeq's simplified variational bound (paper Eq. 2, as the official code
computes it) with importance-sampled timesteps.

Per sentence: loss = mse(x̂0, z0) + rounding NLL −log p(w | z0) + tT term (+ optional anchor loss
CE(lm_head(x̂0), w), which the official code logs but does not add). The mse target is the clean
embedding for samples drawn at t = 0, as upstream.

Positions (``--loss-positions``): ``target`` (default) averages over the target canvas, padding
included, since DiffuSeq learns length by generating padding; ``all`` also averages over the source
span like the official code, whose source predictions are a near-copy of the input and only dilute
the loss, more so the longer the source (DiffuSeq issue #26).
"""
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from ..diffusion import discrete_absorb
from ..step_sampler import LossSecondMomentSampler, UniformSampler


@dataclass
class DiffuSeqLossConfig(FairseqDataclass):
    timestep_sampler: str = field(default="lossaware", metadata={"help": "lossaware (importance sampling) | uniform"})
    uniform_prob: float = field(default=0.001, metadata={"help": "uniform mixture of the importance sampler"})
    loss_positions: str = field(default="target", metadata={"help": "target | all (official code)"})
    anchor_loss_weight: float = field(default=0.0, metadata={"help": "weight of CE(lm_head(x0_hat), w)"})
    self_condition_prob: float = field(
        default=0.5, metadata={"help": "share of training steps fed a previous x0 estimate (with --self-condition)"}
    )


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sentence mean of [B, L] values over positions where mask is True."""
    return (values * mask).sum(1) / mask.sum(1).clamp(min=1)


@register_criterion("diffuseq_loss", dataclass=DiffuSeqLossConfig)
class DiffuSeqLoss(FairseqCriterion):
    def __init__(self, task, timestep_sampler, uniform_prob, loss_positions, anchor_loss_weight, self_condition_prob):
        super().__init__(task)
        if timestep_sampler not in ("lossaware", "uniform"):
            raise ValueError(f"unknown --timestep-sampler {timestep_sampler!r}")
        if loss_positions not in ("target", "all"):
            raise ValueError(f"unknown --loss-positions {loss_positions!r}")
        self.timestep_sampler = timestep_sampler
        self.uniform_prob = uniform_prob
        self.loss_positions = loss_positions
        self.anchor_loss_weight = anchor_loss_weight
        self.self_condition_prob = self_condition_prob

    def _sampler(self, model):
        if self.timestep_sampler == "uniform":
            return UniformSampler(model.cfg.num_timesteps)
        return model.importance_sampler(self.uniform_prob)

    def _update_sampler(self, sampler, t, losses):
        """Push this batch's losses into the sampler, identically on every rank."""
        stats = LossSecondMomentSampler.step_statistics(t, losses, sampler.num_steps)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(stats)
        sampler.update(stats)

    def forward(self, model, sample, reduce=True):
        src_tokens = sample["net_input"]["src_tokens"]
        src_lengths = sample["net_input"]["src_lengths"]
        target = sample["target"]
        pad = self.padding_idx
        canvas = self.task.canvas_length(src_lengths, target.ne(pad).sum(1))
        target = F.pad(target, (0, canvas - target.size(1)), value=pad)
        batch, device = target.size(0), target.device
        diffusion = model.diffusion

        sampler = self._sampler(model)
        t, weights = sampler.sample(batch, device)
        noise_std = diffusion.z0_noise_std
        clean = model.embed_tokens(target)
        z0 = clean + noise_std * torch.randn_like(clean)
        source = model.encode_source(src_tokens, src_lengths, noise_std=noise_std)
        x_t = diffusion.q_sample(z0, t, torch.randn_like(z0), mean=model.mean_embed)
        if model.cfg.absorb_rate > 0:
            rate = (1 - diffusion.alphas_cumprod.to(device)[t]).sqrt().float() * model.cfg.absorb_rate
            x_t = discrete_absorb(x_t, rate, torch.ones_like(target, dtype=torch.bool), model.mean_embed)

        self_cond = None
        if model.cfg.self_condition and torch.rand(()) < self.self_condition_prob:
            with torch.no_grad():
                self_cond = model.denoise(x_t, t, source).detach()
        src_pred, tgt_pred = model.denoise(x_t, t, source, self_cond=self_cond, with_source=True)

        at_zero = (t == 0).view(-1, 1, 1)
        mse_tgt = (tgt_pred.float() - torch.where(at_zero, clean, z0).float()).pow(2).mean(-1)
        rounding_tgt = F.cross_entropy(model.logits(z0).float().transpose(1, 2), target, reduction="none")
        prior_tgt = diffusion.prior_loss(z0).mean(-1)
        anchor_tgt = F.cross_entropy(model.logits(tgt_pred).float().transpose(1, 2), target, reduction="none")
        tgt_mask = torch.ones_like(target, dtype=torch.float)
        if self.loss_positions == "all":
            src_mask = src_tokens.ne(pad).float()
            src_z0 = source.embeddings
            src_clean = model.embed_tokens(src_tokens)
            mse_src = (src_pred.float() - torch.where(at_zero, src_clean, src_z0).float()).pow(2).mean(-1)
            rounding_src = F.cross_entropy(model.logits(src_z0).float().transpose(1, 2), src_tokens, reduction="none")
            cat = lambda a, b: torch.cat([a, b], dim=1)  # noqa: E731
            mse_all, rounding_all = cat(mse_src, mse_tgt), cat(rounding_src, rounding_tgt)
            prior_all = cat(diffusion.prior_loss(src_z0).mean(-1), prior_tgt)
            mask = cat(src_mask, tgt_mask)
        else:
            mse_all, rounding_all, prior_all, mask = mse_tgt, rounding_tgt, prior_tgt, tgt_mask
        mse = _masked_mean(mse_all, mask)
        rounding = _masked_mean(rounding_all, mask)
        prior = _masked_mean(prior_all, mask)
        anchor = _masked_mean(anchor_tgt, tgt_mask)
        per_sentence = mse + rounding + prior + self.anchor_loss_weight * anchor

        if model.training and self.timestep_sampler == "lossaware":
            self._update_sampler(sampler, t, per_sentence)
        loss = (per_sentence * weights).sum()
        logging_output = {
            "loss": loss.data,
            "mse": mse.sum().data,
            "rounding_nll": rounding.sum().data,
            "tT": prior.sum().data,
            "anchor_nll": anchor.sum().data,
            "ntokens": sample["ntokens"],
            "nsentences": batch,
            "sample_size": batch,
        }
        return loss, batch, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        if sample_size == 0:
            return
        for key in ("loss", "mse", "rounding_nll", "tT", "anchor_nll"):
            value = sum(log.get(key, 0) for log in logging_outputs)
            metrics.log_scalar(key, value / sample_size, sample_size, round=4)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
