"""The ``diffuseq`` task: binarized pairs from fairseq-preprocess, read as DiffuSeq sequences.

* One joined dictionary (source and target share the diffusion embedding space).
* Right padding, so row i is its source followed by its target canvas at positions |x_i|, ...
* A token layout (:mod:`diffuseq_fairseq.sequences`): ``fairseq`` (``x </s>``, ``y </s>``) or the
  official ``diffuseq`` sequence; the model keeps the layout it was trained with and every decode
  follows it.
* A total-length limit (paper: 128) with the official truncation rule: trim the longer side
  (both on ties), keeping ``</s>``; the number of truncated pairs is logged per split.
* The target canvas (how many positions the model may fill, the rest becoming padding) is
  ``min(limit - |x|, ceil(a·|x| + b))``; a = 0, b ≥ limit gives the paper's full 128-position
  canvas. The model config keeps the rule it was trained with, and decoding uses it unless
  --canvas-len-a/-b are given again (as the official code reads seq_len back from its training
  arguments).
"""
import functools
import logging
import os
from typing import Optional, Tuple

import numpy as np
import torch
from fairseq import utils
from fairseq.data import LanguagePairDataset, data_utils
from fairseq.tasks import register_task
from fairseq.tasks.translation import TranslationTask

from ..generator import DecodingOptions, DiffuSeqGenerator
from ..sequences import TOKEN_LAYOUTS, CanvasRule, TruncatedItems, truncate_pair_lengths
from .diffuseq_config import CANVAS_DEFAULT, DiffuSeqConfig, decoding_knob

logger = logging.getLogger(__name__)


def reseed_training_draws() -> None:
    """Move torch's RNG to a stream of its own before a training step draws its steps t and noises.

    fairseq seeds torch with --seed + the update number before every update, so the first update
    draws from the very stream that initialised the model with --seed: its Gaussian noise is then made
    of the initial weights (the word embedding table, one row per position, in the paper's
    configuration), and Adam's first step, which moves every weight by about the learning rate,
    learns from inputs that look like clean words.
    The new seed is drawn from fairseq's stream, so a resumed run draws the same; each rank mixes in
    its rank, since fairseq seeds every rank alike and they would otherwise all draw the same steps
    and noises for their different batches; each micro-batch of --update-freq starts where the last
    one's draws left the stream, so they differ too.
    """
    rank = torch.distributed.get_rank() if torch.distributed.is_available() and torch.distributed.is_initialized() else 0
    seed = int(torch.randint(0, 2**62, (1,)).item()) ^ (rank * 0x9E3779B97F4A7C15 % 2**62)
    utils.set_torch_seed(seed)


@register_task("diffuseq", dataclass=DiffuSeqConfig)
class DiffuSeqTask(TranslationTask):
    cfg: DiffuSeqConfig

    @classmethod
    def setup_task(cls, cfg: DiffuSeqConfig, **kwargs):
        task = super().setup_task(cfg, **kwargs)
        if task.src_dict != task.tgt_dict:
            raise ValueError(
                f"the diffuseq task needs a joined dictionary, but {cfg.data}/dict.{cfg.source_lang}.txt and "
                f"dict.{cfg.target_lang}.txt differ: re-run fairseq-preprocess with --joined-dictionary"
            )
        if cfg.left_pad_source:
            raise ValueError("the diffuseq task needs right padding (--left-pad-source False)")
        task.check_total_length(str(cfg.token_layout))
        return task

    def check_total_length(self, layout_name: str) -> None:
        """One lower bound on --max-total-len, for training and every decode: a one-word source and a
        one-word target with the layout's specials."""
        layout = TOKEN_LAYOUTS[layout_name]
        if self.cfg.max_total_len < layout.min_total:
            raise ValueError(
                f"--max-total-len {self.cfg.max_total_len} leaves no room for a one-word source and target: it "
                f"must be at least {layout.min_total} under --token-layout {layout.name}"
            )

    def build_model(self, cfg, from_checkpoint=False):
        if not from_checkpoint:  # a new model trains with the task's rule: refuse one without room
            CanvasRule(*self.canvas_rule(), self.cfg.max_total_len).check(TOKEN_LAYOUTS[str(self.cfg.token_layout)])
        return super().build_model(cfg, from_checkpoint)

    def load_dataset(self, split, epoch=1, combine=False, task_cfg=None, **kwargs):
        """Pairs in the token layout of ``task_cfg`` (fairseq-generate and fairseq-validate pass the
        checkpoint's task options; else the task's), truncated by the official rule."""
        self._refuse_empty_split(split, epoch)
        super().load_dataset(split, epoch=epoch, combine=combine, **kwargs)
        layout = TOKEN_LAYOUTS[str(getattr(task_cfg or self.cfg, "token_layout", "fairseq"))]
        dataset = self.datasets[split]
        limit = self.cfg.max_total_len
        src_len, tgt_len = truncate_pair_lengths(dataset.src_sizes, dataset.tgt_sizes,
                                                 limit - layout.source_added - layout.target_added)
        cut = (src_len != dataset.src_sizes) | (tgt_len != dataset.tgt_sizes)
        if cut.any():
            logger.warning(
                "%s: truncated %d of %d pairs to --max-total-len %d (longer side first; %d source and %d "
                "target sides cut)", split, cut.sum(), len(cut), limit,
                (src_len != dataset.src_sizes).sum(), (tgt_len != dataset.tgt_sizes).sum(),
            )
            dataset.src, dataset.tgt = TruncatedItems(dataset.src, src_len), TruncatedItems(dataset.tgt, tgt_len)
        dataset.src, dataset.tgt = layout.wrap(dataset.src, dataset.tgt, self.tgt_dict.bos(), self.tgt_dict.eos())
        dataset.src_sizes, dataset.tgt_sizes = src_len + layout.source_added, tgt_len + layout.target_added
        if split == self.cfg.train_subset and self.cfg.batch_order == "random":
            # fairseq sorts by length before batching; a permutation instead (drawn under the trainer's
            # numpy seed) makes every batch a random draw of the split, as the official loader's.
            dataset.ordered_indices = lambda: np.random.permutation(len(dataset))

    def _refuse_empty_split(self, split: str, epoch: int) -> None:
        """An empty split file fails deep in fairseq ("cannot mmap an empty file", no file named)."""
        paths = utils.split_paths(self.cfg.data)
        data_path = paths[(epoch - 1) % len(paths)] if split == self.cfg.train_subset else paths[0]
        src, tgt = self.cfg.source_lang, self.cfg.target_lang
        for pair in (f"{src}-{tgt}", f"{tgt}-{src}"):
            for lang in (src, tgt):
                path = os.path.join(data_path, f"{split}.{pair}.{lang}.bin")
                if os.path.isfile(path) and os.path.getsize(path) == 0:
                    raise ValueError(f"{path} is empty: split {split} holds no sentence (was its text file empty "
                                     f"when fairseq-preprocess read it?)")

    def build_dataset_for_inference(self, src_tokens, src_lengths, constraints=None):
        """Interactive input, right padded, in the model's token layout. A line without a word is
        decoded as an empty source (an empty hypothesis); a line too long for the canvas its rule
        asks for is cut by the official truncation."""
        layout, rule = self._inference_layout_and_rule()
        bos, eos = self.tgt_dict.bos(), self.tgt_dict.eos()
        sources = []
        for tokens in src_tokens:
            if self.is_wordless(tokens):
                logger.warning("an input line holds no word (empty or only BPE markers): its hypothesis is empty")
                sources.append(layout.wrap_source(tokens[-1:], bos, eos))
            else:
                sources.append(self._fit_inference_source(layout.wrap_source(tokens, bos, eos), layout, rule))
        return LanguagePairDataset(
            sources, [len(t) for t in sources], self.source_dictionary, tgt_dict=self.target_dictionary,
            left_pad_source=False, constraints=constraints,
        )

    def _fit_inference_source(self, source: torch.Tensor, layout, rule: CanvasRule) -> torch.Tensor:
        kept = rule.fit_source(len(source), layout)
        if kept == len(source):
            return source
        canvas = int(rule.lengths(torch.tensor([kept]))[0])
        logger.warning("cut an input line of %d tokens to %d (--max-total-len %d, canvas rule %s): its target "
                       "keeps %d positions", len(source), kept, rule.limit, rule, canvas)
        tail = layout.source_added - int(layout.source_bos) + 1  # the final </s> and any the layout adds
        return torch.cat([source[: kept - tail], source[-tail:]])

    def is_wordless(self, tokens: torch.Tensor) -> bool:
        """Whether a stored source (``x </s>``) holds only BPE continuation markers, or nothing."""
        return all(int(t) in self.marker_ids for t in tokens[:-1])

    @functools.cached_property
    def marker_ids(self) -> frozenset:
        """Dictionary ids whose symbol is only BPE markers (subword-nmt's "@@", sentencepiece's "▁")."""
        return frozenset(i for i, symbol in enumerate(self.src_dict.symbols)
                         if symbol and not symbol.replace("@@", "").replace("▁", ""))

    def _inference_layout_and_rule(self):
        """The model's layout and canvas rule, as build_generator found them (fairseq-interactive builds
        the generator first); the task's own before that."""
        return getattr(self, "_inference", (TOKEN_LAYOUTS[str(self.cfg.token_layout)],
                                            CanvasRule(*self.canvas_rule(), self.cfg.max_total_len)))

    def get_batch_iterator(self, dataset, *args, required_batch_size_multiple=1, **kwargs):
        """Batch sizes need no rounding here (every batch is padded to its own length), and
        fairseq 0.12 drops a final batch smaller than the multiple (fairseq#5036): force 1."""
        return super().get_batch_iterator(dataset, *args, required_batch_size_multiple=1, **kwargs)

    # With --store-ema, fairseq's trainer then hands valid_step the EMA copy: validation (loss, BLEU and
    # so checkpoint_best) measures the averaged weights that diffuseq-export-ema turns into the decoder.
    uses_ema = True

    def valid_step(self, sample, model, criterion, ema_model=None):
        if ema_model is not None:
            model = ema_model.eval()  # fairseq only switches the trained model to eval mode
        return super().valid_step(sample, model, criterion)

    def train_step(self, sample, model, criterion, optimizer, update_num, ignore_grad=False, ema_model=None):
        # ema_model (passed because of uses_ema) is not needed: the trainer steps the EMA itself.
        criterion.count_in_sampler = not ignore_grad
        reseed_training_draws()
        return super().train_step(sample, model, criterion, optimizer, update_num, ignore_grad)

    @staticmethod
    def trained_canvas_rule(model) -> Tuple[float, int]:
        """The rule ``model`` was trained with: saved in its config (None there: the default)."""
        saved = (getattr(model.cfg, "canvas_len_a", None), getattr(model.cfg, "canvas_len_b", None))
        return tuple(default if value is None else value for value, default in zip(saved, CANVAS_DEFAULT))

    def canvas_rule(self, fallback: Tuple[float, int] = CANVAS_DEFAULT) -> Tuple[float, int]:
        """(a, b): each given on the command line wins over ``fallback`` (at decoding: the model's rule)."""
        given = (self.cfg.canvas_len_a, self.cfg.canvas_len_b)
        return tuple(backup if value is None else value for value, backup in zip(given, fallback))

    def canvas_lengths(self, src_lengths: torch.Tensor, tgt_lengths: Optional[torch.Tensor] = None,
                       rule: Optional[Tuple[float, int]] = None) -> torch.Tensor:
        """Target canvas of each row: the rule's, within the total-length limit (and in training at
        least the row's target)."""
        return CanvasRule(*(rule or self.canvas_rule()), self.cfg.max_total_len).lengths(src_lengths, tgt_lengths)

    def canvas_length(self, src_lengths: torch.Tensor, tgt_lengths: Optional[torch.Tensor] = None,
                      rule: Optional[Tuple[float, int]] = None) -> int:
        """Target canvas of a batch: the largest row canvas."""
        return int(self.canvas_lengths(src_lengths, tgt_lengths, rule).max())

    def build_generator(self, models, args, seq_gen_cls=None, extra_gen_cls_kwargs=None, **unused):
        """Works from cfg.generation (fairseq-generate) and from the --eval-bleu-args Namespace. Decoding
        follows what the checkpoint was trained with: its token layout and, unless given again, its
        canvas rule."""
        model = models[0]
        network = getattr(model, "network", model)
        layout = TOKEN_LAYOUTS[str(getattr(model.cfg, "token_layout", "fairseq"))]
        self.check_total_length(layout.name)
        trained = self.trained_canvas_rule(model)
        rule = self.canvas_rule(trained)
        if rule != trained:
            logger.warning("decoding with the canvas rule %s·|x|+%s; the model was trained with %s·|x|+%s", *rule, *trained)
        canvas = CanvasRule(*rule, self.cfg.max_total_len)
        canvas.check(layout)
        self._inference = (layout, canvas)
        options = self.decoding_options(args, network, rule)
        self._name_the_decode(args, options)
        return DiffuSeqGenerator(options)

    def decoding_options(self, args, network, rule: Tuple[float, int]) -> DecodingOptions:
        knob = functools.partial(decoding_knob, self.cfg, args)
        total_steps = network.cfg.num_timesteps
        lowest = self.lowest_sampling_step(network, str(knob("step_range")))
        steps = knob("diffusion_steps")
        steps = total_steps - lowest if steps is None else steps  # default: every step of the range
        sampler = str(knob("sampler"))
        if sampler == "auto":
            sampler = "ddpm" if steps == total_steps - lowest else "ddim"
        tgt = self.target_dictionary
        return DecodingOptions(
            special_ids=(tgt.pad(), tgt.bos(), tgt.eos()),
            num_steps=steps,
            total_steps=total_steps,
            canvas_length=functools.partial(self.canvas_lengths, rule=rule),
            sampler=sampler,
            step_spacing=str(knob("step_spacing")),
            eta=float(knob("ddim_eta")),
            rounding=str(knob("rounding")),
            num_candidates=int(knob("mbr_candidates")),
            retain_history=bool(getattr(args, "retain_iter_history", False)),
            base_seed=int(torch.randint(0, 2**31 - 1, (1,)).item()),  # follows --seed via fairseq's seeding
            stop_when_stable=int(knob("stop_when_stable")),
            lowest_step=lowest,
            shown_step_floor=self.shown_step_floor(knob("shown_timestep_fraction"), total_steps),
            output_ids=self.output_ids(str(knob("output_vocab"))),
            round_output=bool(knob("round_output")),
            length_beam=self.length_beam(network, knob("length_beam")),
            total_length_limit=self.cfg.max_total_len,
            ranking=str(knob("rank_candidates")),
            collapse_repeats=bool(knob("collapse_repeats")),
            end_penalty=float(knob("end_penalty")),
        )

    @staticmethod
    def length_beam(network, beam: Optional[int]) -> int:
        """--length-beam checked against the model: 0 (the canvas rule) for a model without a length
        predictor, which may not be given one; 1 by default for a model with one."""
        head = network.length_head
        if head is None:
            if beam is not None:
                raise ValueError(f"--length-beam {beam} needs a model trained with --length-predictor; this one "
                                 "has no length predictor (it writes padding into its canvas): leave --length-beam out")
            return 0
        beam = 1 if beam is None else int(beam)
        if not 1 <= beam <= head.num_classes:
            raise ValueError(f"--length-beam must be in [1, {head.num_classes}] (the model's length classes), "
                             f"got {beam}")
        return beam

    @staticmethod
    def _name_the_decode(args, options: DecodingOptions) -> None:
        """fairseq-generate prints ``hypos[:--nbest]`` and ends with "Generate SUBSET with beam=--beam":
        a diffusion decode keeps --mbr-candidates hypotheses per source (per length under --length-beam),
        which is its beam."""
        nbest, hypotheses = getattr(args, "nbest", 1), options.hypotheses_per_source
        if nbest > hypotheses:
            given = (f"--mbr-candidates {options.num_candidates}" if not options.length_beam else
                     f"--length-beam {options.length_beam} × --mbr-candidates {options.num_candidates}")
            logger.warning("--nbest %d is more than %s: each sentence has %d hypotheses to print", nbest, given,
                           hypotheses)
        if hasattr(args, "beam"):
            args.beam = hypotheses

    def output_ids(self, choice: str) -> Optional[torch.Tensor]:
        """Ids of --output-vocab (None: every id)."""
        if choice == "all":
            return None
        if self.target_side_ids is None:
            if choice == "target":
                src, tgt = self.cfg.source_lang, self.cfg.target_lang
                raise FileNotFoundError(
                    f"--output-vocab target reads the training targets, but {utils.split_paths(self.cfg.data)[0]} "
                    f"holds no train.{src}-{tgt}.{tgt} (or train.{tgt}-{src}.{tgt}); use --output-vocab all"
                )
            logger.info("--output-vocab auto: no training targets in the data dir, so all words")
        return self.target_side_ids

    @functools.cached_property
    def target_side_ids(self) -> Optional[torch.Tensor]:
        """Sorted ids of the dictionary's special symbols and of every word in the training targets
        of the first data dir (None where there are none); read once."""
        data_dir, src, tgt = utils.split_paths(self.cfg.data)[0], self.cfg.source_lang, self.cfg.target_lang
        for pair in (f"{src}-{tgt}", f"{tgt}-{src}"):
            path = os.path.join(data_dir, f"train.{pair}.{tgt}")
            targets = data_utils.load_indexed_dataset(path, self.tgt_dict, self.cfg.dataset_impl)
            if targets is not None:
                break
        else:
            return None
        buffer = getattr(targets, "_bin_buffer", None)  # mmap: one pass over the raw tokens
        tokens = (np.frombuffer(buffer, dtype=targets._index.dtype) if buffer is not None
                  else np.concatenate([targets[i].numpy() for i in range(len(targets))]))
        ids = np.union1d(np.unique(tokens), np.arange(self.tgt_dict.nspecial))
        logger.info("--output-vocab: %d of %d words, from %s", len(ids), len(self.tgt_dict), path)
        return torch.from_numpy(ids.astype(np.int64))

    @staticmethod
    def shown_step_floor(fraction: Optional[float], total_steps: int) -> int:
        if fraction is None:
            return 0
        if not 0 <= fraction < 1:
            raise ValueError(f"--shown-timestep-fraction must be in [0, 1), got {fraction}")
        return round(fraction * total_steps)

    @staticmethod
    def lowest_sampling_step(model, step_range: str) -> int:
        """0 for --step-range full; for trained, the first step the model was trained on."""
        return getattr(model, "network", model).first_train_step if step_range == "trained" else 0
