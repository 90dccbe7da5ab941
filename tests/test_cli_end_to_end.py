"""End-to-end fairseq CLI runs of the plugin: preprocess → train → validate → generate → interactive,
every sampler, the DiffuSeq-v2 options, seeding, dictionary and checkpoint errors, and fairseq's
Levenshtein Transformer through the same harness as a reference for the iterative-decoding output."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from fairseq import checkpoint_utils

from fairseq_harness import (
    DIFFUSEQ_DECODE_FLAGS, DIFFUSEQ_GENERATE_FLAGS, DIFFUSEQ_TRAIN_FLAGS, FULL_BATCHES, LEVT_DECODE_FLAGS,
    LEVT_GENERATE_FLAGS, LEVT_TRAIN_FLAGS, USER_DIR, create_dummy_data, generate_main, interactive_main,
    REPO, load_generator, parse_output, preprocess_data, run_cli, train_model, validate_model,
)

NUM_VALID, STEPS, NBEST = 20, 10, 2
LONG_LINE = " ".join("abcdefghij" * 50)  # 500 tokens, longer than --max-total-len 128
INTERACTIVE_LINES = ["h e l l o", "", LONG_LINE]


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    create_dummy_data(root / "raw", num_valid=NUM_VALID)
    preprocess_data(root / "raw", root / "bin")
    return root / "bin"


@pytest.fixture(scope="module")
def checkpoint(data_bin, tmp_path_factory) -> Path:
    return train_model(data_bin, tmp_path_factory.mktemp("ckpt"), DIFFUSEQ_TRAIN_FLAGS)


@pytest.fixture(scope="module")
def canvas_checkpoint(data_bin, tmp_path_factory) -> Path:
    """One epoch with the canvas rule 1.2·|x| + 4."""
    flags = DIFFUSEQ_TRAIN_FLAGS + ["--canvas-len-a", "1.2", "--canvas-len-b", "4", "--max-epoch", "1"]
    return train_model(data_bin, tmp_path_factory.mktemp("canvas"), flags)


def generate(data_bin, checkpoint, *flags) -> str:
    """Generate the valid subset with the shared DiffuSeq decoding flags plus ``flags``."""
    return generate_main(data_bin, checkpoint, DIFFUSEQ_GENERATE_FLAGS + list(flags))


def assert_hypotheses(out: str, nbest: int = NBEST) -> dict:
    """Every valid sentence has S, T and ``nbest`` H/D/P lines without padding; returns the parsed output."""
    lines = parse_output(out)
    ids = {str(i) for i in range(NUM_VALID)}
    for kind in "STHDP":
        assert set(lines[kind]) == ids, f"{kind}- lines"
    for sample_id in ids:
        assert len(lines["H"][sample_id]) == nbest
        for score, text in lines["H"][sample_id]:
            assert float(score) <= 0
            assert "<pad>" not in text
    return lines


def steps_per_hypothesis(lines: dict) -> dict:
    """{id: [I- step count per hypothesis]}, checked against the E- history (one line per step)."""
    history = {}
    for key, rows in lines["E"].items():
        sample_id, step = key.split("_")
        history.setdefault(sample_id, []).extend([int(step)] * len(rows))
        assert all("<pad>" not in text for (text,) in rows)
    steps = {sample_id: [int(n) for (n,) in rows] for sample_id, rows in lines["I"].items()}
    assert set(steps) == set(history) == {str(i) for i in range(NUM_VALID)}
    for sample_id, counts in steps.items():
        # fairseq prints the I- line and the E- history for each of the --nbest hypotheses.
        assert sorted(history[sample_id]) == sorted(step for n in counts for step in range(n))
    return steps


def test_train_validate_generate_interactive(data_bin, checkpoint):
    log = validate_model(
        data_bin, checkpoint,
        ["--user-dir", USER_DIR, "--task", "diffuseq", "--valid-subset", "valid", "--max-tokens", "1000",
         "--cpu", "--num-workers", "0", "--no-progress-bar", *FULL_BATCHES],
    )
    loss = re.search(r"valid on 'valid' subset \| loss ([0-9.]+)", log)
    assert loss and float(loss.group(1)) > 0, log

    lines = assert_hypotheses(generate(data_bin, checkpoint))
    assert all(counts == [STEPS] * NBEST for counts in steps_per_hypothesis(lines).values())

    out = interactive_main(data_bin, checkpoint, INTERACTIVE_LINES, DIFFUSEQ_DECODE_FLAGS)
    lines = parse_output(out)
    # fairseq-interactive does not skip the empty line: it is source id 1, encoded as "</s>" alone,
    # and gets hypotheses like any other line; the 500-token line is cut to fit --max-total-len.
    assert sorted(lines["S"]) == ["0", "1", "2"]
    assert lines["S"]["0"] == [["h e l l o"]]
    assert lines["S"]["1"] == [[""]]
    for sample_id in ("0", "1", "2"):
        assert len(lines["H"][sample_id]) == NBEST
        assert all("<pad>" not in text for _, text in lines["H"][sample_id])
    assert len(lines["S"]["2"][0][0].split()) <= 126


@pytest.mark.parametrize(
    "flags, steps",
    [
        (["--sampler", "ddpm"], STEPS),
        (["--sampler", "ddim", "--ddim-eta", "0.5"], STEPS),
        (["--sampler", "dpm-solver++", "--step-spacing", "logsnr"], STEPS),
        (["--rounding", "none"], STEPS),
        (["--rounding", "logits"], STEPS),
        (["--output-vocab", "target"], STEPS),
    ],
    ids=["ddpm", "ddim-eta0.5", "dpm-solver++-logsnr", "rounding-none", "logits-rounding", "target-vocab"],
)
def test_samplers(data_bin, checkpoint, flags, steps):
    lines = assert_hypotheses(generate(data_bin, checkpoint, *flags))
    assert all(counts == [steps] * NBEST for counts in steps_per_hypothesis(lines).values())


def test_early_stop(data_bin, checkpoint):
    lines = assert_hypotheses(generate(data_bin, checkpoint, "--stop-when-stable", "1"))
    counts = [n for per_sentence in steps_per_hypothesis(lines).values() for n in per_sentence]
    assert all(2 <= n <= STEPS for n in counts)  # a candidate stops at the earliest after 2 steps


def test_v2_options_train_and_generate(data_bin, tmp_path):
    flags = DIFFUSEQ_TRAIN_FLAGS + [
        "--max-epoch", "1", "--self-condition", "--learned-mean-embed", "--absorb-rate", "0.5",
        "--loss-positions", "all", "--encode-source-once", "--timestep-sampler-bins", "10",
        "--min-timestep-fraction", "0.5",
    ]
    checkpoint = train_model(data_bin, tmp_path / "ckpt", flags)
    saved = torch.load(checkpoint)["cfg"]
    assert saved["model"]["self_condition"] and saved["model"]["learned_mean_embed"]
    assert saved["model"]["encode_source_once"]
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(checkpoint)])
    criterion = task.build_criterion(cfg.criterion)
    sampler = criterion._sampler(models[0].network, training=True)
    assert sampler.bins == 10 and sampler.first_step == models[0].network.cfg.num_timesteps // 2
    # Every step trained is at or above the clipping point; the ones below never entered the sampler.
    assert models[0].network.timestep_loss_count[:sampler.first_step].sum() == 0
    assert models[0].network.timestep_loss_count[sampler.first_step:].sum() > 0
    assert_hypotheses(generate(data_bin, checkpoint))


def test_ema_trains_validates_and_exports_a_checkpoint_that_generates(data_bin, tmp_path):
    """fairseq's --store-ema (the paper's recipe averages with 0.9999): training steps the EMA over the
    importance sampler's state too, validation measures the EMA, and diffuseq-export-ema writes a
    checkpoint whose weights are the EMA's, which fairseq-generate decodes."""
    flags = DIFFUSEQ_TRAIN_FLAGS + ["--max-epoch", "1", "--store-ema", "--ema-decay", "0.9"]
    checkpoint = train_model(data_bin, tmp_path / "ckpt", flags)
    state = torch.load(checkpoint)
    ema = state["extra_state"]["ema"]
    assert set(ema) == set(state["model"])
    assert not torch.equal(ema["network.embed_tokens.weight"], state["model"]["network.embed_tokens.weight"])
    assert state["model"]["network.timestep_loss_count"].sum() > 0 and ema["network.timestep_loss_count"].sum() > 0
    exported = tmp_path / "ema.pt"
    done = subprocess.run([sys.executable, "-m", "diffuseq_fairseq.export_ema", str(checkpoint), str(exported)],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    saved = torch.load(exported)
    assert all(torch.equal(saved["model"][key], value) for key, value in ema.items())
    assert "ema" not in saved["extra_state"]
    assert_hypotheses(generate(data_bin, exported))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(checkpoint.read_bytes()[:1000])
    for source, message in ((exported, f"{exported} holds no EMA weights"),
                            (truncated, f"checkpoint {truncated} is truncated or corrupted")):
        refused = subprocess.run([sys.executable, "-m", "diffuseq_fairseq.export_ema", str(source), str(tmp_path / "x.pt")],
                                 capture_output=True, text=True, cwd=REPO)
        assert refused.returncode == 1 and message in refused.stderr, refused.stderr


def test_shown_timestep_fraction_is_checked_and_converted_to_a_step():
    from diffuseq_fairseq.tasks.diffuseq import DiffuSeqTask

    assert DiffuSeqTask.shown_step_floor(None, 2000) == 0  # the checkpoint's own clipping only
    assert DiffuSeqTask.shown_step_floor(0.99, 2000) == 1980
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="--shown-timestep-fraction must be in"):
            DiffuSeqTask.shown_step_floor(bad, 2000)


def test_validation_measures_the_ema_copy_when_there_is_one(monkeypatch):
    from fairseq.tasks.translation import TranslationTask
    from diffuseq_fairseq.tasks.diffuseq import DiffuSeqTask

    validated = []
    monkeypatch.setattr(TranslationTask, "valid_step", lambda self, sample, model, criterion: validated.append(model))
    task, trained, ema = object.__new__(DiffuSeqTask), torch.nn.Dropout(), torch.nn.Dropout()
    assert DiffuSeqTask.uses_ema  # what makes fairseq's trainer pass ema_model
    task.valid_step(None, trained, None, ema_model=ema)
    task.valid_step(None, trained, None)
    assert validated == [ema, trained] and not ema.training


def test_shipped_recipe_trains_validates_with_bleu_and_generates(data_bin, tmp_path):
    """The options the Multi30k CPU recipe ships (anchor loss, no rounding term, embedding norm, source
    encoded once, target positions restarted, noise-scale clipping, label smoothing, a tighter canvas), with validation
    BLEU decoded by DPM-Solver++ as scripts/compare_levt.py runs it. Decoding takes the canvas rule
    from the checkpoint."""
    flags = DIFFUSEQ_TRAIN_FLAGS + ["--canvas-len-a", "1.2", "--canvas-len-b", "4"] + [
        "--max-epoch", "1", "--anchor-loss-weight", "1", "--rounding-loss-weight", "0", "--embed-norm",
        "--encode-source-once", "--target-positions", "restart", "--min-timestep-fraction", "0.8",
        "--label-smoothing", "0.1",
        "--eval-bleu", "--eval-bleu-args", '{"sampler": "dpm-solver++", "diffusion_steps": 5}',
    ]
    checkpoint = train_model(data_bin, tmp_path / "ckpt", flags)
    saved = torch.load(checkpoint)["cfg"]
    assert saved["model"]["embed_norm"] and saved["model"]["encode_source_once"]
    assert saved["model"]["target_positions"] == "restart" and saved["criterion"]["rounding_loss_weight"] == 0
    assert saved["model"]["min_timestep_fraction"] == 0.8 and saved["criterion"]["label_smoothing"] == 0.1
    assert (saved["model"]["canvas_len_a"], saved["model"]["canvas_len_b"]) == (1.2, 4)
    assert_hypotheses(generate(data_bin, checkpoint, "--sampler", "dpm-solver++"))
    assert_hypotheses(generate(data_bin, checkpoint, "--sampler", "dpm-solver++", "--step-range", "trained"))
    generator = load_generator(data_bin, checkpoint, DIFFUSEQ_DECODE_FLAGS + ["--step-range", "trained"])
    assert generator.lowest_step == round(0.8 * saved["model"]["num_timesteps"])
    assert_hypotheses(generate(data_bin, checkpoint, "--sampler", "dpm-solver++", "--shown-timestep-fraction", "0.99"))
    generator = load_generator(data_bin, checkpoint, DIFFUSEQ_DECODE_FLAGS + ["--shown-timestep-fraction", "0.99"])
    assert generator.shown_step_floor == round(0.99 * saved["model"]["num_timesteps"])


@pytest.mark.parametrize("flags, canvas", [
    ([], 16),  # the checkpoint's rule: ceil(1.2·10 + 4)
    (["--canvas-len-a", "1.5"], 19),  # a given again wins, b still from the checkpoint
    (["--canvas-len-a", "2", "--canvas-len-b", "0"], 20),
])
def test_decoding_reuses_the_trained_canvas_rule(data_bin, canvas_checkpoint, flags, canvas):
    generator = load_generator(data_bin, canvas_checkpoint, DIFFUSEQ_DECODE_FLAGS + flags)
    assert generator.canvas_length(torch.tensor([10])) == canvas


def test_checkpoint_from_before_the_stored_rule_takes_its_training_task_rule(data_bin, canvas_checkpoint, tmp_path):
    """Older checkpoints have no canvas fields in their model config: the interpolation then reads
    the task options saved beside it, which are the training values."""
    state = torch.load(canvas_checkpoint)
    del state["cfg"]["model"]["canvas_len_a"], state["cfg"]["model"]["canvas_len_b"]
    torch.save(state, tmp_path / "old.pt")
    assert load_generator(data_bin, tmp_path / "old.pt", DIFFUSEQ_DECODE_FLAGS).canvas_length(torch.tensor([10])) == 16


def test_default_canvas_rule_without_flags(data_bin, checkpoint):
    """Trained without canvas flags (saved as None): 1.5·|x| + 5, in training and decoding."""
    assert torch.load(checkpoint)["cfg"]["model"]["canvas_len_a"] is None
    assert load_generator(data_bin, checkpoint, DIFFUSEQ_DECODE_FLAGS).canvas_length(torch.tensor([10])) == 20


def test_seed_determinism(data_bin, checkpoint):
    def decoded(seed):
        out = generate(data_bin, checkpoint, "--sampler", "ddpm", "--seed", str(seed))
        return [line for line in out.splitlines() if line[:2] in ("H-", "D-", "P-", "E-")]

    first = decoded(1)
    assert first == decoded(1)
    assert first != decoded(2)


def test_non_joined_dictionary_is_refused(tmp_path):
    create_dummy_data(tmp_path / "raw", num_train=20, num_valid=5)
    target = tmp_path / "raw" / "train.out"
    target.write_text(target.read_text().upper())  # otherwise both sides have the same letter counts
    preprocess_data(tmp_path / "raw", tmp_path / "bin", joined=False)
    with pytest.raises(ValueError, match="joined dictionary"):
        train_model(tmp_path / "bin", tmp_path / "ckpt", DIFFUSEQ_TRAIN_FLAGS)


class _Pwn:
    """Unpickling this runs a shell command (what a malicious checkpoint would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _generate_cli(data_bin, path):
    return run_cli("generate", [data_bin, "--path", path] + DIFFUSEQ_GENERATE_FLAGS)


def test_malicious_checkpoint_is_refused(data_bin, checkpoint, tmp_path):
    marker = tmp_path / "pwned"
    state = torch.load(checkpoint, weights_only=False)
    state["payload"] = _Pwn(marker)
    torch.save(state, tmp_path / "evil.pt")
    torch.load(tmp_path / "evil.pt", weights_only=False)  # the payload is live: an unsafe load runs it
    assert marker.exists()
    marker.unlink()

    result = _generate_cli(data_bin, tmp_path / "evil.pt")
    assert result.returncode != 0
    assert "refusing to load checkpoint" in result.stderr, result.stderr[-3000:]
    assert not marker.exists()


def test_truncated_checkpoint_is_reported(data_bin, checkpoint, tmp_path):
    data = checkpoint.read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])

    result = _generate_cli(data_bin, tmp_path / "half.pt")
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("diffuseq_fairseq.checkpoints.CheckpointError:"), result.stderr[-3000:]
    assert "truncated or corrupted" in last and "half.pt" in last


def test_levenshtein_transformer_twin(data_bin, tmp_path):
    """fairseq's LevT, trained under the plugin's translation_lev_bleu (validation BLEU, as
    compare_levt.py runs it) and decoded with fairseq's own translation_lev."""
    pytest.importorskip("fairseq.libnat")
    eval_bleu = ["--eval-bleu", "--eval-bleu-args", '{"iter_decode_max_iter": 3}']
    train_flags = [("translation_lev_bleu" if flag == "translation_lev" else flag) for flag in LEVT_TRAIN_FLAGS]
    checkpoint = train_model(data_bin, tmp_path / "ckpt", train_flags + eval_bleu + FULL_BATCHES)
    log = validate_model(
        data_bin, checkpoint,
        ["--user-dir", USER_DIR, "--task", "translation_lev_bleu", *eval_bleu, "--max-tokens", "1000",
         "--cpu", "--num-workers", "0", "--no-progress-bar", *FULL_BATCHES],
    )
    bleu = re.search(r"valid on 'valid' subset \| .*\| bleu ([0-9.]+)", log)
    assert bleu and 0 <= float(bleu.group(1)) <= 100, log

    lines = parse_output(generate_main(data_bin, checkpoint, LEVT_GENERATE_FLAGS))
    ids = {str(i) for i in range(NUM_VALID)}
    assert set(lines["H"]) == set(lines["I"]) == ids
    assert {key.split("_")[0] for key in lines["E"]} == ids
    for sample_id in ids:
        assert len(lines["H"][sample_id]) == 1
        assert 0 <= int(lines["I"][sample_id][0][0]) <= 3  # --iter-decode-max-iter

    lines = parse_output(interactive_main(data_bin, checkpoint, ["h e l l o"], LEVT_DECODE_FLAGS))
    assert lines["S"]["0"] == [["h e l l o"]]
    assert len(lines["H"]["0"]) == 1
