"""``diffuseq_loss``: DiffuSeq's simplified variational bound (paper Eq. 2, as the official code
computes it) with importance-sampled timesteps.

Per sentence: loss = mse(x̂0, z0) + rounding NLL −log p(w | z0) (weight --rounding-loss-weight, 1 as
upstream) + tT term (+ optional anchor loss CE(lm_head(x̂0), w), which the official code logs but
does not add); the terms are computed by :meth:`DiffuSeqNetwork.training_terms`. Each sentence is
weighted by the importance weight of its step, and the importance sampler is updated with the total
per-sentence loss, all-reduced so every rank keeps the same history.

Positions (``--loss-positions``): ``target`` (default) averages over the target canvas, padding
included, since DiffuSeq learns length by generating padding; ``all`` also averages over the source
span like the official code, whose source predictions are a near-copy of the input and only dilute
the loss, more so the longer the source (DiffuSeq issue #26).

A sentence's loss does not depend on its batch (issue #31): each row sees exactly its own canvas
(the task's rule for its source, and at least its target), never the longer canvas of another row,
and validation draws t and every noise from a generator seeded by the sentence id, so that the
validation loss, by which fairseq picks checkpoint_best.pt, is a property of the model and the data
whatever --max-tokens or --batch-size. Training draws stay random.

A model with ``--length-predictor`` is trained on canvases of exactly its targets' lengths (no
padding to write), and its length term ``length_nll`` is added with ``--length-loss-weight``, outside
the importance weighting and the importance sampler's history: it does not depend on the step t.
"""
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import ChoiceEnum, FairseqDataclass

from ..network import LOSS_POSITIONS
from ..step_sampler import TIMESTEP_SAMPLERS, UniformSampler

TERMS = ("mse", "rounding_nll", "tT", "anchor_nll")
# fairseq's NAT models weigh their length loss by 0.1 (--length-loss-factor).
LENGTH_LOSS_WEIGHT = 0.1
VALIDATION_SEED = 20_231_031  # validation's draws for sentence i come from a generator seeded VALIDATION_SEED + i


@dataclass
class DiffuSeqLossConfig(FairseqDataclass):
    timestep_sampler: ChoiceEnum(TIMESTEP_SAMPLERS) = field(
        default="lossaware", metadata={"help": "lossaware: importance sampling (the paper's Eq. 9); uniform"}
    )
    uniform_prob: float = field(default=0.001, metadata={"help": "uniform mixture of the importance sampler"})
    timestep_sampler_bins: int = field(
        default=0, metadata={"help": "pool the importance sampler's losses over this many bins of neighbouring "
                             "steps, so it leaves its uniform warm-up in dozens of updates instead of the "
                             "hundreds a history per step needs; 0 = one bin per step (the paper)"}
    )
    loss_positions: ChoiceEnum(LOSS_POSITIONS) = field(
        default="target", metadata={"help": "positions the loss averages over: the target canvas, or all (also the "
                                    "source span, as the official code)"}
    )
    anchor_loss_weight: float = field(default=0.0, metadata={"help": "weight of CE(lm_head(x0_hat), w)"})
    label_smoothing: float = field(
        default=0.0, metadata={"help": "label smoothing of the anchor CE (as LevT's --label-smoothing); the logged "
                               "anchor_nll stays unsmoothed"}
    )
    rounding_loss_weight: float = field(
        default=1.0, metadata={"help": "weight of the rounding term -log p(w|z0); 0 skips computing it (logged "
                               "as 0), which saves a quarter of a small model's step where it is ~0 anyway "
                               "(--embed-norm without --noise-factor)"}
    )
    self_condition_prob: float = field(
        default=0.5, metadata={"help": "share of training steps fed a previous x0 estimate (with --self-condition)"}
    )
    length_loss_weight: float = field(
        default=LENGTH_LOSS_WEIGHT, metadata={"help": "weight of the length predictor's cross-entropy (logged as "
                                              "length_nll) for a model with --length-predictor"}
    )


@register_criterion("diffuseq_loss", dataclass=DiffuSeqLossConfig)
class DiffuSeqLoss(FairseqCriterion):
    def __init__(self, task, timestep_sampler, uniform_prob, timestep_sampler_bins, loss_positions, anchor_loss_weight,
                 label_smoothing, rounding_loss_weight, self_condition_prob, length_loss_weight=LENGTH_LOSS_WEIGHT):
        super().__init__(task)
        if not 0 <= label_smoothing < 1:
            raise ValueError(f"--label-smoothing must be in [0, 1), got {label_smoothing}")
        if length_loss_weight < 0:
            raise ValueError(f"--length-loss-weight must be at least 0, got {length_loss_weight}")
        self.timestep_sampler = timestep_sampler
        self.uniform_prob = uniform_prob
        self.timestep_sampler_bins = timestep_sampler_bins
        self.loss_positions = loss_positions
        self.anchor_loss_weight = anchor_loss_weight
        self.label_smoothing = label_smoothing
        self.rounding_loss_weight = rounding_loss_weight
        self.self_condition_prob = self_condition_prob
        self.length_loss_weight = length_loss_weight
        # Set by the task: False on fairseq's placeholder batches (ignore_grad), which must not
        # enter the importance sampler's history.
        self.count_in_sampler = True

    def _sampler(self, network, training: bool):
        # Validation draws t uniformly over the trained steps: the logged terms are then plain averages
        # over t, comparable from one validation to the next, instead of following the importance
        # sampler's drift.
        if self.timestep_sampler == "uniform" or not training:
            return UniformSampler(network.cfg.num_timesteps, network.first_train_step)
        return network.importance_sampler(self.uniform_prob, self.timestep_sampler_bins)

    def draws(self, model, sample, canvas, width):
        """(t, importance weights, the draws or None, the sampler). Training draws at random;
        validation draws t and every noise from a generator of the sentence's own seed."""
        sampler = self._sampler(model.network, model.training)
        if model.training:
            t, weights = sampler.sample(canvas.numel(), canvas.device)
            return t, weights, None, sampler
        seeds = (VALIDATION_SEED + sample["id"]).tolist()
        src_tokens, src_lengths = sample["net_input"]["src_tokens"], sample["net_input"]["src_lengths"]
        t, noise = model.network.seeded_draws(seeds, sampler, src_lengths, canvas, src_tokens.size(1), width)
        return t, torch.ones_like(t, dtype=torch.float), noise, sampler

    def canvas(self, model, sample):
        """(target padded to the widest canvas, each row's canvas length, [B, width] mask of each row's canvas)."""
        target = sample["target"]
        target_lengths = target.ne(self.padding_idx).sum(1)
        # A length predictor decides the length: its model is never asked to write padding.
        with_length = model.network.length_head is not None
        canvas = target_lengths if with_length else self.task.canvas_lengths(sample["net_input"]["src_lengths"],
                                                                             target_lengths)
        width = int(canvas.max())
        target = F.pad(target, (0, width - target.size(1)), value=self.padding_idx)
        target_mask = torch.arange(width, device=target.device) < canvas.to(target.device).unsqueeze(1)
        return target, canvas, target_mask

    def forward(self, model, sample, reduce=True):
        src_tokens = sample["net_input"]["src_tokens"]
        src_lengths = sample["net_input"]["src_lengths"]
        with_length = model.network.length_head is not None
        target, canvas, target_mask = self.canvas(model, sample)
        batch = target.size(0)
        t, weights, noise, sampler = self.draws(model, sample, canvas, target.size(1))
        terms = model(src_tokens, src_lengths, target, t, loss_positions=self.loss_positions,
                      self_condition_prob=self.self_condition_prob, rounding_term=self.rounding_loss_weight != 0,
                      label_smoothing=self.label_smoothing, noise=noise, target_mask=target_mask,
                      anchor_trained=self.anchor_loss_weight != 0)
        per_sentence = (terms["mse"] + self.rounding_loss_weight * terms["rounding_nll"] + terms["tT"]
                        + self.anchor_loss_weight * terms["anchor_loss"])
        if model.training and self.timestep_sampler == "lossaware":
            stats = sampler.step_statistics(t, per_sentence)
            if not self.count_in_sampler:
                stats.zero_()  # a placeholder batch still joins the all-reduce, with nothing in it
            if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
                dist.all_reduce(stats)  # same fixed-size sums on every rank → identical histories
            sampler.update(stats)
        loss = (per_sentence * weights).sum()
        logging_output = {key: terms[key].sum().data for key in TERMS}
        if with_length:
            loss = loss + self.length_loss_weight * terms["length_nll"].sum()
            logging_output["length_nll"] = terms["length_nll"].sum().data
        logging_output.update(loss=loss.data, ntokens=sample["ntokens"], nsentences=batch, sample_size=batch)
        return loss, batch, logging_output

    @classmethod
    def reduce_metrics(cls, logging_outputs) -> None:
        sample_size = sum(log.get("sample_size", 0) for log in logging_outputs)
        if sample_size == 0:
            return
        for key in ("loss",) + TERMS:
            value = sum(log.get(key, 0) for log in logging_outputs)
            metrics.log_scalar(key, value / sample_size, sample_size, round=4)
        if any("length_nll" in log for log in logging_outputs):  # only a model with a length predictor has it
            value = sum(log.get("length_nll", 0) for log in logging_outputs)
            metrics.log_scalar("length_nll", value / sample_size, sample_size, round=4)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
