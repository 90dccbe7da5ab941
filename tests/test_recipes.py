"""The named recipes (diffuseq_fairseq/experiments/recipes.py): every flag parses with fairseq's own
parsers, each recipe's flags are written once in the repository, and scripts/train.sh trains with one."""
import os
import subprocess
from pathlib import Path

import pytest
from fairseq import options

from diffuseq_fairseq.experiments import recipes
from fairseq_harness import REPO, USER_DIR, create_dummy_data, preprocess_data


@pytest.mark.parametrize("name", list(recipes.RECIPES))
def test_every_recipe_parses_with_fairseqs_parsers(name, tmp_path):
    recipe = recipes.get(name)
    train = options.parse_args_and_arch(options.get_training_parser(),
                                        [str(tmp_path), "--user-dir", USER_DIR, *recipe.train_argv()])
    assert train.task == recipe.task.split()[1]
    decode = options.parse_args_and_arch(options.get_generation_parser(),
                                         [str(tmp_path), "--user-dir", USER_DIR, *recipe.decode_argv()])
    assert decode.task == (recipe.decode_task or recipe.task).split()[1]
    assert train.cpu == (recipe.device == "cpu")


def test_the_cpu_and_gpu_recipes_share_the_options_that_won_and_the_decoding():
    for recipe in (recipes.CPU, recipes.GPU):
        assert recipes.SHIPPED_OPTIONS in recipe.train and "--min-timestep-fraction 0.8" in recipe.train
    assert recipes.GPU.decode == f"{recipes.CPU.decode} --mbr-candidates 10"
    gpu = options.parse_args_and_arch(options.get_training_parser(), ["bin", "--user-dir", USER_DIR, *recipes.GPU.train_argv()])
    # fp16 (bf16 means TPU in fairseq 0.12) with an fp32 EMA: an fp16 copy at decay 0.9999 would not move.
    assert gpu.fp16 and not gpu.bf16 and gpu.store_ema and gpu.ema_fp32 and gpu.arch == "diffuseq_base"
    toy = recipes.TOY_3X128.train
    assert toy.startswith(recipes.TOY_3X128_PAPER_LOSS.train) and toy.endswith(recipes.SHIPPED_OPTIONS)


# Option sequences that belong to one recipe: none may be written again in a script, benchmark or test.
RECIPE_FRAGMENTS = [
    "--canvas-len-a 1.2 --canvas-len-b 4", "--lr 1.5e-3", "--encoder-layers 3 --encoder-embed-dim 128",
    "--encoder-embed-dim 64 --encoder-ffn-embed-dim 128", "--encoder-embed-dim 32 --decoder-embed-dim 32",
    "--encoder-embed-dim 256 --decoder-embed-dim 256", "--shown-timestep-fraction 0.95 --rounding none",
    "--iter-decode-max-iter 9 --iter-decode-eos-penalty 0", "--eval-bleu --eval-bleu-remove-bpe",
    "--anchor-loss-weight 1 --rounding-loss-weight 0 --embed-norm",
]


def test_each_recipes_flags_are_written_once():
    files = [path for folder in ("scripts", "benchmarks", "tests", "examples") for path in (REPO / folder).rglob("*")
             if path.suffix in (".py", ".sh") and "official" not in path.parts and path.name != "test_recipes.py"]
    assert files
    for path in files:
        text = " ".join(path.read_text(encoding="utf-8").split())
        for fragment in RECIPE_FRAGMENTS:
            assert fragment not in text, f"{path.relative_to(REPO)} writes the recipe options {fragment!r} again"


def test_the_recipes_command_lists_and_prints_one_argument_a_line(capsys):
    assert recipes.main(["--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == list(recipes.RECIPES)
    assert recipes.main(["cpu", "--decode"]) == 0
    assert capsys.readouterr().out.splitlines() == recipes.CPU.decode_argv()
    assert recipes.main(["cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert """{"sampler": "dpm-solver++", "diffusion_steps": 10}""" in lines  # one argument, spaces and all
    with pytest.raises(SystemExit):
        recipes.main(["nope"])
    assert "unknown recipe 'nope'" in capsys.readouterr().err


def train_sh(*args, timeout=300):
    return subprocess.run(["bash", str(REPO / "scripts" / "train.sh"), *map(str, args)], capture_output=True,
                          text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=timeout)


def test_train_sh_trains_with_a_named_recipe_and_the_callers_options_win(tmp_path):
    create_dummy_data(tmp_path / "raw", num_train=60, num_valid=8)
    preprocess_data(tmp_path / "raw", tmp_path / "bin")
    proc = train_sh("test_tiny", tmp_path / "bin", tmp_path / "ckpt", "--max-update", "2", "--log-format", "json")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    log = proc.stdout + proc.stderr
    assert "'num_timesteps': 100" in log and "'max_update': 2" in log and "'cpu': True" in log
    assert (tmp_path / "ckpt" / "checkpoint_last.pt").exists()


@pytest.mark.parametrize("args, message", [
    ((), "usage: bash scripts/train.sh RECIPE DATA_BIN SAVE_DIR"),
    (("nope", "{tmp}/bin", "{tmp}/ckpt"), "unknown recipe 'nope'; known: paper, cpu"),
    (("cpu", "{tmp}", "{tmp}/ckpt"), "holds no dict.LANG.txt: not a fairseq data-bin"),
])
def test_train_sh_stops_with_a_clear_message(tmp_path, args, message):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "dict.src.txt").write_text("a 1\n")
    proc = train_sh(*(arg.format(tmp=tmp_path) for arg in args))
    assert proc.returncode != 0 and message in proc.stderr
    assert not Path(tmp_path / "ckpt").exists()
