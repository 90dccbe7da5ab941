"""End-to-end fairseq CLI runs of the length predictor (issue #29): fairseq-train with
--length-predictor (validation BLEU decoding with a length beam), fairseq-validate logging length_nll,
fairseq-generate with --length-beam 2 --mbr-candidates 2 --nbest 4, fairseq-interactive, a model
without a predictor refusing --length-beam, and benchmarks/length_accuracy.py on the tiny model."""
import argparse
import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch

from diffuseq_fairseq.experiments import decodes, recipes
from fairseq_harness import (
    DIFFUSEQ_DECODE_FLAGS, DIFFUSEQ_GENERATE_FLAGS, DIFFUSEQ_TRAIN_FLAGS, FULL_BATCHES, REPO, create_dummy_data,
    USER_DIR, generate_main, interactive_main, parse_output, preprocess_data, train_model, validate_model,
)

NUM_VALID = 12
LENGTH_BEAM = ["--length-beam", "2", "--mbr-candidates", "2", "--nbest", "4"]


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    create_dummy_data(root / "raw", num_valid=NUM_VALID)
    preprocess_data(root / "raw", root / "bin")
    return root / "bin"


@pytest.fixture(scope="module")
def checkpoint(data_bin, tmp_path_factory) -> Path:
    """The tests' tiny model with a length predictor, validated by BLEU with a length beam of 2."""
    flags = DIFFUSEQ_TRAIN_FLAGS + ["--length-predictor", "--max-length-offset", "8", "--length-loss-weight", "0.5",
                                    "--eval-bleu", "--eval-bleu-args", '{"diffusion_steps": 3, "length_beam": 2}']
    return train_model(data_bin, tmp_path_factory.mktemp("ckpt"), flags)


def test_the_predictor_is_saved_and_its_term_logged(data_bin, checkpoint):
    saved = torch.load(checkpoint)
    assert saved["cfg"]["model"]["length_predictor"] and saved["cfg"]["model"]["max_length_offset"] == 8
    assert saved["model"]["network.length_head.project.weight"].shape[0] == 17
    log = validate_model(data_bin, checkpoint, ["--user-dir", USER_DIR, "--task", "diffuseq",
                                                "--valid-subset", "valid", "--max-tokens", "1000", "--cpu",
                                                "--num-workers", "0", "--no-progress-bar", *FULL_BATCHES])
    nll = re.search(r"valid on 'valid' subset \|.* length_nll ([0-9.]+)", log)
    assert nll and float(nll.group(1)) > 0, log


def test_generate_prints_every_length_and_draw_with_its_length(data_bin, checkpoint):
    lines = parse_output(generate_main(data_bin, checkpoint, DIFFUSEQ_GENERATE_FLAGS + LENGTH_BEAM))
    assert set(lines["H"]) == {str(i) for i in range(NUM_VALID)}
    for sample_id, hypotheses in lines["H"].items():
        assert len(hypotheses) == 4
        steps = [re.fullmatch(r"(\d+) length=(\d+)", fields[0]) for fields in lines["I"][sample_id]]
        assert all(steps), lines["I"][sample_id]
        lengths = [int(match.group(2)) for match in steps]
        assert len(set(lengths)) == 2 and sorted(lengths) == sorted(list(set(lengths)) * 2)  # 2 lengths × 2 draws
        for (score, text), length in zip(hypotheses, lengths):
            assert float(score) <= 0 and "<pad>" not in text and len(text.split()) <= length - 1
        # --retain-iter-history: one E- line per step each hypothesis ran.
        history = sum(len(rows) for key, rows in lines["E"].items() if key.split("_")[0] == sample_id)
        assert history == sum(int(match.group(1)) for match in steps) == 4 * 10


def test_ranking_by_the_models_score(data_bin, checkpoint):
    lines = parse_output(generate_main(data_bin, checkpoint, DIFFUSEQ_GENERATE_FLAGS + LENGTH_BEAM
                                       + ["--rank-candidates", "score"]))
    for hypotheses in lines["H"].values():
        scores = [float(score) for score, _ in hypotheses]
        assert scores == sorted(scores, reverse=True)


def test_interactive_decodes_with_a_length_beam(data_bin, checkpoint):
    out = interactive_main(data_bin, checkpoint, ["h e l l o", "a b c d e f"], DIFFUSEQ_DECODE_FLAGS + LENGTH_BEAM)
    lines = parse_output(out)
    assert sorted(lines["H"]) == ["0", "1"] and all(len(h) == 4 for h in lines["H"].values())


def test_a_model_without_a_predictor_refuses_a_length_beam(data_bin, tmp_path):
    plain = train_model(data_bin, tmp_path / "ckpt", DIFFUSEQ_TRAIN_FLAGS + ["--max-epoch", "1"])
    with pytest.raises(ValueError, match="--length-beam 2 needs a model trained with --length-predictor"):
        generate_main(data_bin, plain, DIFFUSEQ_GENERATE_FLAGS + LENGTH_BEAM)


def test_length_accuracy_script(data_bin, checkpoint, capsys):
    spec = importlib.util.spec_from_file_location("length_accuracy", REPO / "benchmarks" / "length_accuracy.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    args = ["--data-bin", str(data_bin), "--source-lang", "in", "--target-lang", "out", "--path", str(checkpoint)]
    assert script.main(args + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["pairs"] == NUM_VALID and 0 <= result["exact"] <= result["within_1"] <= 100
    # The reversed-letters task: every target is as long as its source, so the constant offset is 0.
    assert result["majority_offset"] == 0 and result["majority_exact"] == 100.0
    assert 0 < result["majority_length_exact"] < 100 and 3 <= result["majority_length"] <= 13
    assert script.main(args) == 0
    assert "within ±1" in capsys.readouterr().out


def test_the_side_by_side_decodes_the_length_recipe_on_its_length_beam():
    """scripts/compare_levt.py --diffuseq-args/--diffuseq-decode given the cpu_length recipe's parts: every
    DiffuSeq decode of the side by side keeps the recipe's --length-beam, each varying only its own options."""
    recipe = recipes.get("cpu_length")
    assert recipe.train == f"{recipes.CPU.train} --length-predictor"
    for item in decodes.side_by_side([1, 3, 10], [5, 10, 20], list(decodes.DIVERSITY_SAMPLERS), recipe.early_stop):
        assert decodes.options_of(item.flags(recipe.decode))["--length-beam"] == "3"


def test_the_side_by_side_takes_its_diffuseq_options_from_the_recipe_named():
    """--diffuseq-recipe fills --diffuseq-task/--diffuseq-args/--diffuseq-decode where they are not given."""
    args = argparse.Namespace(diffuseq_recipe="cpu_length", diffuseq_task=None, diffuseq_args="--lr 1e-3",
                              diffuseq_decode=None)
    recipes.fill_from_recipe(args)
    recipe = recipes.get("cpu_length")
    assert (args.diffuseq_task, args.diffuseq_args, args.diffuseq_decode) == (recipe.task, "--lr 1e-3", recipe.decode)
    with pytest.raises(KeyError, match="unknown recipe"):
        recipes.fill_from_recipe(argparse.Namespace(diffuseq_recipe="cpu_lenght"))
