"""Reverse diffusion for fairseq-generate / fairseq-interactive / --eval-bleu.

All S MBR candidates of a batch run as one [B·S] batch through each model call. Per step: predict
x̂0 (the source is anchored: it is an input block the process never touches), optionally round
it to the nearest word embedding, and move x_t to the next level with the chosen sampler. The
last step jumps to the clean level, so the output is argmax lm_head(x̂0). Candidates are ranked
by MBR inside ``generate()`` and all are returned best first (``--nbest K`` prints K of them).

A batch is decoded in groups of similar canvas length. With ``--stop-when-stable K`` a candidate
whose x̂0 words have not changed for K steps leaves the batch with x̂0 as its output, the rule
fairseq's iterative refinement applies to LevT.

``output_ids`` (``--output-vocab``) limits rounding and output to a subset of the dictionary: with a
joined dictionary, the words of the training targets, so that no source-language word is output.
"""
import math
from typing import Callable, List, Optional, Tuple

import torch

from .diffusion import (
    DPMSolverPP,
    ddim_step,
    ddpm_step,
    discrete_absorb,
    most_likely_words,
    nearest_embedding_ids,
    sampling_steps,
    step_pairs,
)
from .mbr import mbr_order

SAMPLERS = ("ddpm", "ddim", "dpm-solver++")
# How x̂0 is clamped to a word at every step: the nearest embedding in L2 (official DiffuSeq),
# the embedding of argmax lm_head(x̂0) (Difformer's clamping: uses the trained output bias), or none.
ROUNDINGS = ("l2", "logits", "none")
# Length groups within a batch: a new group starts below this share of the group's longest canvas.
GROUP_SHRINK = 0.8
GROUP_MIN_ROWS = 16


def _seeded_normal(shape, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


class DiffuSeqGenerator:
    """``special_ids`` = (pad, bos, eos) of the target dictionary."""

    def __init__(
        self,
        special_ids: Tuple[int, int, int],
        sampler: str,
        num_steps: int,
        total_steps: int,
        step_spacing: str,
        eta: float,
        rounding: str,
        num_candidates: int,
        canvas_length: Callable[[torch.Tensor], int],
        retain_history: bool,
        base_seed: int,
        stop_when_stable: int = 0,
        lowest_step: int = 0,
        shown_step_floor: int = 0,
        output_ids: Optional[torch.Tensor] = None,
    ):
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown --sampler {sampler!r}; choose one of {SAMPLERS}")
        if rounding not in ROUNDINGS:
            raise ValueError(f"unknown rounding {rounding!r}; choose one of {ROUNDINGS}")
        if num_candidates < 1:
            raise ValueError("--mbr-candidates must be at least 1")
        if stop_when_stable < 0:
            raise ValueError("--stop-when-stable must be 0 (off) or a number of steps")
        self.pad, self.bos, self.eos = special_ids
        self.sampler = sampler
        self.num_steps = num_steps
        self.total_steps = total_steps
        self.step_spacing = step_spacing
        self.eta = eta
        self.rounding = rounding
        self.num_candidates = num_candidates
        self.canvas_length = canvas_length
        self.retain_history = retain_history
        self.base_seed = base_seed
        self.stop_when_stable = stop_when_stable
        self.lowest_step = lowest_step
        self.shown_step_floor = shown_step_floor
        # The words the process may round to and output (sorted ids); None: the whole dictionary.
        self.output_ids = output_ids

    def _initial_noise(self, sample_ids: torch.Tensor, canvas: int, latent: int, device, dtype) -> torch.Tensor:
        """One noise draw per (sentence id, candidate): the same --seed gives the same candidates."""
        draws = [
            _seeded_normal((canvas, latent), hash((self.base_seed, int(i), j)) & 0x7FFFFFFF)
            for i in sample_ids.tolist()
            for j in range(self.num_candidates)
        ]
        return torch.stack(draws).to(device=device, dtype=dtype)  # drawn on the CPU, one copy

    def _compact(self, tokens: torch.Tensor, scores: torch.Tensor):
        """Output tokens up to the first </s>, without padding/bos, moved to the front of each row,
        with their log-probs; the end-of-output score is that of the first </s> (or of the last
        canvas position when the model wrote none)."""
        eos_seen = tokens.eq(self.eos).long().cumsum(1)
        keep = eos_seen.eq(0) & tokens.ne(self.pad) & tokens.ne(self.bos)
        order = torch.sort((~keep).long(), dim=1, stable=True).indices
        end = torch.where(eos_seen[:, -1] > 0, eos_seen.eq(0).sum(1), torch.full_like(eos_seen[:, -1], tokens.size(1) - 1))
        end_scores = scores.gather(1, end.unsqueeze(1))
        return tokens.gather(1, order), keep.gather(1, order), scores.gather(1, order), end_scores

    def _hypothesis(self, tokens, valid, scores, end_score, steps: int):
        n = int(valid.sum())
        eos = tokens.new_tensor([self.eos])
        positional = torch.cat([scores[:n], end_score])
        return {
            "tokens": torch.cat([tokens[:n], eos]),
            "score": positional.mean(),
            "positional_scores": positional,
            "alignment": None,
            "steps": steps,
        }

    def _word_ids(self, x0_hat: torch.Tensor, embeddings: torch.Tensor, output_bias: torch.Tensor):
        """Round x̂0 as --rounding says; return (x̂0 to step with, the rows of ``embeddings`` it stands for)."""
        if self.rounding == "l2":
            ids = nearest_embedding_ids(x0_hat, embeddings)
        elif self.rounding == "logits" or self.stop_when_stable:
            ids, _ = most_likely_words(x0_hat, embeddings, output_bias, with_log_probs=False)
        else:
            return x0_hat, None
        if self.rounding == "none":
            return x0_hat, ids
        return embeddings[ids].to(x0_hat.dtype), ids

    def _length_groups(self, src_lengths: torch.Tensor) -> List[torch.Tensor]:
        """Rows of a batch grouped by canvas length, longest first: a group closes once the next
        row's canvas is under GROUP_SHRINK of the group's (and the group has GROUP_MIN_ROWS rows),
        so short sentences do not pay for the longest canvas of the batch."""
        canvases = torch.tensor([self.canvas_length(n.view(1)) for n in src_lengths.cpu()])
        order = torch.sort(canvases, descending=True, stable=True).indices.tolist()
        groups, current = [], []
        for row in order:
            if len(current) >= GROUP_MIN_ROWS and canvases[row] < GROUP_SHRINK * canvases[current[0]]:
                groups.append(torch.tensor(current))
                current = []
            current.append(row)
        groups.append(torch.tensor(current))
        return groups

    @torch.no_grad()
    def generate(self, models, sample, prefix_tokens=None, constraints=None, **unused) -> List[List[dict]]:
        """Hypotheses of every sentence, best first; each length group is decoded as its own batch."""
        src_tokens, src_lengths = sample["net_input"]["src_tokens"], sample["net_input"]["src_lengths"]
        sample_ids = sample.get("id", torch.arange(src_tokens.size(0)))
        groups = self._length_groups(src_lengths)
        if len(groups) == 1:
            return self._generate_batch(models, src_tokens, src_lengths, sample_ids)
        finalized: List[List[dict]] = [[] for _ in range(src_tokens.size(0))]
        for rows in groups:
            lengths = src_lengths[rows.to(src_lengths.device)]
            tokens = src_tokens[rows.to(src_tokens.device), : int(lengths.max())]
            for row, hypos in zip(rows.tolist(), self._generate_batch(models, tokens, lengths, sample_ids[rows])):
                finalized[row] = hypos
        return finalized

    def _generate_batch(self, models, src_tokens, src_lengths, sample_ids) -> List[List[dict]]:
        models[0].eval()
        model = getattr(models[0], "network", models[0])  # the fairseq model, or a bare DiffuSeqNetwork
        batch, cands = src_tokens.size(0), self.num_candidates
        device, dtype = src_tokens.device, model.embed_tokens.weight.dtype
        canvas = self.canvas_length(src_lengths)
        latent = model.cfg.latent_dim
        diffusion, mean = model.diffusion, model.mean_embed
        steps = sampling_steps(self.num_steps, self.total_steps, self.step_spacing, diffusion.alphas_cumprod,
                               self.lowest_step)
        pairs = step_pairs(steps, diffusion.alphas_cumprod)

        context = model.encode_source(src_tokens, src_lengths)
        source = context.select(torch.arange(batch, device=device).repeat_interleave(cands))
        x = self._initial_noise(sample_ids, canvas, latent, device, dtype)
        step_noise = torch.Generator(device=device).manual_seed(hash((self.base_seed, int(sample_ids[0]))) & 0x7FFFFFFF)
        if mean is not None:
            x = x + mean
            if model.cfg.absorb_rate > 0:
                rate = math.sqrt(1 - float(diffusion.alphas_cumprod[-1])) * model.cfg.absorb_rate
                everywhere = torch.ones(x.shape[:2], dtype=torch.bool, device=device)
                x = discrete_absorb(x, torch.full((x.size(0),), rate, device=device), everywhere, mean, step_noise)

        # ``active`` maps the rows still being denoised to their (sentence·S + candidate) row of
        # ``final``; rows that stop early are written there when they stop, the rest at the end.
        active = torch.arange(batch * cands, device=device)
        final = torch.zeros_like(x)
        latest = final.clone() if self.retain_history else None
        steps_taken = torch.full((batch * cands,), len(pairs))
        solver = DPMSolverPP() if self.sampler == "dpm-solver++" else None
        embeddings, output_bias = model.word_embeddings(), model.output_bias
        output_ids = None if self.output_ids is None else self.output_ids.to(device)
        if output_ids is not None:  # ids below index this subset; output_ids maps them back
            embeddings, output_bias = embeddings[output_ids], output_bias[output_ids]
        history, x0_hat, words, unchanged = [], None, None, torch.zeros(x.size(0), dtype=torch.long, device=device)
        for index, (t, abar_t, abar_s) in enumerate(pairs):
            # The model may be shown a noisier step than x holds (DINOISER's condition-enhanced
            # inference): believing its input nearly pure noise, it leans on the source.
            t_batch = torch.full((x.size(0),), max(t, self.shown_step_floor), dtype=torch.long, device=device)
            self_cond = x0_hat if model.cfg.self_condition else None
            predicted = model.denoise(x, t_batch, source, self_cond=self_cond)
            if self.retain_history:
                latest[active] = predicted
                history.append(latest.clone())
            if index == len(pairs) - 1:
                break  # the output is lm_head(predicted): rounding it and stepping to x_0 would go unused
            x0_hat, new_words = self._word_ids(predicted, embeddings, output_bias)
            if solver is not None:
                x = solver.step(x0_hat, x, abar_t, abar_s, is_last=False, mean=mean)
            else:
                stochastic = self.sampler == "ddpm" or self.eta > 0
                noise = torch.randn(x.shape, generator=step_noise, device=device, dtype=x.dtype) if stochastic else None
                if self.sampler == "ddpm":
                    x = ddpm_step(x0_hat, x, abar_t, abar_s, noise, mean)
                else:
                    x = ddim_step(x0_hat, x, abar_t, abar_s, self.eta, noise, mean)
            if self.stop_when_stable:
                if words is not None:
                    unchanged = torch.where(new_words.eq(words).all(1), unchanged + 1, 0)
                words = new_words
                done = unchanged.ge(self.stop_when_stable)
                if done.any():  # these rows' words settled: x̂0 is their output, as after a last step
                    final[active[done]] = predicted[done]
                    steps_taken[active[done].cpu()] = index + 1
                    keep = (~done).nonzero().squeeze(1)
                    x, x0_hat, predicted = x[keep], x0_hat[keep], predicted[keep]
                    words, unchanged, active = words[keep], unchanged[keep], active[keep]
                    source = source.select(keep)
                    if solver is not None:
                        solver.select_rows(keep)
                    if x.size(0) == 0:
                        break
        # The output is lm_head of the last prediction x̂0, not of its rounding (which the last step
        # returns): the words are the ones the anchor CE trains, and their log-probs are the model's
        # confidence. Scored on a rounded x̂0, an exact word embedding, every log-prob was ≈ 0.
        final[active] = predicted
        x = final

        def output_words(states):
            ids, log_probs = most_likely_words(states, embeddings, output_bias)
            return self._compact(ids if output_ids is None else output_ids[ids], log_probs)

        compact, valid, scores, end_scores = output_words(x)
        ranking, _ = mbr_order(compact.view(batch, cands, -1), valid.view(batch, cands, -1))
        compact_history = [output_words(h) for h in history]

        finalized = []
        for b in range(batch):
            hypos = []
            for c in ranking[b].tolist():
                row = b * cands + c
                taken = int(steps_taken[row])
                hypo = self._hypothesis(compact[row], valid[row], scores[row], end_scores[row], taken)
                if self.retain_history:  # one entry per step this candidate ran
                    hypo["history"] = [
                        self._hypothesis(h[0][row], h[1][row], h[2][row], h[3][row], taken)
                        for h in compact_history[:taken]
                    ]
                hypos.append(hypo)
            finalized.append(hypos)
        return finalized
