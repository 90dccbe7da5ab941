"""The plugin against the official DiffuSeq code run on this machine (slow suite; issue #26).

Builds the official venv (scripts/official_env.sh, minutes the first time), trains small models
with the official code (v1 with a whitespace vocabulary, v2 with its soft absorbing state and discrete noise, v1 with
a WordPiece vocabulary, v1 without projections and with another step-embedding size; seq_len 128,
T 2000), converts them with diffuseq-convert-official, and
checks that the converted model gives the official x̂0 and loss terms for the same tokens, t and
noise (1e-5) and the official gradients of one training step on a padded batch (1e-4 relative),
that fairseq-generate decodes it, and that diffuseq-eval gives the official
scripts/eval_seq2seq.py figures (1e-6) on official sampler outputs and on edge cases.

The reverse process, step for step (a small official v1 model, T 100): given the official start and
per-step noise, the plugin's generator gives the words and states of the official p_sample_loop; the
official DDIM and DPM-Solver rules run on the plugin's network give the official ddim_sample_loop's
and v2 DPM-Solver script's words (compare_reverse.py says where the plugin's own samplers differ).

Training side by side: benchmarks/official_parity.py runs end to end on tiny settings (the toy task); and
update for update, the plugin replaying an official run's batches and draws through fairseq's Trainer keeps the
official losses and weights (lockstep_official.py, lockstep_plugin.py).
"""
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from fairseq import options
from fairseq.data import Dictionary
from fairseq_cli import preprocess

from diffuseq_fairseq.convert_official import convert
from fairseq_harness import DIFFUSEQ_DECODE_FLAGS, FULL_BATCHES, generate_main, parse_output

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks" / "official"
sys.path.insert(0, str(HERE))
import compare_dump  # noqa: E402
import compare_gradients  # noqa: E402
import compare_metrics  # noqa: E402
import compare_reverse  # noqa: E402
import toy_data  # noqa: E402

pytestmark = pytest.mark.slow
RUNS = {  # name: (official version, train_tiny.py vocabulary options; {data} is the toy folder)
    "v1": ("v1", ["--vocab", "{data}/vocab.txt"]),
    "v2": ("v2", ["--vocab", "{data}/vocab.txt", "--learned-mean-embed", "--denoise-rate", "0.5"]),
    "bert": ("v1", ["--vocab", "bert", "--bert-vocab", "{data}/wordpiece/vocab.txt"]),
    # hidden_dim = the stack's size (no projections) and hidden_t_dim != hidden_dim
    "sizes": ("v1", ["--vocab", "{data}/vocab.txt", "--latent", "64", "--hidden", "64", "--time-dim", "16"]),
}
SPECIALS = {"[START]", "[END]", "[PAD]", "[CLS]", "[SEP]"}


def run(*command) -> str:
    done = subprocess.run([str(c) for c in command], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        raise AssertionError(f"{' '.join(map(str, command))} failed:\n{done.stderr[-3000:]}")
    return done.stdout


@pytest.fixture(scope="module")
def official_python():
    run("bash", REPO / "scripts" / "official_env.sh")
    return REPO / ".official-venv" / "bin" / "python"


@pytest.fixture(scope="module")
def official_runs(official_python, tmp_path_factory):
    """official_runs(name): trained, converted and dumped once per module."""
    data = toy_data.write_toy_jsonl(tmp_path_factory.mktemp("toy"))
    done = {}

    def get(name):
        if name not in done:
            version, vocabulary = RUNS[name]
            out = tmp_path_factory.mktemp(name)
            run(official_python, HERE / "train_tiny.py", "--version", version, "--data-dir", data, "--out", out / "run",
                "--steps", "6", "--seq-len", "128", "--diffusion-steps", "2000",
                *[option.format(data=data) for option in vocabulary])
            checkpoint = out / "run" / "ema_0.9999_000006.pt"
            convert(checkpoint, out / "converted")
            run(official_python, HERE / "dump_tensors.py", "--version", version, "--checkpoint", checkpoint,
                "--out", out / "dump.pt")
            done[name] = SimpleNamespace(checkpoint=checkpoint, converted=out / "converted", dump=out / "dump.pt")
        return done[name]

    return get


@pytest.mark.parametrize("name", RUNS)
def test_denoiser_and_loss_terms_equal_the_official_code(official_runs, name):
    converted = official_runs(name)
    dump = torch.load(converted.dump, weights_only=True)
    network, dictionary = compare_dump.load_converted(converted.converted / "checkpoint.pt")
    with torch.no_grad():
        gaps = compare_dump.compare(dump, network, dictionary)
    assert dump["input_ids"].shape[1] == 128 and {0, 1999} <= set(dump["t"].tolist())
    assert len(gaps) == 8  # schedule, x̂0 twice, four terms, the total
    assert {quantity: gap for quantity, (gap, _) in gaps.items() if gap > 1e-5} == {}


@pytest.mark.parametrize("name", ["v1", "bert", "sizes"])
def test_one_training_step_has_the_official_gradients(official_python, official_runs, name, tmp_path):
    """The official TrainLoop loss on a batch of six pairs of different lengths, and its gradient for every
    parameter, against the plugin's on the same pairs as one right-padded batch (v2 aside: its loss has a
    regulariser the plugin has not)."""
    converted = official_runs(name)
    run(official_python, HERE / "dump_gradients.py", "--version", RUNS[name][0], "--checkpoint", converted.checkpoint,
        "--out", tmp_path / "gradients")
    batch, loss, gaps = compare_gradients.compare(tmp_path / "gradients", converted.converted / "checkpoint.pt")
    assert len(set((batch["input_mask"] == 0).sum(1).tolist())) > 1  # the batch really is padded
    assert len(gaps) == sum(1 for _ in compare_dump.load_converted(converted.converted / "checkpoint.pt")[0].parameters())
    assert compare_gradients.worst_relative(batch, loss, gaps) <= 1e-4


def test_dropout_acts_as_the_official_dropout(official_python, official_runs, tmp_path):
    """In train mode at the same rate, the step's mean gradient over dropout draws is the official one up to
    dropout noise (r about 1), and dropout shakes the gradient as hard on both sides."""
    converted = official_runs("v1")
    run(official_python, HERE / "dump_gradients.py", "--version", "v1", "--checkpoint", converted.checkpoint,
        "--out", tmp_path / "gradients", "--dropout", "0.3", "--masks", "16")
    batch, losses, plugin, official = compare_gradients.dropout_halves(tmp_path / "gradients",
                                                                       converted.converted / "checkpoint.pt")
    noisy = [name for name in plugin[0] if compare_gradients.half_noise(official, [name]) > 0]
    assert len(losses) == 16 and len(noisy) >= len(plugin[0]) - 1  # only the output bias escapes dropout
    assert compare_gradients.noise_ratio(plugin, official, noisy) < 1.5
    assert 0.6 < compare_gradients.half_noise(plugin, noisy) / compare_gradients.half_noise(official, noisy) < 1.6
    # the same test fails when dropout differs: the plugin without it has no noise and a biased mean
    network, dictionary = compare_dump.load_converted(converted.converted / "checkpoint.pt")
    _, clean = compare_gradients.plugin_step(network, dictionary, batch)
    without = [{name: gradient.double() for name, gradient in clean.items()}] * 2
    assert compare_gradients.half_noise(without, noisy) == 0
    assert compare_gradients.noise_ratio(without, official, noisy) > 1.5


@pytest.mark.parametrize("name", ["v1", "bert"])
def test_fairseq_generate_decodes_the_converted_checkpoint(official_runs, name, tmp_path):
    """Text as the official pipeline tokenized it (WordPiece pieces for the bert run) through
    fairseq-preprocess with the converted dictionaries, then fairseq-generate."""
    converted = official_runs(name)
    dump = torch.load(converted.dump, weights_only=True)
    dictionary = Dictionary.load(str(converted.converted / "dict.src.txt"))
    for side, positions in (("src", lambda mask: mask == 0), ("tgt", lambda mask: mask == 1)):
        lines = [" ".join(dump["tokens"][i] for i in ids[positions(mask)].tolist() if dump["tokens"][i] not in SPECIALS)
                 for ids, mask in zip(dump["input_ids"], dump["input_mask"])]
        assert all(dictionary.unk() not in dictionary.encode_line(line, add_if_not_exist=False) for line in lines)
        (tmp_path / f"test.{side}").write_text("".join(line + "\n" for line in lines))
    dictionaries = ["--srcdict", converted.converted / "dict.src.txt", "--tgtdict", converted.converted / "dict.tgt.txt"]
    preprocess.main(options.get_preprocessing_parser().parse_args([str(a) for a in [
        "--source-lang", "src", "--target-lang", "tgt", "--testpref", tmp_path / "test", "--destdir",
        tmp_path / "bin", "--workers", "1", *dictionaries]]))
    output = generate_main(tmp_path / "bin", converted.converted / "checkpoint.pt", DIFFUSEQ_DECODE_FLAGS + FULL_BATCHES
                           + ["--gen-subset", "test", "--batch-size", "6"])
    hypotheses = parse_output(output)["H"]
    assert len(hypotheses) == dump["input_ids"].shape[0]
    vocabulary = set(dump["tokens"]) | {"<unk>"}
    assert all(set(fields[-1].split()) <= vocabulary for hyps in hypotheses.values() for fields in hyps)


def test_diffuseq_eval_gives_the_official_metrics(official_python, official_runs, tmp_path):
    decoded = tmp_path / "decoded"
    run(official_python, HERE / "decode.py", "--checkpoint", official_runs("bert").checkpoint, "--seeds", "101", "102",
        "103", "--step", "100", "--out", decoded)
    for folder in (decoded, compare_metrics.write_cases(tmp_path / "cases")):
        paths = sorted(folder.glob("*json"))
        assert len(paths) == 3
        rows = compare_metrics.compare(compare_metrics.official_figures(folder, official_python),
                                       compare_metrics.plugin_figures(paths))
        assert len(rows) == 3 * len(compare_metrics.QUALITY) + len(compare_metrics.DIVERSITY)
        assert compare_metrics.unexplained(rows, 1e-6) == [], rows


@pytest.fixture(scope="module")
def reverse_dumps(official_python, tmp_path_factory):
    """{v1, v2: (dump of the official samplers, converted model, task)} for one small trained v1 model."""
    out = tmp_path_factory.mktemp("reverse")
    data = toy_data.write_toy_jsonl(out / "toy")
    run(official_python, HERE / "train_tiny.py", "--version", "v1", "--data-dir", data, "--vocab", data / "vocab.txt",
        "--out", out / "run", "--steps", "30", "--seq-len", "64", "--diffusion-steps", "100", "--ema-rate", "0.9")
    checkpoint = out / "run" / "ema_0.9_000030.pt"
    convert(checkpoint, out / "converted")
    model, task = compare_reverse.load_converted(out / "converted" / "checkpoint.pt")
    dumps = {}
    for version in ("v1", "v2"):
        run(official_python, HERE / "reverse_dump.py", "--version", version, "--checkpoint", checkpoint,
            "--examples", "8", "--ddim-steps", "10", "--solver-steps", "8", "--out", out / f"{version}.pt")
        dumps[version] = torch.load(out / f"{version}.pt", weights_only=True)
    return dumps, model, task


def test_reverse_processes_equal_the_official_samplers_step_for_step(reverse_dumps):
    dumps, model, task = reverse_dumps
    rows = {row[0].split(":")[0]: row for version in ("v1", "v2") for row in compare_reverse.compare(dumps[version], model, task)}
    assert len(rows) == 5
    assert compare_reverse.failures(rows.values(), 1e-3) == []
    ddpm = rows["DDPM, all steps"]
    assert dumps["v1"]["samplers"]["ddpm"]["randn_calls"] == 100 and len(dumps["v1"]["samplers"]["ddpm"]["x"]) == 100
    assert ddpm[2] and ddpm[3]["same_rows"] == ddpm[3]["same_words"] == 8
    assert max(ddpm[4].values()) < 1e-5  # x_t, x̂0 at every one of the 100 steps, and the final rounded x̂0
    for name in ("DDIM", "DPM-Solver"):  # the official rules on the plugin's network: every word, every step
        exact = rows[name]
        assert exact[2] and exact[3]["same_positions"] == exact[3]["positions"]
        assert len(exact[4]) == 4
    # The plugin's own DDIM and DPM-Solver++ are other algorithms: reported, not required equal.
    assert not rows["DDIM, 10 steps"][2] and not rows["DPM-Solver++, 8 steps"][2]
    assert "differs by design" in compare_reverse.report(dumps["v2"], [rows["DPM-Solver++, 8 steps"]])


def test_training_side_by_side_runs_end_to_end_on_tiny_settings(official_python, tmp_path):
    """benchmarks/official_parity.py on the toy task: the official code and both plugin runs (padded, batch-tight)
    train with the same settings, diffuseq_base speed rows, the loss terms side by side, and every decode."""
    from diffuseq_fairseq.dataprep import prepare

    data = toy_data.write_toy_jsonl(tmp_path / "toy")
    prepare.main(["--jsonl-dir", str(data), "--destdir", str(tmp_path / "bin"), "--workers", "1"])
    results = tmp_path / "parity.txt"
    run(sys.executable, REPO / "benchmarks" / "official_parity.py", "--data-bin", tmp_path / "bin", "--source-lang", "src",
        "--target-lang", "tgt", "--out", tmp_path / "out", "--results", results, "--updates", "8", "--batch-size", "8",
        "--layers", "2", "--hidden", "64", "--heads", "4", "--ffn", "128", "--latent", "32", "--diffusion-steps", "100",
        "--seq-len", "64", "--base-updates", "3", "--base-batch-size", "2", "--warmup-updates", "1", "--loss-window", "4",
        "--test-sentences", "6", "--mbr", "2", "--decode-steps", "5", "--solver-steps", "4")
    report = results.read_text()
    figures = json.loads((tmp_path / "out" / "official_parity.json").read_text())
    assert set(figures["speed"]) == {f"{side}{size}" for side in ("official", "plugin_padded", "plugin_tight")
                                     for size in ("", "_base")} | {"official_seed103"}
    assert all(s["tokens_per_second"] > 0 and s["timed_updates"] == (6 if "base" not in name else 1)
               for name, s in figures["speed"].items())
    # Same sentences per update on both sides, so about the same real tokens per update.
    official, padded = figures["speed"]["official"], figures["speed"]["plugin_padded"]
    assert abs(padded["tokens_per_update"] / official["tokens_per_update"] - 1) < 0.5
    for name in ("official", "official_seed103", "plugin_padded"):
        updates = figures["records"][name]["updates"]
        assert [set(u["terms"]) >= {"loss", "mse", "weighted_loss"} for u in updates] == [True] * 8
    decodes = figures["decodes"]
    # Three models decoded by the plugin at |S| = 1, MBR and DPM-Solver, the second official seed at |S| = 1, and the
    # official model by the official decoder at |S| = 1, MBR and DPM-Solver.
    assert len(decodes) == 3 * 3 + 1 + 3 and all(0 <= d["bleu"] <= 1 and d["seconds"] >= 0 for d in decodes)
    assert {d["decoder"] for d in decodes} == {"plugin (fairseq-generate)", "official (sample_seq2seq.py)",
                                               "official (sample_seq2seq.py, eval_seq2seq.py --mbr)",
                                               "official v2 (sample_seq2seq_dpmSolver.py)"}
    assert "## Loss terms" in report and report.count("nll (logged)") == 2 and "ratio" in report


def test_training_follows_the_official_code_update_for_update(official_python, tmp_path):
    """lockstep_official.py trains the official v1 code with its draws handed in (no dropout); the plugin replays the
    same batches and draws through fairseq's Trainer from the converted initial weights. With --optimizer adamw
    (the converted config's) the losses stay equal and the weights within float drift of the official ones; with
    fairseq's CPU Adam (ε before the bias correction) the first update already moves them apart."""
    import lockstep_plugin

    data = toy_data.write_toy_jsonl(tmp_path / "toy")
    official = tmp_path / "official"
    run(official_python, HERE / "lockstep_official.py", "--data-dir", data, "--vocab", data / "vocab.txt", "--out",
        official, "--steps", "6", "--snapshots", "0,1,3,6", "--dropout", "0", "--seq-len", "64", "--batch-size", "8")
    adamw = lockstep_plugin.replay(official, tmp_path / "adamw", "adamw")
    assert [row["update"] for row in adamw] == list(range(1, 7))
    assert all(row["lr_plugin"] == pytest.approx(row["lr_official"], rel=1e-9) for row in adamw)
    assert all(row["plugin"]["loss"] == pytest.approx(row["official"]["loss"], rel=1e-5) for row in adamw)
    assert all(row["plugin"]["anchor_nll"] == pytest.approx(row["official"]["nll"], rel=1e-5) for row in adamw)
    compared = [row["weights"] for row in adamw if "weights" in row]
    assert len(compared) == 3 and max(w["relative_l2"] for w in compared) < 1e-3
    adam = lockstep_plugin.replay(official, tmp_path / "adam", "adam")
    assert adam[0]["plugin"]["loss"] == pytest.approx(adam[0]["official"]["loss"], rel=1e-6)  # same start
    assert adam[0]["weights"]["relative_l2"] > 1e-2


def test_first_updates_of_a_longer_schedule_and_the_plugins_own_draws(official_python, tmp_path):
    """--schedule-steps records the first updates of a longer run (its learning rate decays over all of them) and
    the plugin replays them exactly; and the plugin's own training draws give per-draw losses distributed as under
    the lockstep rule's draws (draw_gradients.py)."""
    import draw_gradients
    import lockstep_plugin

    data = toy_data.write_toy_jsonl(tmp_path / "toy")
    official = tmp_path / "official"
    run(official_python, HERE / "lockstep_official.py", "--data-dir", data, "--vocab", data / "vocab.txt", "--out",
        official, "--steps", "4", "--schedule-steps", "20", "--snapshots", "0,2,4", "--dropout", "0", "--seq-len",
        "64", "--batch-size", "8")
    record = torch.load(official / "lockstep.pt", weights_only=False)
    assert record["learning_steps"] == 20 and len(record["updates"]) == 4
    lrs = [update["lr"] for update in record["updates"]]
    assert lrs[3] == pytest.approx(lrs[0] * (1 - 3 / 20), rel=1e-9)
    replayed = lockstep_plugin.replay(official, tmp_path / "replay")
    assert all(row["lr_plugin"] == pytest.approx(row["lr_official"], rel=1e-9) for row in replayed)
    assert max(row["weights"]["relative_l2"] for row in replayed if "weights" in row) < 1e-3
    # On a batch of 8 rare steps near t = 0 swing the gradient statistics; the per-draw losses stay comparable.
    result = draw_gradients.compare(official, 2, 128, 5000)
    assert len(result["losses"]["own"]) == 128 and len(draw_gradients.noisy_parameters(result)) >= 10
    assert draw_gradients.ks_distance(result["losses"]["rule"], result["losses"]["own"]) < 1.95 * (2 / 128) ** 0.5
    assert draw_gradients.ks_distance([0.1, 0.2], [0.1, 0.2]) == 0 and draw_gradients.ks_distance([1, 2], [3, 4]) == 1


def test_official_lockstep_runs_draw_their_dropout_masks_from_the_dropout_seed(official_python, tmp_path):
    """lockstep_official.py --dropout-seed: runs from one initialisation and one stream of draws differ only by their
    dropout masks, which the seed decides (breakthrough_groups.py sets such runs against the plugin's)."""
    data = toy_data.write_toy_jsonl(tmp_path / "toy")

    def losses(name, dropout_seed):
        out = tmp_path / name
        run(official_python, HERE / "lockstep_official.py", "--data-dir", data, "--vocab", data / "vocab.txt", "--out",
            out, "--steps", "3", "--snapshots", "0", "--dropout", "0.1", "--dropout-seed", str(dropout_seed),
            "--seq-len", "64", "--batch-size", "8")
        record = torch.load(out / "lockstep.pt", weights_only=False)
        assert record["dropout_seed"] == dropout_seed
        return [update["terms"]["loss"] for update in record["updates"]], torch.load(out / "model000000.pt")

    first, init_a = losses("a", 7)
    again, _ = losses("b", 7)
    other, init_c = losses("c", 8)
    assert first == again and first != other
    assert all(torch.equal(init_a[key], init_c[key]) for key in init_a)  # --seed alone sets the initialisation
