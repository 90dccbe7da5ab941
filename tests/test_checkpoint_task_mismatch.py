"""A checkpoint decoded under a task that cannot use its model stops with one line naming the
checkpoint, the model it holds and the task it needs (before: AttributeError num_timesteps for a
LevT checkpoint under --task diffuseq, ConfigAttributeError max_total_len for a DiffuSeq
checkpoint under --task translation_lev)."""
import argparse
from pathlib import Path

import pytest
from fairseq_harness import (
    DIFFUSEQ_GENERATE_FLAGS, DIFFUSEQ_TRAIN_FLAGS, LEVT_GENERATE_FLAGS, LEVT_TRAIN_FLAGS, create_dummy_data,
    preprocess_data, run_cli, train_model,
)

from diffuseq_fairseq.checkpoints import CheckpointTaskError, check_task_matches, saved_task_and_arch


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("task_mismatch")
    create_dummy_data(root / "raw", num_train=100, num_valid=8)
    preprocess_data(root / "raw", root / "bin")
    diffuseq = train_model(root / "bin", root / "diffuseq", DIFFUSEQ_TRAIN_FLAGS + ["--max-epoch", "1"])
    levt = train_model(root / "bin", root / "levt", LEVT_TRAIN_FLAGS)
    return root / "bin", diffuseq, levt


def _generate_error(data_bin: Path, checkpoint: Path, flags) -> str:
    done = run_cli("generate", [data_bin, "--path", checkpoint, *flags])
    assert done.returncode != 0, done.stdout[-2000:]
    return done.stderr.strip().splitlines()[-1]


def test_levt_checkpoint_under_diffuseq_task(trained):
    data_bin, _, levt = trained
    line = _generate_error(data_bin, levt, DIFFUSEQ_GENERATE_FLAGS)
    assert line == (
        f"diffuseq_fairseq.checkpoints.CheckpointTaskError: checkpoint {levt} holds a levenshtein_transformer "
        "model (not DiffuSeq, trained with --task translation_lev), which --task diffuseq cannot load: "
        "run with --task translation_lev"
    )


def test_diffuseq_checkpoint_under_translation_lev_task(trained):
    data_bin, diffuseq, _ = trained
    line = _generate_error(data_bin, diffuseq, LEVT_GENERATE_FLAGS)
    assert line == (
        f"diffuseq_fairseq.checkpoints.CheckpointTaskError: checkpoint {diffuseq} holds a DiffuSeq model "
        "(--arch diffuseq_tiny, trained with --task diffuseq), which --task translation_lev cannot load: "
        "run with --task diffuseq"
    )


def _task(name):
    from fairseq.tasks import TASK_REGISTRY

    return TASK_REGISTRY[name].__new__(TASK_REGISTRY[name])  # only its class is looked at


def test_legacy_args_checkpoints_and_compatible_tasks():
    """Legacy checkpoints carry an argparse Namespace; a LevT model loads under a subclass of its
    task (the plugin's translation_lev_bleu); an unknown architecture is left to fairseq."""
    legacy = {"args": argparse.Namespace(task="translation_lev", arch="levenshtein_transformer"), "cfg": None}
    assert saved_task_and_arch(legacy) == ("translation_lev", "levenshtein_transformer")
    check_task_matches("levt.pt", legacy, _task("translation_lev_bleu"))
    with pytest.raises(CheckpointTaskError, match="^checkpoint levt.pt holds a levenshtein_transformer model"):
        check_task_matches("levt.pt", legacy, _task("diffuseq"))
    diffuseq = {"args": None, "cfg": {"task": {"_name": "diffuseq"}, "model": {"_name": "diffuseq_base"}}}
    check_task_matches("dq.pt", diffuseq, _task("diffuseq"))
    with pytest.raises(CheckpointTaskError, match="which --task translation cannot load: run with --task diffuseq$"):
        check_task_matches("dq.pt", diffuseq, _task("translation"))
    unknown = {"args": argparse.Namespace(task="mine", arch="not_registered_anywhere")}
    check_task_matches("x.pt", unknown, _task("diffuseq"))
