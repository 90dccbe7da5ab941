"""Reverse diffusion for fairseq-generate / fairseq-interactive / --eval-bleu.

All S MBR candidates of a batch run as one [B·S] batch through each model call. Per step: predict
x̂0 (the source is anchored: it is an input block the process never touches), optionally round
it to a word embedding (``--rounding``), and move x_t to the next level with the chosen sampler
(:mod:`diffuseq_fairseq.samplers`). The last step jumps to the clean level, so the output is
argmax lm_head(x̂0). Candidates are ranked by MBR inside ``generate()`` and all are returned best
first (``--nbest K`` prints K of them).

A batch is decoded in groups of similar canvas length. With ``--stop-when-stable K`` a candidate
whose x̂0 words have not changed for K steps leaves the batch with x̂0 as its output, the rule
fairseq's iterative refinement applies to LevT.

``output_ids`` (``--output-vocab``) limits rounding and output to a subset of the dictionary: with a
joined dictionary, the words of the training targets, so that no source-language word is output.

With a length predictor (``--length-beam L``) each sentence gets L predicted lengths and S noise draws
per length, all L·S candidates in the same model calls: each on a canvas of exactly its length, whose
last position is its </s> (the model was trained on such canvases, with no padding to write).
Candidates are ranked by MBR or (``--rank-candidates score``) by the model's own score.
"""
import math
from dataclasses import dataclass
from typing import Callable, List, NamedTuple, Optional, Tuple

import torch

from .diffusion import ROUNDINGS, discrete_absorb, likeliest_word_ids, most_likely_words, nearest_embedding_ids
from .length import likeliest_lengths
from .mbr import mbr_order, pairwise_bleu
from .samplers import Sampler, make_sampler, sampling_steps, step_pairs

# Length groups within a batch: a new group starts below this share of the group's longest canvas.
GROUP_SHRINK = 0.8
GROUP_MIN_ROWS = 16
# How the candidates of a source are ranked (--rank-candidates): by MBR, or by their own score (the
# words' mean log-probability, plus the length's log-probability under a length predictor).
RANKINGS = ("mbr", "score")


@dataclass(frozen=True)
class DecodingOptions:
    """What a decode does, built once by the task's ``build_generator`` from the command line."""

    special_ids: Tuple[int, int, int]  # (pad, bos, eos) of the target dictionary
    num_steps: int  # model calls
    total_steps: int  # T of the training chain
    canvas_length: Callable[[torch.Tensor], torch.Tensor]  # target canvas of each source length
    sampler: str = "ddpm"  # a name of samplers.SAMPLERS
    step_spacing: str = "uniform"  # a name of samplers.STEP_SPACINGS
    eta: float = 0.0  # DDIM's η
    rounding: str = "l2"  # a name of diffusion.ROUNDINGS
    num_candidates: int = 1
    retain_history: bool = False
    base_seed: int = 0  # with the sentence id, seeds each candidate's noise
    stop_when_stable: int = 0
    lowest_step: int = 0
    shown_step_floor: int = 0
    output_ids: Optional[torch.Tensor] = None  # sorted ids the process may output; None: all
    round_output: bool = False  # output lm_head of the rounded last x̂0, as the official sampler does
    length_beam: int = 0  # predicted lengths per source (0: no length predictor, the canvas rule's canvas)
    total_length_limit: int = 0  # --max-total-len: a predicted length is at most this less the source's
    ranking: str = "mbr"  # a name of RANKINGS
    collapse_repeats: bool = False  # output a token repeated in a row once
    end_penalty: float = 0.0  # subtracted from the </s> and padding logits when the output words are read

    def __post_init__(self):
        if not 1 <= self.num_steps <= self.total_steps - self.lowest_step:
            raise ValueError(f"--diffusion-steps must be in [1, {self.total_steps - self.lowest_step}], "
                             f"got {self.num_steps}")
        if not 0 <= self.eta <= 1:
            raise ValueError(f"--ddim-eta must be in [0, 1], got {self.eta}")
        if self.num_candidates < 1:
            raise ValueError("--mbr-candidates must be at least 1")
        if self.stop_when_stable < 0:
            raise ValueError("--stop-when-stable must be 0 (off) or a number of steps")
        if self.length_beam < 0:
            raise ValueError(f"--length-beam must be at least 1, got {self.length_beam}")
        if self.length_beam and self.total_length_limit < 2:
            raise ValueError("a length beam needs the total-length limit (--max-total-len)")
        if self.end_penalty and self.length_beam:
            raise ValueError("--end-penalty moves where a canvas's output ends; under --length-beam every canvas "
                             "has exactly its length and ends in </s>: use one or the other")
        if self.ranking not in RANKINGS:
            raise ValueError(f"unknown --rank-candidates {self.ranking!r}; choose one of {', '.join(RANKINGS)}")

    @property
    def hypotheses_per_source(self) -> int:
        """Candidates of a source: --mbr-candidates for each of its --length-beam lengths."""
        return max(self.length_beam, 1) * self.num_candidates


class _Vocabulary(NamedTuple):
    """The words the process may round to and output: rows of the embedding and of the lm_head
    bias, and the dictionary id of each row (None: row i is id i)."""

    embeddings: torch.Tensor
    bias: torch.Tensor
    ids: Optional[torch.Tensor]


class _Walk:
    """What the step loop carries between model calls. ``active`` maps the rows still being
    denoised to their (sentence·S + candidate) row of ``final``; rows that stop early are written
    there when they stop, the rest after the last step. ``inside`` ([rows, L] bool) marks each
    row's own canvas: the model attends to no position beyond it and nothing is read from there.
    ``length_scores`` ([rows], under a length beam) holds the log-probability of each row's length."""

    def __init__(self, x, source, inside: torch.Tensor, sampler: Sampler, retain_history: bool,
                 length_scores: Optional[torch.Tensor] = None):
        rows = x.size(0)
        self.x, self.source, self.sampler = x, source, sampler
        self.inside = self.final_inside = inside
        self.length_scores = length_scores
        self.active = torch.arange(rows, device=x.device)
        self.final = torch.zeros_like(x)
        self.latest = self.final.clone() if retain_history else None
        self.history: List[torch.Tensor] = []
        self.steps_taken = torch.zeros(rows, dtype=torch.long)
        self.x0_hat: Optional[torch.Tensor] = None
        self.predicted: Optional[torch.Tensor] = None
        self.words: Optional[torch.Tensor] = None
        self.unchanged = torch.zeros(rows, dtype=torch.long, device=x.device)

    def keep(self, index: torch.Tensor) -> None:
        """Only rows ``index`` go on being denoised."""
        self.x, self.x0_hat, self.predicted = self.x[index], self.x0_hat[index], self.predicted[index]
        self.words, self.unchanged, self.active = self.words[index], self.unchanged[index], self.active[index]
        self.inside = self.inside[index]
        self.source = self.source.select(index)
        self.sampler.select_rows(index)


def _seeded_normal(shape, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


class StepsAndLength(int):
    """A hypothesis's ``steps`` under a length beam: the model calls its candidate ran (a number, as
    fairseq's generators give), printed with the canvas length it was decoded on, so that
    fairseq-generate's I- line (``--print-step``) reads e.g. ``20 length=9``."""

    def __new__(cls, steps: int, length: int):
        value = super().__new__(cls, steps)
        value.length = length
        return value

    def __str__(self):
        return f"{int(self)} length={self.length}"

    def __format__(self, spec: str) -> str:  # what str.format calls
        return format(str(self), spec)


class DiffuSeqGenerator:
    def __init__(self, options: DecodingOptions):
        self.options = options
        self.pad, self.bos, self.eos = options.special_ids
        make_sampler(options.sampler)  # an unknown name fails here, before any decoding

    def __getattr__(self, name):
        """The options read as the generator's attributes, as fairseq's generators expose theirs."""
        if name == "options":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.options, name)

    @torch.no_grad()
    def generate(self, models, sample, prefix_tokens=None, constraints=None, **unused) -> List[List[dict]]:
        """Hypotheses of every sentence, best first; each length group is decoded as its own batch.
        A source without a word (an empty line) gets empty hypotheses, as fairseq's LevT echoes."""
        models[0].eval()
        model = getattr(models[0], "network", models[0])  # the fairseq model, or a bare DiffuSeqNetwork
        src_tokens, src_lengths = sample["net_input"]["src_tokens"], sample["net_input"]["src_lengths"]
        sample_ids = sample.get("id", torch.arange(src_tokens.size(0)))
        special = src_tokens.eq(self.pad) | src_tokens.eq(self.bos) | src_tokens.eq(self.eos)
        worded = (~special).any(1).nonzero().squeeze(1).cpu()
        groups = [worded[rows] for rows in self._length_groups(src_lengths[worded.to(src_lengths.device)])]
        if len(groups) == 1 and len(worded) == src_tokens.size(0):
            return self._generate_batch(model, src_tokens, src_lengths, sample_ids)
        finalized = [[self._empty_hypothesis()] * self.options.hypotheses_per_source for _ in range(src_tokens.size(0))]
        for rows in groups:
            lengths = src_lengths[rows.to(src_lengths.device)]
            tokens = src_tokens[rows.to(src_tokens.device), : int(lengths.max())]
            for row, hypos in zip(rows.tolist(), self._generate_batch(model, tokens, lengths, sample_ids[rows])):
                finalized[row] = hypos
        return finalized

    def _length_groups(self, src_lengths: torch.Tensor) -> List[torch.Tensor]:
        """Rows of a batch grouped by canvas length, longest first: a group closes once the next
        row's canvas is under GROUP_SHRINK of the group's (and the group has GROUP_MIN_ROWS rows),
        so short sentences do not pay for the longest canvas of the batch."""
        canvases = self.options.canvas_length(src_lengths.cpu())
        order = torch.sort(canvases, descending=True, stable=True).indices.tolist()
        groups, current = [], []
        for row in order:
            if len(current) >= GROUP_MIN_ROWS and canvases[row] < GROUP_SHRINK * canvases[current[0]]:
                groups.append(torch.tensor(current))
                current = []
            current.append(row)
        return groups + [torch.tensor(current, dtype=torch.long)] if current else groups

    def _generate_batch(self, model, src_tokens, src_lengths, sample_ids) -> List[List[dict]]:
        options = self.options
        steps = sampling_steps(options.num_steps, options.total_steps, options.step_spacing,
                               model.diffusion.alphas_cumprod, options.lowest_step)
        step_noise = torch.Generator(device=src_tokens.device).manual_seed(
            hash((options.base_seed, int(sample_ids[0]))) & 0x7FFFFFFF)
        walk = self._start(model, src_tokens, src_lengths, sample_ids, step_noise)
        vocabulary = self._vocabulary(model)
        self._run_steps(model, walk, step_pairs(steps, model.diffusion.alphas_cumprod), vocabulary, step_noise)
        return self._finalize(walk, src_tokens.size(0), vocabulary)

    def _start(self, model, src_tokens, src_lengths, sample_ids, step_noise: torch.Generator) -> _Walk:
        """The source context repeated for every candidate and the noise the walk starts from, each
        row's on its own canvas (zero beyond it)."""
        batch, cands, device = src_tokens.size(0), self.options.num_candidates, src_tokens.device
        context = model.encode_source(src_tokens, src_lengths)
        lengths, length_scores = self._canvases(model, context, src_lengths)
        source = context.select(torch.arange(batch, device=device).repeat_interleave(lengths.size(1) * cands))
        canvases = lengths.repeat_interleave(cands, dim=1).flatten()
        inside = torch.arange(int(canvases.max())) < canvases.unsqueeze(1)
        x = self._initial_noise(sample_ids, lengths, model.cfg.latent_dim).to(
            device=device, dtype=model.embed_tokens.weight.dtype)  # drawn on the CPU, one copy
        inside = inside.to(device)
        mean = model.mean_embed
        if mean is not None:
            x = x + mean
            if model.cfg.absorb_rate > 0:
                rate = math.sqrt(1 - float(model.diffusion.alphas_cumprod[-1])) * model.cfg.absorb_rate
                x = discrete_absorb(x, torch.full((x.size(0),), rate, device=device), inside, mean, step_noise)
        sampler = make_sampler(self.options.sampler, self.options.eta)
        if length_scores is not None:
            length_scores = length_scores.repeat_interleave(cands, dim=1).flatten()
        return _Walk(x, source, inside, sampler, self.options.retain_history, length_scores)

    def _canvases(self, model, context, src_lengths: torch.Tensor):
        """Canvas lengths of each source ([B, K], on the CPU) and their log-probabilities: the canvas
        rule's one length (log-probabilities None), or the length predictor's --length-beam likeliest."""
        options = self.options
        if not options.length_beam:
            return options.canvas_length(src_lengths.cpu()).unsqueeze(1), None
        logits = model.length_logits(context)
        lengths, log_probs = likeliest_lengths(model.length_head, logits, src_lengths, options.length_beam,
                                               options.total_length_limit)
        return lengths.cpu(), log_probs.cpu()

    def _initial_noise(self, sample_ids: torch.Tensor, lengths: torch.Tensor, latent: int) -> torch.Tensor:
        """One noise draw per (sentence id, candidate) on its own canvas (under a length beam, per
        (sentence id, candidate, length)): the same --seed gives the same candidates in any batch.
        ``lengths`` ([B, K]): the canvas lengths of each sentence, each holding --mbr-candidates rows."""
        cands, base_seed = self.options.num_candidates, self.options.base_seed
        noise = torch.zeros(lengths.numel() * cands, int(lengths.max()), latent)
        row = 0
        for i, sentence_lengths in zip(sample_ids.tolist(), lengths.tolist()):
            for k, length in enumerate(sentence_lengths):
                # A length repeated in a beam (a source near the limit) gets other draws the second time.
                repeat = sentence_lengths[:k].count(length)
                for j in range(cands):
                    key = (base_seed, int(i), j, length, repeat) if self.options.length_beam else (base_seed, int(i), j)
                    noise[row, :length] = _seeded_normal((length, latent), hash(key) & 0x7FFFFFFF)
                    row += 1
        return noise

    def _vocabulary(self, model) -> _Vocabulary:
        embeddings, bias, ids = model.word_embeddings(), model.output_bias, self.options.output_ids
        if ids is None:
            return _Vocabulary(embeddings, bias, None)
        ids = ids.to(embeddings.device)  # word ids below index this subset; ids maps them back
        return _Vocabulary(embeddings[ids], bias[ids], ids)

    def _run_steps(self, model, walk: _Walk, pairs, vocabulary: _Vocabulary, step_noise: torch.Generator) -> None:
        """Denoise ``walk`` along ``pairs``; every row ends with its last x̂0 in ``walk.final``."""
        options, mean = self.options, model.mean_embed
        walk.steps_taken.fill_(len(pairs))
        for index, (t, abar_t, abar_s) in enumerate(pairs):
            # The model may be shown a noisier step than x holds (DINOISER's condition-enhanced
            # inference): believing its input nearly pure noise, it leans on the source.
            shown = torch.full((walk.x.size(0),), max(t, options.shown_step_floor), dtype=torch.long,
                               device=walk.x.device)
            self_cond = walk.x0_hat if model.cfg.self_condition else None
            walk.predicted = model.denoise(walk.x, shown, walk.source, self_cond=self_cond, target_mask=walk.inside)
            if options.retain_history:
                walk.latest[walk.active] = walk.predicted
                walk.history.append(walk.latest.clone())
            if index == len(pairs) - 1:
                break  # the output is lm_head(predicted): rounding it and stepping to x_0 would go unused
            walk.x0_hat, new_words = self._round(walk.predicted, vocabulary)
            noise = None
            if walk.sampler.stochastic:
                noise = torch.randn(walk.x.shape, generator=step_noise, device=walk.x.device, dtype=walk.x.dtype)
            walk.x = walk.sampler.step(walk.x0_hat, walk.x, abar_t, abar_s, noise, mean)
            if options.stop_when_stable and self._retire_settled(walk, new_words, index):
                break
        # The output is lm_head of the last prediction x̂0, not of its rounding (which the last step
        # returns): the words are the ones the anchor CE trains, and their log-probs are the model's
        # confidence. Scored on a rounded x̂0, an exact word embedding, every log-prob was ≈ 0.
        walk.final[walk.active] = walk.predicted

    def _round(self, x0_hat: torch.Tensor, vocabulary: _Vocabulary):
        """Round x̂0 as --rounding says; return (x̂0 to step with, the vocabulary rows it stands for:
        what --stop-when-stable compares, None when nothing needs them)."""
        pick = ROUNDINGS[self.options.rounding]
        if pick is None and self.options.stop_when_stable:
            pick = likeliest_word_ids
        if pick is None:
            return x0_hat, None
        ids = pick(x0_hat, vocabulary.embeddings, vocabulary.bias)
        if ROUNDINGS[self.options.rounding] is None:
            return x0_hat, ids
        return vocabulary.embeddings[ids].to(x0_hat.dtype), ids

    def _retire_settled(self, walk: _Walk, new_words: torch.Tensor, index: int) -> bool:
        """Rows whose words (on their canvas) have not changed for --stop-when-stable steps leave the
        walk with their x̂0 as output, as after a last step; True once no row is left."""
        if walk.words is not None:
            same = (new_words.eq(walk.words) | ~walk.inside).all(1)
            walk.unchanged = torch.where(same, walk.unchanged + 1, 0)
        walk.words = new_words
        done = walk.unchanged.ge(self.options.stop_when_stable)
        if not done.any():
            return False
        walk.final[walk.active[done]] = walk.predicted[done]
        walk.steps_taken[walk.active[done].cpu()] = index + 1
        walk.keep((~done).nonzero().squeeze(1))
        return walk.x.size(0) == 0

    def _finalize(self, walk: _Walk, batch: int, vocabulary: _Vocabulary) -> List[List[dict]]:
        """Words of every candidate as fairseq hypotheses (with their history), each source's ranked
        best first by MBR or by their score."""
        per_source = self.options.hypotheses_per_source

        readout_bias = self._readout_bias(vocabulary)

        def output_words(states):
            if self.options.round_output:  # the official sampler's last step returns the rounded x̂0
                states = vocabulary.embeddings[nearest_embedding_ids(states, vocabulary.embeddings)]
            ids, log_probs = most_likely_words(states, vocabulary.embeddings, readout_bias)
            if walk.length_scores is not None:
                ids, log_probs = self._end_with_eos(states, ids, log_probs, walk.final_inside, vocabulary)
            return self._compact(ids if vocabulary.ids is None else vocabulary.ids[ids], log_probs, walk.final_inside)

        compact, valid, scores, end_scores = output_words(walk.final)
        compact_history = [output_words(h) for h in walk.history]
        lengths = walk.final_inside.sum(1).tolist()
        hypos = []
        for row in range(batch * per_source):
            taken = int(walk.steps_taken[row])
            extra = 0.0 if walk.length_scores is None else float(walk.length_scores[row])
            steps = taken if walk.length_scores is None else StepsAndLength(taken, lengths[row])
            hypo = self._hypothesis(compact[row], valid[row], scores[row], end_scores[row], steps, extra)
            if self.options.retain_history:  # one entry per step this candidate ran
                hypo["history"] = [self._hypothesis(h[0][row], h[1][row], h[2][row], h[3][row], steps, extra)
                                   for h in compact_history[:taken]]
            hypos.append(hypo)
        if self.options.ranking == "score":
            order = torch.tensor([float(h["score"]) for h in hypos]).view(batch, per_source)
            ranking = torch.sort(-order, dim=1, stable=True).indices
        else:
            ranking = self._mbr_ranking(compact.view(batch, per_source, -1), valid.view(batch, per_source, -1),
                                        walk.length_scores)
        return [[hypos[b * per_source + c] for c in ranking[b].tolist()] for b in range(batch)]

    def _readout_bias(self, vocabulary: _Vocabulary) -> torch.Tensor:
        """The lm_head bias the output words are read with: --end-penalty lowers </s> and padding, so
        that a position ends the output (or is dropped) only when the model prefers that by more than the
        penalty. It is LevT's --iter-decode-eos-penalty for a canvas: a length knob that leaves the reverse
        process itself unchanged. The words' log-probabilities are read under it too, so that a hypothesis's
        score (--rank-candidates score) is that of the distribution its words were picked from."""
        if not self.options.end_penalty:
            return vocabulary.bias
        ends = torch.tensor([self.eos, self.pad], device=vocabulary.bias.device)
        if vocabulary.ids is not None:  # rows of the output subset (both specials are always in it)
            ends = torch.searchsorted(vocabulary.ids, ends)
        bias = vocabulary.bias.clone()
        bias[ends] -= self.options.end_penalty
        return bias

    @staticmethod
    def _mbr_ranking(tokens: torch.Tensor, valid: torch.Tensor, length_scores: Optional[torch.Tensor]):
        """Candidates ([B, N, L]) best first by MBR. Under a length beam the candidates are draws for the
        L likeliest lengths, not draws from the model's length distribution: as a pseudo-reference each
        counts with its length's probability (renormalised over the beam), so that the utility is still
        the expected BLEU under the model, not one inflated by its less likely lengths."""
        if length_scores is None:
            return mbr_order(tokens, valid)[0]
        weights = length_scores.view(tokens.shape[:2]).to(tokens.device).double().softmax(-1)
        off_diagonal = 1 - torch.eye(tokens.size(1), dtype=torch.float64, device=tokens.device)
        utility = (pairwise_bleu(tokens, valid) * off_diagonal * weights.unsqueeze(1)).sum(-1)
        return torch.sort(-utility, dim=-1, stable=True).indices

    def _end_with_eos(self, states, ids, log_probs, inside: torch.Tensor, vocabulary: _Vocabulary):
        """Under a length beam a canvas's last position is its </s>, as on every canvas the model was
        trained on: written there (scored by its own log-probability), so a canvas of L positions
        outputs at most L-1 words."""
        rows = torch.arange(states.size(0), device=states.device)
        last = inside.sum(1) - 1
        eos_row = self.eos if vocabulary.ids is None else int(torch.searchsorted(vocabulary.ids, self.eos))
        end_logits = states[rows, last].to(vocabulary.embeddings.dtype) @ vocabulary.embeddings.t() + vocabulary.bias
        ids, log_probs = ids.clone(), log_probs.clone()
        ids[rows, last] = eos_row
        log_probs[rows, last] = end_logits.float().log_softmax(-1)[:, eos_row]
        return ids, log_probs

    def _compact(self, tokens: torch.Tensor, scores: torch.Tensor, inside: torch.Tensor):
        """Output tokens up to the first </s> of the row's canvas, without padding/bos (and, with
        ``collapse_repeats``, without a token's repeats in a row: the first keeps its log-prob), moved to
        the front of each row, with their log-probs; the end-of-output score is that of the first </s>
        (or of the canvas's last position when the model wrote none)."""
        tokens = tokens.masked_fill(~inside, self.pad)
        eos_seen = tokens.eq(self.eos).long().cumsum(1)
        keep = eos_seen.eq(0) & tokens.ne(self.pad) & tokens.ne(self.bos)
        end = torch.where(eos_seen[:, -1] > 0, eos_seen.eq(0).sum(1), inside.sum(1) - 1)
        end_scores = scores.gather(1, end.unsqueeze(1))
        tokens, keep, scores = self._to_front(tokens, keep, scores)
        if self.options.collapse_repeats:  # kept tokens are now contiguous: a repeat equals its left neighbour
            repeat = torch.zeros_like(keep)
            repeat[:, 1:] = keep[:, 1:] & tokens[:, 1:].eq(tokens[:, :-1])
            tokens, keep, scores = self._to_front(tokens, keep & ~repeat, scores)
        return tokens, keep, scores, end_scores

    @staticmethod
    def _to_front(tokens: torch.Tensor, keep: torch.Tensor, scores: torch.Tensor):
        """The kept positions of each row moved to its front, in order."""
        order = torch.sort((~keep).long(), dim=1, stable=True).indices
        return tokens.gather(1, order), keep.gather(1, order), scores.gather(1, order)

    def _hypothesis(self, tokens, valid, scores, end_score, steps: int, length_score: float = 0.0):
        """A fairseq hypothesis; its score is the words' mean log-probability (with </s>), plus the
        log-probability of its canvas length under a length beam."""
        n = int(valid.sum())
        eos = tokens.new_tensor([self.eos])
        positional = torch.cat([scores[:n], end_score])
        return {
            "tokens": torch.cat([tokens[:n], eos]),
            "score": positional.mean() + length_score if length_score else positional.mean(),
            "positional_scores": positional,
            "alignment": None,
            "steps": steps,
        }

    def _empty_hypothesis(self) -> dict:
        """What a source without a word gets: no word and a certain </s>."""
        hypo = {"tokens": torch.tensor([self.eos]), "score": torch.tensor(0.0), "positional_scores": torch.zeros(1),
                "alignment": None, "steps": 0}
        return {**hypo, "history": []} if self.options.retain_history else hypo
