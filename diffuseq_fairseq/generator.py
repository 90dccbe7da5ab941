"""Reverse diffusion for fairseq-generate / fairseq-interactive / --eval-bleu.

All S MBR candidates of a batch run as one [B·S] batch through each model call. Per step: predict
x̂0 (the source is anchored: it is an input block the process never touches), optionally round
it to the nearest word embedding, and move x_t to the next level with the chosen sampler. The
last step jumps to the clean level, so the output is argmax lm_head(x̂0). Candidates are ranked
by MBR inside ``generate()`` and all are returned best first (``--nbest K`` prints K of them).
"""
import math
from typing import Callable, List, Tuple

import torch

from .diffusion import DPMSolverPP, ddim_step, ddpm_step, discrete_absorb, nearest_embedding_ids, sampling_steps, step_pairs
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
        mbr_shared_fraction: float = 0.0,
    ):
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown --sampler {sampler!r}; choose one of {SAMPLERS}")
        if rounding not in ROUNDINGS:
            raise ValueError(f"unknown rounding {rounding!r}; choose one of {ROUNDINGS}")
        if num_candidates < 1:
            raise ValueError("--mbr-candidates must be at least 1")
        if stop_when_stable < 0:
            raise ValueError("--stop-when-stable must be 0 (off) or a number of steps")
        if not 0 <= mbr_shared_fraction < 1:
            raise ValueError("--mbr-shared-fraction must be in [0, 1)")
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
        self.mbr_shared_fraction = mbr_shared_fraction

    def _noise(self, sample_ids, sentence, candidate, canvas: int, latent: int, device, dtype, fork: bool):
        """One draw per (sentence id, candidate): the same --seed gives the same candidates, whatever
        the batch. ``fork`` draws the independent noise that re-noises a forked candidate."""
        ids = sample_ids.tolist()
        draws = [
            _seeded_normal((canvas, latent), hash((self.base_seed, ids[s], c) + ((1,) if fork else ())) & 0x7FFFFFFF)
            for s, c in zip(sentence.tolist(), candidate.tolist())
        ]
        return torch.stack(draws).to(device=device, dtype=dtype)  # drawn on the CPU, one copy

    def _fork(self, x, x0_hat, abar: float, source, sentence, sample_ids, mean, solver):
        """Split each shared trajectory into the MBR candidates at level ᾱ: candidate 0 goes on
        from x (so it is the |S|=1 output), the others restart from q(x_ᾱ | x̂0) with their own noise."""
        cands = self.num_candidates
        index = torch.arange(x.size(0), device=x.device).repeat_interleave(cands)
        candidate = torch.arange(cands).repeat(x.size(0))
        centre = 0 if mean is None else mean
        fresh = self._noise(sample_ids, sentence.repeat_interleave(cands), candidate, x.size(1), x.size(2),
                            x.device, x.dtype, fork=True)
        restarted = math.sqrt(abar) * (x0_hat[index] - centre) + math.sqrt(1 - abar) * fresh + centre
        keep_going = candidate.eq(0).to(x.device).view(-1, 1, 1)
        if solver is not None:
            solver.select_rows(index)
        return torch.where(keep_going, x[index], restarted), x0_hat[index], source.select(index)

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

    @staticmethod
    def _argmax(model, x: torch.Tensor):
        """Tokens of lm_head(x) and their log-probs."""
        scores, tokens = torch.log_softmax(model.logits(x).float(), dim=-1).max(-1)
        return tokens, scores

    def _shared_steps(self, total: int) -> int:
        """Steps run once per source before the MBR candidates fork (0: independent candidates)."""
        if self.num_candidates == 1 or self.mbr_shared_fraction <= 0:
            return 0
        return min(round(self.mbr_shared_fraction * total), total - 1)

    def _word_ids(self, model, x0_hat: torch.Tensor, embeddings: torch.Tensor):
        """Round x̂0 as --rounding says; return (x̂0 to step with, the words it stands for)."""
        if self.rounding == "l2":
            ids = nearest_embedding_ids(x0_hat, embeddings)
        elif self.rounding == "logits" or self.stop_when_stable:
            ids = model.logits(x0_hat).argmax(-1)
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
        steps = sampling_steps(self.num_steps, self.total_steps, self.step_spacing, diffusion.alphas_cumprod)
        pairs = step_pairs(steps, diffusion.alphas_cumprod)
        shared = self._shared_steps(len(pairs))

        # Active rows are (sentence, candidate) pairs; candidate -1 is a trajectory shared by all
        # candidates of its sentence (before the fork of --mbr-shared-fraction).
        if shared:
            sentence, candidate = torch.arange(batch), torch.full((batch,), -1)
        else:
            sentence, candidate = torch.arange(batch).repeat_interleave(cands), torch.arange(cands).repeat(batch)
        context = model.encode_source(src_tokens, src_lengths)
        source = context.select(sentence.to(device))
        x = self._noise(sample_ids, sentence, candidate.clamp(min=0), canvas, latent, device, dtype, fork=False)
        step_noise = torch.Generator(device=device).manual_seed(hash((self.base_seed, int(sample_ids[0]))) & 0x7FFFFFFF)
        if mean is not None:
            x = x + mean
            if model.cfg.absorb_rate > 0:
                rate = math.sqrt(1 - float(diffusion.alphas_cumprod[-1])) * model.cfg.absorb_rate
                everywhere = torch.ones(x.shape[:2], dtype=torch.bool, device=device)
                x = discrete_absorb(x, torch.full((x.size(0),), rate, device=device), everywhere, mean, step_noise)

        # Final x (the output's embedding space) per (sentence, candidate); rows that stop early
        # are written when they stop, the rest after the last step.
        final = torch.zeros(batch, cands, canvas, latent, device=device, dtype=dtype)
        latest = final.clone() if self.retain_history else None
        steps_taken = torch.full((batch, cands), len(pairs))

        def write(table, values, rows=None):
            """table[sentence, candidate] = values for the active rows (all of them, or the mask rows)."""
            s, c = (sentence, candidate) if rows is None else (sentence[rows], candidate[rows])
            values = values if rows is None else values[rows.to(values.device)]
            whole = c.lt(0)
            table[s[whole]] = values[whole.to(values.device)].unsqueeze(1)
            table[s[~whole], c[~whole]] = values[(~whole).to(values.device)]

        solver = DPMSolverPP() if self.sampler == "dpm-solver++" else None
        embeddings = model.word_embeddings()
        history, x0_hat, words, unchanged = [], None, None, torch.zeros(x.size(0), dtype=torch.long, device=device)
        for index, (t, abar_t, abar_s) in enumerate(pairs):
            if shared and index == shared:
                x, x0_hat, source = self._fork(x, x0_hat, abar_t, source, sentence, sample_ids, mean, solver)
                words = None if words is None else words.repeat_interleave(cands, dim=0)
                unchanged = torch.zeros(x.size(0), dtype=torch.long, device=device)
                sentence, candidate = sentence.repeat_interleave(cands), torch.arange(cands).repeat(sentence.numel())
            t_batch = torch.full((x.size(0),), t, dtype=torch.long, device=device)
            self_cond = x0_hat if model.cfg.self_condition else None
            x0_hat, new_words = self._word_ids(model, model.denoise(x, t_batch, source, self_cond=self_cond), embeddings)
            if self.retain_history:
                write(latest, x0_hat)
                history.append(latest.flatten(0, 1).clone())
            if solver is not None:
                x = solver.step(x0_hat, x, abar_t, abar_s, is_last=index == len(pairs) - 1, mean=mean)
            else:
                stochastic = self.sampler == "ddpm" or self.eta > 0
                noise = torch.randn(x.shape, generator=step_noise, device=device, dtype=x.dtype) if stochastic else None
                if self.sampler == "ddpm":
                    x = ddpm_step(x0_hat, x, abar_t, abar_s, noise, mean)
                else:
                    x = ddim_step(x0_hat, x, abar_t, abar_s, self.eta, noise, mean)
            if self.stop_when_stable and index < len(pairs) - 1:
                if words is not None:
                    unchanged = torch.where(new_words.eq(words).all(1), unchanged + 1, 0)
                words = new_words
                # A shared trajectory always reaches the fork, or its candidates would all be one.
                done = unchanged.ge(self.stop_when_stable) & candidate.ge(0).to(device)
                if done.any():  # these rows' words settled: x̂0 is their output, as after a last step
                    write(final, x0_hat, done.cpu())
                    write(steps_taken, torch.full((done.numel(),), index + 1), done.cpu())
                    keep = (~done).nonzero().squeeze(1)
                    x, x0_hat, words, unchanged = x[keep], x0_hat[keep], words[keep], unchanged[keep]
                    source = source.select(keep)
                    if solver is not None:
                        solver.select_rows(keep)
                    sentence, candidate = sentence[keep.cpu()], candidate[keep.cpu()]
                    if x.size(0) == 0:
                        break
        if x.size(0):
            write(final, x)
        x = final.flatten(0, 1)

        compact, valid, scores, end_scores = self._compact(*self._argmax(model, x))
        ranking, _ = mbr_order(compact.view(batch, cands, -1), valid.view(batch, cands, -1))
        compact_history = [self._compact(*self._argmax(model, h)) for h in history]

        finalized = []
        for b in range(batch):
            hypos = []
            for c in ranking[b].tolist():
                row = b * cands + c
                taken = int(steps_taken[b, c])
                hypo = self._hypothesis(compact[row], valid[row], scores[row], end_scores[row], taken)
                if self.retain_history:  # one entry per step this candidate ran
                    hypo["history"] = [
                        self._hypothesis(h[0][row], h[1][row], h[2][row], h[3][row], taken)
                        for h in compact_history[:taken]
                    ]
                hypos.append(hypo)
            finalized.append(hypos)
        return finalized
