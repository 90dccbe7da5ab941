"""Every named training and decoding recipe, its flags written once.

A recipe is fairseq command-line text in parts: task options (given to training and repeated for
every decode), training options (model, criterion, optimiser), validation during training, a
default budget, and decoding options. fairseq keeps the last value of an option given twice, so a
caller appends its own options after a recipe's to override them. Why each option is there and what
it gained is measured in ``docs/RESULTS.md#what-each-recipe-option-gained``; the comments below only say why.

    python -m diffuseq_fairseq.experiments.recipes --list
    python -m diffuseq_fairseq.experiments.recipes cpu --train    # one fairseq-train argument per line
    python -m diffuseq_fairseq.experiments.recipes cpu --decode   # one fairseq-generate argument per line
"""
import argparse
import shlex
from dataclasses import dataclass, replace
from typing import Dict, List


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    model: str  # "diffuseq", "levt" or "transformer"
    task: str  # options for training and for every decode of DiffuSeq; LevT's training task
    train: str  # model, criterion, optimiser
    validate: str = ""  # validation during training
    budget: str = ""  # default training length, for scripts/train.sh
    decode: str = ""  # fairseq-generate options after ``decode_task``
    decode_task: str = ""  # task options of a decode when they differ from ``task`` (LevT)
    early_stop: str = ""  # decoding options of the early-stopping rows, over ``decode``
    device: str = "cpu"  # "cpu" or "cuda": scripts/train.sh adds --cpu for the first

    def training_args(self) -> str:
        """Task and training options, as compare_levt's --levt-args / lr_sweep take them."""
        return f"{self.task} {self.train}".strip()

    def decoding_args(self) -> str:
        return f"{self.decode_task or self.task} {self.decode}".strip()

    def train_argv(self) -> List[str]:
        """fairseq-train arguments of scripts/train.sh: task, training, validation, budget, device."""
        device = ["--cpu"] if self.device == "cpu" else []
        return shlex.split(f"{self.training_args()} {self.validate} {self.budget}") + device

    def decode_argv(self) -> List[str]:
        return shlex.split(self.decoding_args()) + (["--cpu"] if self.device == "cpu" else [])


def validation_bleu(every_updates: int, eval_bleu_args: str) -> str:
    """Validation BLEU every ``every_updates`` updates and at each epoch's end, on the same 256 shortest valid
    sentences for both models (fairseq's first two length-sorted batches of 128, with no token cap to shrink
    them differently per model). LevT validates through the plugin's translation_lev_bleu, which restores
    fairseq's dropped --eval-bleu. ``eval_bleu_args``: the decoding options, as JSON."""
    return (
        "--eval-bleu --eval-bleu-remove-bpe --batch-size-valid 128 --max-tokens-valid 65536 --max-valid-steps 2 "
        f"--validate-interval-updates {every_updates} --eval-bleu-args '{eval_bleu_args}'"
    )


# The options that won the toy-task ablation (benchmarks/ablation.py): the anchor loss, embedding normalisation,
# the source encoded once, target positions restarted at 0. The rounding term is exactly 0 under --embed-norm,
# so it is not computed (docs/RESULTS.md#toy-task-ablation).
SHIPPED_OPTIONS = "--anchor-loss-weight 1 --rounding-loss-weight 0 --embed-norm --encode-source-once --target-positions restart"

PAPER = Recipe(
    name="paper",
    summary="the paper's model and optimiser (diffuseq_base, T=2000, AdamW 1e-4 decayed linearly, EMA 0.9999), "
    "the official code's loss positions and lm_head bias initialisation, 2,000-step decoding with MBR 10",
    model="diffuseq",
    task="--task diffuseq",
    # The official batch is 2,048 sentences over 4 GPUs; --batch-size is per GPU in fairseq. The official
    # lm_head is an nn.Linear, whose bias starts at U(±1/√latent), not at the plugin's 0.
    train="--arch diffuseq_base --num-timesteps 2000 --uniform-output-bias --criterion diffuseq_loss --loss-positions all "
    "--optimizer adamw --adam-betas (0.9,0.999) --lr 1e-4 --lr-scheduler polynomial_decay --total-num-update 50000 "
    "--batch-size 2048 --store-ema --ema-decay 0.9999",
    budget="--max-update 50000",
    decode="--sampler ddpm --diffusion-steps 2000 --mbr-candidates 10",
    device="cuda",
)

# The 2-core CPU machine's 35-minute side by side against the tuned LevT (scripts/compare_levt.py).
CPU = Recipe(
    name="cpu",
    summary="diffuseq_tiny for a 35-minute CPU budget (the recipe of the Multi30k side by side)",
    model="diffuseq",
    # 1.2|x|+4 holds Multi30k's targets with fewer positions than the default 1.5|x|+5, which is sized for any
    # language pair; the canvas rule is read back from the checkpoint too (docs/RESULTS.md#training-step-cost).
    task="--task diffuseq --canvas-len-a 1.2 --canvas-len-b 4",
    # Small batches (--max-tokens 1024) give many updates in a short wall-clock budget, and a budget of so few
    # updates favours the larger learning rate (docs/RESULTS.md#learning-rate). --min-timestep-fraction 0.8: on the
    # low steps the noisy target still rounds back to most of its words, so training there teaches little
    # (docs/RESULTS.md#noise-scale-clipping). --label-smoothing 0.1 on the anchor CE, as LevT's recipe smooths its
    # own. Not in it: --self-condition and --glance-rate 0.3, which did not pay at this budget
    # (docs/RESULTS.md#self-conditioning, docs/RESULTS.md#giving-the-denoiser-words).
    train="--arch diffuseq_tiny --criterion diffuseq_loss --optimizer adam --adam-betas (0.9,0.98) "
    "--lr 1.5e-3 --lr-scheduler inverse_sqrt --warmup-updates 300 --max-tokens 1024 --dropout 0.1 "
    f"--attention-dropout 0.0 {SHIPPED_OPTIONS} --min-timestep-fraction 0.8 --label-smoothing 0.1",
    validate=validation_bleu(200, '{"sampler": "dpm-solver++", "diffusion_steps": 10}'),
    # About the updates the 35-minute side by side reaches on that machine (docs/RESULTS.md#recipe-against-tuned-levt).
    budget="--max-update 2300",
    # Shown steps floored at 0.95·T (DINOISER's condition-enhanced inference) and no rounding between steps
    # (docs/RESULTS.md#shown-timestep-fraction, docs/RESULTS.md#output-vocabulary-and-rounding).
    decode="--sampler dpm-solver++ --diffusion-steps 20 --shown-timestep-fraction 0.95 --rounding none",
    # LevT's rule: a candidate finishes once a step leaves its words unchanged. With the paper's rounding, since
    # unrounded words settle too early (docs/RESULTS.md#output-vocabulary-and-rounding).
    early_stop="--stop-when-stable 1 --rounding l2",
)

def with_length_predictor(recipe: Recipe, name: str, summary: str, length_beam: int, decode_extra: str = "") -> Recipe:
    """``recipe`` trained with --length-predictor and decoded on its ``length_beam`` likeliest lengths."""
    return replace(recipe, name=name, summary=summary, train=f"{recipe.train} --length-predictor",
                   decode=f"{recipe.decode} --length-beam {length_beam}{decode_extra}")


# The CPU recipe with a length predictor (issue #29), the one to train with: the length is decided before
# decoding, as the diffusion models closest to LevT on translation do (Difformer, DINOISER, CMLM), instead of
# written as padding. Its canvases of exactly the target's length make steps cheaper, so the budget holds more
# updates; each source is decoded on its 3 likeliest lengths. Its exact-length canvases still fill with a
# neighbour's word ("a a dog"), so its outputs collapse repeats, which validation chose
# (docs/RESULTS.md#length-predictor).
CPU_LENGTH = with_length_predictor(
    CPU, "cpu_length", "the CPU recipe with a length predictor, decoded on a length beam of 3, repeats collapsed "
    "(issue #29)", 3, " --collapse-repeats")

# The caption paraphrase task (issue #28): the CPU recipe with the plugin's default canvas 1.5|x|+5 (the CPU
# recipe's 1.2|x|+4 holds only 64-69 % of these targets), its learning rate chosen on validation (1e-3 and 2.5e-3
# scored lower), and repeats collapsed, which validation chose too (docs/RESULTS.md#caption-paraphrases).
CAPTIONS_CPU = replace(
    CPU, name="captions_cpu", summary="the CPU recipe for the caption paraphrase task (issue #28)",
    task="--task diffuseq --canvas-len-a 1.5 --canvas-len-b 5", budget="--max-update 1200",
    decode=f"{CPU.decode} --collapse-repeats")

# fairseq's Levenshtein Transformer, tuned as far as DiffuSeq at the CPU budget: --lr 1e-3 rather than fairseq's
# 5e-4; at 1.5e-3 a seed collapsed (docs/RESULTS.md#tuning-levt).
LEVT_CPU = Recipe(
    name="levt_cpu",
    summary="fairseq's levenshtein_transformer at 2+2 layers, d=256, tuned for the CPU budget",
    model="levt",
    task="--task translation_lev_bleu",
    train="--arch levenshtein_transformer --criterion nat_loss --noise random_delete "
    "--share-all-embeddings --encoder-layers 2 --decoder-layers 2 --encoder-embed-dim 256 --decoder-embed-dim 256 "
    "--encoder-ffn-embed-dim 1024 --decoder-ffn-embed-dim 1024 --encoder-attention-heads 4 --decoder-attention-heads 4 "
    "--optimizer adam --adam-betas (0.9,0.98) --lr 1e-3 --lr-scheduler inverse_sqrt --warmup-updates 300 "
    "--max-tokens 1024 --dropout 0.1 --apply-bert-init --label-smoothing 0.1",
    validate=validation_bleu(200, '{"iter_decode_max_iter": 9, "iter_decode_eos_penalty": 0}'),
    budget="--max-update 2700",
    decode_task="--task translation_lev",
    # fairseq 0.12 drops a final batch smaller than --required-batch-size-multiple (fairseq#5036).
    decode="--iter-decode-max-iter 9 --iter-decode-eos-penalty 0 --beam 1 --required-batch-size-multiple 1",
)

# One GPU, derived rather than measured as a whole. Measured: diffuseq_base trains through fairseq-train with
# --fp16 at a batch of 16,384 tokens without NaN, while --bf16 means TPU in fairseq 0.12; the CPU recipe's options
# at a GPU batch, where the tiny model's validation BLEU levelled off within minutes, so the paper's model is
# used; MBR 10 costs far less over |S|=1 on a GPU than on a CPU, so the recipe decodes with it
# (docs/RESULTS.md#gpu). Not measured: this recipe to its end, its learning rate (the paper's, for the paper's
# model), and --min-timestep-fraction on a GPU.
# --ema-fp32: an fp16 EMA at decay 0.9999 would not move (its steps fall below fp16's resolution).
GPU = Recipe(
    name="gpu",
    summary="diffuseq_base on one GPU (fp16, EMA) with the CPU recipe's options; the paper's learning rate",
    model="diffuseq",
    task=CPU.task,
    train="--arch diffuseq_base --criterion diffuseq_loss --optimizer adam --adam-betas (0.9,0.98) --lr 1e-4 "
    "--lr-scheduler polynomial_decay --warmup-updates 1000 --total-num-update 50000 --max-tokens 16384 --fp16 "
    f"--dropout 0.1 --attention-dropout 0.0 {SHIPPED_OPTIONS} --min-timestep-fraction 0.8 --label-smoothing 0.1 "
    "--store-ema --ema-decay 0.9999 --ema-fp32",
    # Validation and saving every 1,000 updates, not also at every epoch's end, which on a GPU comes every few
    # seconds (fairseq's epoch intervals set out of reach).
    validate=validation_bleu(1000, '{"sampler": "dpm-solver++", "diffusion_steps": 10}')
    + " --validate-interval 1000 --save-interval 1000 --save-interval-updates 1000 --keep-interval-updates 3",
    budget="--max-update 50000",
    decode=CPU.decode + " --mbr-candidates 10",
    early_stop=CPU.early_stop,
    device="cuda",
)

# The quickstart's model: diffuseq_tiny's preset resized to 3 layers, d=128, latent 64 (not diffuseq_tiny's
# 4 layers, d=256), so that the embedded toy task learns in minutes on one CPU thread
# (docs/RESULTS.md#quickstart-toy-task).
TOY_3X128_PAPER_LOSS = Recipe(
    name="toy_3x128_paper_loss",
    summary="the quickstart's 3-layer d=128 model and optimiser with the paper's objective (the ablation's base)",
    model="diffuseq",
    task="--task diffuseq",
    train="--arch diffuseq_tiny --criterion diffuseq_loss --encoder-layers 3 --encoder-embed-dim 128 "
    "--encoder-ffn-embed-dim 512 --latent-dim 64 --optimizer adam --adam-betas (0.9,0.98) --lr 1e-3 "
    "--lr-scheduler inverse_sqrt --warmup-updates 300 --max-tokens 2048 --dropout 0.1 --attention-dropout 0",
    budget="--max-update 800",
    decode="--sampler dpm-solver++ --diffusion-steps 20",
)
TOY_3X128 = Recipe(
    name="toy_3x128",
    summary="the quickstart's recipe: the 3-layer d=128 model with the options that won the toy-task ablation",
    model="diffuseq",
    task=TOY_3X128_PAPER_LOSS.task,
    train=f"{TOY_3X128_PAPER_LOSS.train} {SHIPPED_OPTIONS}",
    budget=TOY_3X128_PAPER_LOSS.budget,
    # A candidate stops once its words settle; MBR over 5 candidates.
    decode="--sampler dpm-solver++ --diffusion-steps 20 --stop-when-stable 1 --mbr-candidates 5",
)

# The quickstart's recipe with a length predictor (issue #29): the model trains on canvases of exactly the
# target's length and decodes on its likeliest length, MBR over the same 5 candidates.
TOY_3X128_LENGTH = with_length_predictor(
    TOY_3X128, "toy_3x128_length",
    "the quickstart's recipe with a length predictor, decoded on its likeliest length (issue #29)", 1)

# The autoregressive teacher of scripts/distill.sh (sequence-level knowledge distillation): a small Transformer
# sized for a CPU budget, whose beam-search translations of the training set become the students' targets.
TEACHER_CPU = Recipe(
    name="teacher_cpu",
    summary="distillation teacher: a 3+3-layer d=256 Transformer for a CPU budget (scripts/distill.sh)",
    model="transformer",
    task="--task translation",
    train="--arch transformer --share-all-embeddings --encoder-layers 3 --decoder-layers 3 "
    "--encoder-embed-dim 256 --decoder-embed-dim 256 --encoder-ffn-embed-dim 1024 --decoder-ffn-embed-dim 1024 "
    "--encoder-attention-heads 4 --decoder-attention-heads 4 --dropout 0.1 "
    "--criterion label_smoothed_cross_entropy --label-smoothing 0.1 "
    "--optimizer adam --adam-betas (0.9,0.98) --lr 1e-3 --lr-scheduler inverse_sqrt --warmup-updates 400 "
    "--max-tokens 2048",
    validate="--disable-validation",
    budget="--stop-time-hours 0.5834",
    # fairseq 0.12 drops a last batch smaller than --required-batch-size-multiple (fairseq#5036).
    decode="--beam 4 --max-tokens 8000 --required-batch-size-multiple 1",
)

# Tests only: models that train in seconds on a few hundred generated pairs.
TEST_TINY = Recipe(
    name="test_tiny",
    summary="tests: a 2-layer d=64 DiffuSeq with T=100 that trains in seconds",
    model="diffuseq",
    task="--task diffuseq",
    train="--arch diffuseq_tiny --criterion diffuseq_loss --num-timesteps 100 --encoder-layers 2 "
    "--encoder-embed-dim 64 --encoder-ffn-embed-dim 128 --encoder-attention-heads 2 --latent-dim 16 "
    "--optimizer adam --lr 1e-3 --max-tokens 1000",
    budget="--max-epoch 2",
    decode="--diffusion-steps 10",
)
TEST_TINY_LEVT = Recipe(
    name="test_tiny_levt",
    summary="tests: fairseq's Levenshtein Transformer at 1+1 layers, d=32",
    model="levt",
    task="--task translation_lev",
    train="--arch levenshtein_transformer --criterion nat_loss --noise random_delete --share-all-embeddings "
    "--encoder-layers 1 --decoder-layers 1 --encoder-embed-dim 32 --decoder-embed-dim 32 "
    "--encoder-ffn-embed-dim 64 --decoder-ffn-embed-dim 64 --encoder-attention-heads 2 --decoder-attention-heads 2 "
    "--optimizer adam --lr 1e-3 --max-tokens 1000",
    budget="--max-epoch 1",
    decode="--iter-decode-max-iter 3 --iter-decode-eos-penalty 0 --beam 1",
)

RECIPES: Dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (PAPER, CPU, CPU_LENGTH, CAPTIONS_CPU, GPU, TOY_3X128, TOY_3X128_LENGTH, TOY_3X128_PAPER_LOSS, LEVT_CPU, TEACHER_CPU, TEST_TINY,
                   TEST_TINY_LEVT)
}


# Options of a side-by-side script that default to a part of its --diffuseq-recipe (None: not given).
RECIPE_PARTS = {"diffuseq_task": "task", "diffuseq_args": "train", "diffuseq_decode": "decode"}


def fill_from_recipe(args) -> None:
    """Give each of ``args``' :data:`RECIPE_PARTS` options left unset its part of ``args.diffuseq_recipe``."""
    recipe = get(args.diffuseq_recipe)
    for option, part in RECIPE_PARTS.items():
        if getattr(args, option, None) is None:
            setattr(args, option, getattr(recipe, part))


def diffuseq_recipe_names() -> List[str]:
    """The recipes a side-by-side script may train DiffuSeq with."""
    return [name for name, recipe in RECIPES.items() if recipe.model == "diffuseq"]


def get(name: str) -> Recipe:
    if name not in RECIPES:
        raise KeyError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", nargs="?", help="recipe name (see --list)")
    parser.add_argument("--list", action="store_true", help="the recipes, one a line, with a summary")
    part = parser.add_mutually_exclusive_group()
    part.add_argument("--train", action="store_true", help="fairseq-train arguments (the default)")
    part.add_argument("--decode", action="store_true", help="fairseq-generate arguments")
    args = parser.parse_args(argv)
    if args.list:
        for recipe in RECIPES.values():
            print(f"{recipe.name:22s} {recipe.model:9s} {recipe.device:5s} {recipe.summary}")
        return 0
    if not args.recipe:
        parser.error("name a recipe, or give --list")
    try:
        recipe = get(args.recipe)
    except KeyError as err:
        parser.error(err.args[0])
    print("\n".join(recipe.decode_argv() if args.decode else recipe.train_argv()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
