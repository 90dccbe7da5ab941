"""The ``diffuseq`` task's options (:class:`DiffuSeqConfig`): the data and its layout, the canvas rule,
and the decoding knobs that build_generator reads and no model stores; :func:`decoding_knob` reads
one of those from the --eval-bleu-args JSON as well."""
from dataclasses import dataclass, field
from enum import EnumMeta
from typing import Optional

from fairseq.dataclass import ChoiceEnum
from fairseq.tasks.translation import TranslationConfig

from ..diffusion import ROUNDINGS
from ..generator import RANKINGS
from ..samplers import SAMPLERS, STEP_SPACINGS
from ..sequences import TOKEN_LAYOUTS

CANVAS_DEFAULT = (1.5, 5)  # (a, b): 1.5·|x|+5 holds Multi30k's, QQP's and the toy task's targets


@dataclass
class DiffuSeqConfig(TranslationConfig):
    left_pad_source: bool = field(default=False, metadata={"help": "DiffuSeq needs right padding"})
    max_total_len: int = field(
        default=128, metadata={"help": "limit on |source| + |target| tokens (with </s>), at least 4 (7 under "
                               "--token-layout diffuseq); longer pairs are truncated, longer side first, as in the "
                               "official code"}
    )
    canvas_len_a: Optional[float] = field(
        default=None, metadata={"help": f"target canvas = min(limit-|x|, ceil(a*|x|+b)); default {CANVAS_DEFAULT[0]} "
                                "in training, and in decoding the value the checkpoint was trained with"}
    )
    canvas_len_b: Optional[int] = field(
        default=None, metadata={"help": f"see --canvas-len-a (default {CANVAS_DEFAULT[1]}); a=0, b=limit is the "
                                "paper's canvas"}
    )
    token_layout: ChoiceEnum(list(TOKEN_LAYOUTS)) = field(
        default="fairseq", metadata={"help": "how a pair becomes the model's two blocks: fairseq (source x </s>, "
                                     "target y </s>) | diffuseq (the official sequence [CLS] x [SEP] [SEP] [CLS] y "
                                     "[SEP]: source <s> x </s> </s>, target <s> y </s>, with the official "
                                     "truncation); the model keeps the layout it was trained with"}
    )
    batch_order: ChoiceEnum(["length", "random"]) = field(
        default="length", metadata={"help": "training batches: length (fairseq's: pairs of similar length, the "
                                    "least padding) | random (pairs drawn at random, as the official loader draws "
                                    "them; for the paper's full 128-position canvas, where every pair is padded "
                                    "alike and batches of one length swing the loss from update to update)"}
    )
    # Decoding knobs: read by build_generator, never stored in the model.
    sampler: ChoiceEnum(["auto", *SAMPLERS]) = field(
        default="auto", metadata={"help": "reverse-process sampler (auto: ddpm when every step of --step-range "
                                  "runs, else ddim)"}
    )
    diffusion_steps: Optional[int] = field(
        default=None, metadata={"help": "sampling steps, at least 1 (default: every step of --step-range: T, or "
                                "(1-F)·T for trained)"}
    )
    step_spacing: ChoiceEnum(list(STEP_SPACINGS)) = field(
        default="uniform", metadata={"help": "spacing of the sampling steps: even in t, or in log-SNR"}
    )
    step_range: ChoiceEnum(["full", "trained"]) = field(
        default="full", metadata={"help": "steps the sampling steps span: full ([0, T)) | trained ([F·T, T) of a "
                                  "model trained with --min-timestep-fraction F, the last step jumping to the "
                                  "clean level; the same as full for F = 0)"}
    )
    shown_timestep_fraction: Optional[float] = field(
        default=None, metadata={"help": "show the model max(t, F·T) at every step while x_t follows the "
                                "sampler's steps (DINOISER's condition-enhanced inference, F ≈ 0.99); default: "
                                "the checkpoint's --min-timestep-fraction, which the model applies anyway"}
    )
    ddim_eta: float = field(default=0.0, metadata={"help": "DDIM eta in [0, 1] (0: deterministic, 1: DDPM posterior)"})
    rounding: ChoiceEnum(list(ROUNDINGS)) = field(
        default="l2", metadata={"help": "clamp x0 to a word embedding at every step: l2 (nearest embedding, "
                                "official), logits (embedding of argmax lm_head(x0)), none"}
    )
    mbr_candidates: int = field(
        default=1, metadata={"help": "noise draws per source (per length under --length-beam); MBR picks the best"}
    )
    length_beam: Optional[int] = field(
        default=None, metadata={"help": "decode on the L most likely target lengths of the model's length predictor "
                                "within L-1 positions of the likeliest (a model trained with --length-predictor; at "
                                "least 1, at most its length classes), "
                                "--mbr-candidates noise draws each, every candidate on a canvas of exactly its "
                                "length; default 1 for such a model (it never learned to write padding), and an "
                                "error for a model without a predictor"}
    )
    rank_candidates: ChoiceEnum(list(RANKINGS)) = field(
        default="mbr", metadata={"help": "order of a source's candidates: mbr (each against the others, the "
                                 "paper's) | score (the model's own: the words' mean log-probability, plus the "
                                 "length's log-probability under --length-beam)"}
    )
    collapse_repeats: bool = field(
        default=False, metadata={"help": "output a token repeated in a row once (\"a a dog\" -> \"a dog\"), in every "
                                 "candidate before ranking: the deduplication of non-autoregressive decoders (Lee et "
                                 "al., 2018), whose positions, filled in parallel, often copy a neighbour's word"}
    )
    end_penalty: float = field(
        default=0.0, metadata={"help": "subtract this from the logits of </s> and padding when the output words are "
                               "read from the last x0 estimate: > 0 writes longer outputs, < 0 shorter (LevT's "
                               "--iter-decode-eos-penalty for a canvas; the reverse process is unchanged; not with "
                               "--length-beam)"}
    )
    stop_when_stable: int = field(
        default=0, metadata={"help": "finish a candidate once the words of its x0 estimate have not changed for "
                             "this many steps, and drop it from the batch (as fairseq's iterative refinement "
                             "stops LevT); 0 runs every step"}
    )
    round_output: bool = field(
        default=False, metadata={"help": "output argmax lm_head of the last x0 estimate rounded to the nearest word "
                                 "embedding, as the official sampler returns it (default: of the estimate itself)"}
    )
    output_vocab: ChoiceEnum(["all", "target", "auto"]) = field(
        default="auto", metadata={"help": "words the reverse process may round to and output: all (the joined "
                                  "dictionary) | target (the dictionary's special symbols and the words of the data "
                                  "dir's training targets, so no source-language word) | auto (target where the "
                                  "training targets are in the data dir, else all)"}
    )


def decoding_knob(cfg: DiffuSeqConfig, args, name: str):
    """Decoding option ``name``: from ``args`` where it holds it (the --eval-bleu-args JSON, which
    no parser has checked: a choice is checked against the option's declared choices), else the task's."""
    value = getattr(args, name, None)
    if value is None:
        return getattr(cfg, name)
    choices = DiffuSeqConfig.__dataclass_fields__[name].type
    if isinstance(choices, EnumMeta) and str(value) not in choices.__members__:
        raise ValueError(f"--eval-bleu-args: unknown {name} {value!r}; choose one of {', '.join(choices.__members__)}")
    return value
