"""The benchmark scripts on tiny inputs: they import the experiment library (never scripts/), keep
their command lines, and run end to end (the ones that train or decode many times are slow)."""
import argparse
import ast
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffuseq_fairseq.experiments import recipes
from fairseq_harness import (
    DIFFUSEQ_TRAIN_FLAGS, LEVT_TRAIN_FLAGS, REPO, create_dummy_data, preprocess_data, run_cli, train_model,
)

BENCHMARKS = REPO / "benchmarks"


def load(name: str):
    """A benchmark script as a module (benchmarks/ is no package)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(args, timeout=900):
    proc = subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, OMP_NUM_THREADS="1"), cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_no_benchmark_or_test_imports_from_scripts():
    script_modules = {path.stem for path in (REPO / "scripts").glob("*.py")}
    for path in [*BENCHMARKS.rglob("*.py"), *(REPO / "tests").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                assert not {name.split(".")[0] for name in names} & script_modules, f"{path} imports from scripts/"
            if isinstance(node, ast.Call) and ast.unparse(node.func) in ("sys.path.insert", "sys.path.append"):
                assert "scripts" not in ast.unparse(node), f"{path} puts scripts/ on sys.path"


def test_lr_sweep_pairs_one_diffuseq_with_one_levt_run_on_the_recipes():
    sweep = load("lr_sweep")
    args = sweep.parse_args(["--data-bin", "bin", "--diffuseq-lrs", "1e-3,2e-3", "--levt-lrs", "7e-4", "--out", "o"])
    rounds = sweep.runs_of(args)
    assert [[name for name, _ in r] for r in rounds] == [["diffuseq_lr1e-3", "levt_lr7e-4"], ["diffuseq_lr2e-3"]]
    diffuseq, levt = rounds[0]
    assert diffuseq[1].startswith(f"{recipes.CPU.task} {recipes.CPU.train} {recipes.CPU.validate}")
    assert diffuseq[1].endswith("--lr 1e-3 --max-update 2300")  # after the recipe's --lr, so it wins
    assert levt[1].startswith(f"{recipes.LEVT_CPU.training_args()} {recipes.LEVT_CPU.validate}")
    # A recipe's training-only options (cpu_length: --length-predictor) reach the training, not the validation
    # decode's --diffuseq-task, which decodes with the recipe's own options.
    args = sweep.parse_args(["--data-bin", "bin", "--diffuseq-lrs", "1e-3", "--diffuseq-recipe", "cpu_length",
                             "--out", "o"])
    (name, flags), = sweep.runs_of(args)[0]
    assert f"{recipes.CPU.train} --length-predictor {recipes.CPU.validate}" in flags
    assert "--length-predictor" not in args.diffuseq_task
    assert args.diffuseq_decode == recipes.CPU_LENGTH.decode

def test_lr_sweep_reuses_a_side_by_side_run_as_one_of_its_runs(tmp_path):
    sweep = load("lr_sweep")
    side = tmp_path / "captions_s1"
    (side / "ckpt_levt").mkdir(parents=True)
    (side / "ckpt_levt" / "checkpoint_last.pt").write_bytes(b"weights")
    curve = [{"updates": 200, "bleu": 0.5, "loss": 9.0}, {"updates": 400, "bleu": 1.5, "loss": 8.0}]
    (side / "train.json").write_text(json.dumps({"levt": {"updates": 400, "train_seconds": 120.0,
                                                          "valid_curve": curve}}))
    name, row = sweep.reused_run(f"levt_lr1e-3={side}", tmp_path / "sweep")
    assert name == "levt_lr1e-3"
    assert (row["updates"], row["minutes"], row["best_valid_bleu"], row["best_at_updates"]) == (400, 2.0, 1.5, 400)
    assert (tmp_path / "sweep" / "ckpt_levt_lr1e-3" / "checkpoint_last.pt").read_bytes() == b"weights"
    # Listed as already run, so a sweep over the same learning rate does not train it again.
    args = sweep.parse_args(["--data-bin", "bin", "--levt-lrs", "1e-3", "--reuse", f"levt_lr1e-3={side}", "--out", "o"])
    assert args.reuse == [f"levt_lr1e-3={side}"]
    for bad in (f"transformer_lr1e-3={side}", f"diffuseq_lr1e-3={side}", "levt_lr1e-3"):
        with pytest.raises(SystemExit, match="--reuse"):
            sweep.reused_run(bad, tmp_path / "sweep2")



def test_official_parity_gives_both_sides_the_same_dropout():
    parity = load("official_parity")
    args = parity.parse_args(["--dropout", "0"])
    flags = [str(flag) for flag in parity.plugin_flags(args, parity.sizes(args, False), True, 60, 64, REPO / "o")]
    assert flags[flags.index("--dropout") + 1] == flags[flags.index("--attention-dropout") + 1] == "0.0"
    assert parity.parse_args([]).dropout == 0.1  # the official code's default


def test_official_parity_projects_only_where_the_official_model_does():
    """The official model maps embedding to stack and back through two-layer MLPs only when their sizes
    differ (hidden_dim ≠ hidden_size); the plugin must drop its own then (--identity-projections)."""
    parity = load("official_parity")
    for argv, identity in (([], False), (["--hidden", "128", "--latent", "128", "--heads", "2"], True)):
        args = parity.parse_args(argv)
        flags = [str(flag) for flag in parity.plugin_flags(args, parity.sizes(args, False), True, 60, 64, REPO / "o")]
        assert ("--identity-projections" in flags) == identity


def test_official_parity_trains_the_plugin_with_the_official_optimizer():
    parity = load("official_parity")
    for argv, optimizer in (([], "adamw"), (["--plugin-optimizer", "adam"], "adam")):
        args = parity.parse_args(argv)
        flags = [str(flag) for flag in parity.plugin_flags(args, parity.sizes(args, False), True, 60, 64, REPO / "o")]
        assert flags[flags.index("--optimizer") + 1] == optimizer


def test_lockstep_table_windows_and_weight_distances(tmp_path):
    spec = importlib.util.spec_from_file_location("lockstep_table", BENCHMARKS / "official" / "lockstep_table.py")
    table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(table)
    updates = [{"update": k, "official": {"loss": 1.0, "nll": 10.0 - k}, "plugin": {"loss": 1.0 + 0.01 * k, "anchor_nll": 10.0}}
               for k in range(1, 5)]
    updates[1]["weights"] = {"relative_l2": 2e-6, "worst_max_ratio": 3e-4, "worst_parameter": "network.output_bias"}
    path = tmp_path / "lockstep.json"
    path.write_text(json.dumps({"optimizer": "adamw", "own_draws": True, "updates": updates}))
    text = table.table([path], window=2)
    assert "--optimizer adamw, own draws" in text
    # Windows of two updates: mean losses, the largest relative difference (update 4: 0.04), mean NLLs.
    assert "| 1–2 | 1.0000 | 1.0150 | 2.0e-02 | 8.50 | 10.00 |" in text
    assert "| 3–4 | 1.0000 | 1.0350 | 4.0e-02 | 6.50 | 10.00 |" in text
    assert "| 2 | 2.00e-06 | 3.00e-04 | network.output_bias |" in text


def test_free_runs_summary_sets_the_gap_against_the_seed_spread(tmp_path):
    spec = importlib.util.spec_from_file_location("free_runs", BENCHMARKS / "official" / "free_runs.py")
    free = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(free)
    assert free.seed_list("102-104,107") == [102, 103, 104, 107]
    # Two official runs against two plugin runs: every split of four values, 4 of the 6 as extreme as the
    # observed one when the sides barely differ, 2 of 6 (the split itself and its mirror) when they separate.
    assert free.permutation_p([1.0, 2.0], [1.5, 2.5]) == pytest.approx(4 / 6)
    assert free.permutation_p([1.0, 1.1], [2.0, 2.1]) == pytest.approx(2 / 6)
    # The NLL dips, peaks, then breaks through below the threshold: the dip does not count.
    assert free.breakthrough([12, 3, 3, 3, 14, 14, 14, 9, 4, 4, 4], 3, 5.0) == 11
    assert free.breakthrough([12, 14, 14, 14], 2, 5.0) is None

    def record(folder, nll_key, mse, nll):
        folder.mkdir(parents=True)
        updates = [{"terms": {"mse": m, nll_key: n}} for m, n in zip(mse, nll)]
        (folder / "record.json").write_text(json.dumps({"updates": updates}))

    for seed, shift in ((102, 0.0), (103, 0.1)):
        record(tmp_path / f"official_{seed}", "nll", [0.5 + shift] * 4, [12, 14, 4, 4])
        record(tmp_path / f"plugin_padded_{seed}", "anchor_nll", [0.7 + shift] * 4, [12, 14, 14, 14])
    text = free.summary(tmp_path, window=2, threshold=5.0)
    assert "| 1–2 | 0.550 ± 0.071 | 0.750 ± 0.071 | 0.333 | 13.000 ± 0.000 | 13.000 ± 0.000 | 1.000 |" in text
    assert "official: 102: 3 (0.500, 4.00), 103: 3 (0.600, 4.00)" in text
    assert "plugin: 102: - (0.700, 14.00), 103: - (0.800, 14.00)" in text and "over updates 3–4" in text
    with pytest.raises(SystemExit, match="both sides"):
        free.summary(tmp_path / "official_102", window=2, threshold=5.0)
    # --uniform-output-bias reaches official_parity.py, whose plugin runs then initialise the lm_head bias as the official code.
    options = dict(size="2,128,2,512,128", updates=3, dropout=0.1, official_batches="fixed", data_bin=None, out=tmp_path)
    for uniform in (False, True):
        assert free.parity_args(argparse.Namespace(**options, uniform_output_bias=uniform), 102).uniform_output_bias is uniform
    with pytest.raises(SystemExit):  # only the plugin's runs on the official order choose their EMA
        free.main(["--side", "official", "--no-ema", "--out", str(tmp_path)])


def test_free_runs_decode_scores_every_finished_run_and_leaves_out_the_stopped(tmp_path, monkeypatch):
    free = load("official/free_runs")

    def run(name, updates, checkpoint):
        (tmp_path / name).mkdir()
        (tmp_path / name / "record.json").write_text(json.dumps({"updates": [{}] * updates}))
        if checkpoint:
            (tmp_path / name / checkpoint).write_text("weights")

    run("official_102", 300, "ema_0.99_000300.pt")
    run("official_103", 70, None)  # stopped early: the official code writes its EMA only at the end
    run("plugin_padded_102", 300, "checkpoint_last.pt")
    run("plugin_padded_103", 300, "checkpoint_last.pt")
    decoded = []
    monkeypatch.setattr(free, "first_pairs", lambda *args: tmp_path / "test_first_4")
    monkeypatch.setattr(free, "convert", lambda weights, out: {"checkpoint": out / "checkpoint.pt"})
    monkeypatch.setattr(free, "export_ema", lambda source, destination: 1)

    def plugin_decode(parity, data, model, checkpoint, sampler, flags, candidates, reuse):
        assert reuse  # a second call reads back what the first decoded
        decoded.append((model, checkpoint.name, flags, candidates))
        return {"bleu": {"official_102": 0.02, "plugin_padded_102": 0.01, "plugin_padded_103": 0.03}[model]}

    monkeypatch.setattr(free.official_parity, "plugin_decode", plugin_decode)
    text = free.decode(tmp_path, 4)
    assert [(model, name) for model, name, _, _ in decoded] == [
        ("official_102", "checkpoint.pt"), ("plugin_padded_102", "plugin_padded_102_ema.pt"),
        ("plugin_padded_103", "plugin_padded_103_ema.pt")]
    assert all("--sampler ddim --diffusion-steps 20" in flags and "--round-output" in flags and candidates == 1
               for _, _, flags, candidates in decoded)
    assert "official_103: 70 updates, no ema_0.99_000070.pt; left out" in text
    assert "| official | 102 | 300 | 2.00 |" in text and "| plugin | 103 | 300 | 3.00 |" in text
    assert "| plugin | mean ± sd | | 2.000 ± 1.414 |" in text
    assert "p 1.000" in text  # equal means (2.00 against 2.00): every split is as extreme


def test_init_statistics_marks_parameters_drawn_differently(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS / "official"))  # the script imports its neighbours
    init = load("official/init_statistics")
    torch.manual_seed(0)
    official, plugin = torch.nn.Linear(64, 32), torch.nn.Linear(64, 32)
    torch.nn.init.zeros_(plugin.bias)  # the plugin's lm_head bias against nn.Linear's U(±1/√64)
    rows = init.parameter_statistics(official)
    assert rows["weight"][1] == pytest.approx(official.weight.std().item())
    assert rows["weight"][3] == pytest.approx(torch.linalg.matrix_norm(official.weight, ord=2).item())
    text = init.table([rows], [init.parameter_statistics(plugin)]).splitlines()
    assert text[1].startswith("weight") and not text[1].endswith("<")  # same U(±1/√64) draw law, within 10 %
    assert text[2].startswith("bias") and text[2].endswith(" <")


def test_shown_floor_grid_reads_the_old_scripts_variables(monkeypatch):
    floor = load("shown_floor")
    jobs = floor.grid("none 0.95", "s1:--mbr-candidates 1;mbr10:--mbr-candidates 10")
    assert list(jobs) == ["s1_none", "mbr10_none", "s1_0.95", "mbr10_0.95"]
    assert jobs["mbr10_0.95"].endswith("--mbr-candidates 10 --shown-timestep-fraction 0.95")
    monkeypatch.setenv("FRACTIONS", "0.9")
    args = floor.parse_args(["ck.pt", "bin", "out", "--source-lang", "de", "--gen-subset", "valid"])
    assert args.fractions == "0.9" and args.generate_options == ["--source-lang", "de", "--gen-subset", "valid"]


def test_vocabulary_scoring_and_cost_model_run_small():
    proc = run([BENCHMARKS / "vocabulary_scoring.py", "--rows", "300", "--vocab", "50", "--latent", "8", "--repeats", "1"])
    assert proc.stdout.count("same words: True") == 2
    proc = run([BENCHMARKS / "cost_model.py", "--sentences", "4", "--steps", "2"])
    assert "ratio canvas old/new" in proc.stdout and "length proportionality" in proc.stdout


def test_reference_baselines_scores_copying_the_source_and_the_human_ceiling(tmp_path, capsys):
    references = [["a dog runs", "the dog is running", "a dog is running fast", "one dog runs"],
                  ["two men talk", "men are talking", "two men are talking", "a pair of men talk"]]
    paths = []
    for k in range(4):
        paths.append(tmp_path / f"test.ref{k + 1}")
        paths[-1].write_text("".join(f"{refs[k]}\n" for refs in references))
    (tmp_path / "test.src").write_text("a dog is running fast\ntwo men are talking\n")
    load("reference_baselines").main(["--refs", *map(str, paths), "--source", str(tmp_path / "test.src")])
    rows = {line[:34].strip(): line[34:].split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert list(rows) == ["copy the source, 4 references", "copy the source, 3 references", "human, 3 references"]
    assert rows["copy the source, 4 references"][0] == "100.00"  # each source is one of the references
    assert 0 < float(rows["human, 3 references"][0]) < 100


NUM_VALID = 12


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A dummy data-bin with a test split (= valid), and a tiny DiffuSeq trained on it in-process."""
    root = tmp_path_factory.mktemp("bench")
    create_dummy_data(root / "raw", num_train=200, num_valid=NUM_VALID)
    for lang in ("in", "out"):
        (root / "raw" / f"test.{lang}").write_text((root / "raw" / f"valid.{lang}").read_text())
    run_cli("preprocess", ["--source-lang", "in", "--target-lang", "out", "--trainpref", root / "raw" / "train",
                           "--validpref", root / "raw" / "valid", "--testpref", root / "raw" / "test",
                           "--joined-dictionary", "--destdir", root / "bin", "--workers", "1"]).check_returncode()
    diffuseq = train_model(root / "bin", root / "ckpt_diffuseq", DIFFUSEQ_TRAIN_FLAGS)
    return {"root": root, "bin": root / "bin", "diffuseq": diffuseq}


def test_shown_floor_through_its_old_command(tiny, tmp_path):
    """benchmarks/shown_floor.sh (now a wrapper of shown_floor.py) with its variables: one row per decode
    and fraction, self-BLEU only where there are several candidates, the later generate options (here
    the subset) win over its defaults, and foreign% counts outputs with a word no training target holds."""
    shutil.copytree(tiny["bin"], tmp_path / "bin")
    (tmp_path / "bin" / "text").mkdir()
    (tmp_path / "bin" / "text" / "train.out").write_text("a b c d e f g h i j k l m\n")  # not n … z
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "FRACTIONS": "none 0.9",
           "DECODES": "s1:--mbr-candidates 1;mbr2:--mbr-candidates 2 --nbest 2"}
    result = subprocess.run(
        ["bash", str(BENCHMARKS / "shown_floor.sh"), str(tiny["diffuseq"]), str(tmp_path / "bin"),
         str(tmp_path / "out"), "--source-lang", "in", "--target-lang", "out", "--gen-subset", "valid",
         "--required-batch-size-multiple", "1"], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    header, *lines = result.stdout.strip().splitlines()
    assert header.split() == ["decode", "BLEU", "sacre", "self-BLEU", "sent/s", "foreign%"]
    rows = {line.split()[0]: line.split()[1:] for line in lines}
    assert list(rows) == ["s1_none", "s1_0.9", "mbr2_none", "mbr2_0.9"], result.stdout
    for tag, (bleu, sacre, self_bleu, speed, foreign) in rows.items():
        assert 0 <= float(bleu) <= 100 and 0 <= float(sacre) <= 100 and float(speed) > 0
        assert (self_bleu == "-") == tag.startswith("s1"), result.stdout
        output = (tmp_path / "out" / f"gen_diffuseq_{tag}.txt").read_text()
        selected = [line.split("\t")[2] for line in output.splitlines() if line.startswith("H-")]
        selected = selected[::2] if tag.startswith("mbr2") else selected  # the first of each --nbest 2
        with_foreign = sum(any(word > "m" for word in text.split()) for text in selected)
        assert float(foreign) == pytest.approx(100 * with_foreign / NUM_VALID, abs=0.05), result.stdout
        if tag.endswith("_0.9"):  # the floor reached the decode
            log = (tmp_path / "out" / "logs" / f"gen_diffuseq_{tag}.log").read_text()
            assert "'shown_timestep_fraction': 0.9" in output + log
    assert (tmp_path / "out" / "gen_diffuseq_mbr2_0.9.txt").read_text().count("\nH-") == 2 * NUM_VALID


def test_decode_sweep_scores_each_decode_against_every_reference(tiny, tmp_path, capsys):
    """benchmarks/decode_sweep.py: one row per MODEL:TAG, decoded on the split's first N pairs (read from the
    data-bin's text/), scored against the first N lines of each reference file; a decode of an unknown model is
    refused by name."""
    shutil.copytree(tiny["bin"], tmp_path / "bin")
    (tmp_path / "bin" / "text").mkdir()
    for lang in ("in", "out"):
        shutil.copy(tiny["root"] / "raw" / f"valid.{lang}", tmp_path / "bin" / "text" / f"valid.{lang}")
    refs = [tiny["root"] / "raw" / "valid.out", tiny["root"] / "raw" / "valid.in"]  # the target, and a wrong one
    common = ["--data-bin", str(tmp_path / "bin"), "--source-lang", "in", "--target-lang", "out", "--sentences", "5",
              "--refs", *map(str, refs), "--checkpoint", f"dq={tiny['diffuseq']}", "--out", str(tmp_path / "out")]
    sweep = load("decode_sweep")
    with pytest.raises(SystemExit):
        sweep.main(common + ["--decode", "levt:eos1=--iter-decode-eos-penalty 1"])
    assert "MODEL:TAG with MODEL one of dq" in capsys.readouterr().err
    decode = "--task diffuseq --diffusion-steps 2 --required-batch-size-multiple 1"
    assert sweep.main(common + ["--decode", f"dq:s1={decode}", "--decode", f"dq:s2={decode} --mbr-candidates 2"]) == 0
    rows = json.loads((tmp_path / "out" / "sweep.json").read_text())
    assert [(row["model"], row["tag"]) for row in rows] == [("dq", "s1"), ("dq", "s2")]
    for row in rows:
        decoded = Path(row["output"]).read_text()
        assert decoded.count("\nS-") + decoded.startswith("S-") == 5
        assert 0 <= row["bleu_leave_one_out"] <= 1 and 0 <= row["bleu"] <= 1
    assert "dq         s2" in capsys.readouterr().out


def test_denoise_by_step_on_the_tiny_checkpoint(tiny, capsys):
    """benchmarks/denoise_by_step.py: one row per requested step, and at t = 0 the clean target itself is
    recovered from the input alone."""
    load("denoise_by_step").main(["--data-bin", str(tiny["bin"]), "--source-lang", "in", "--target-lang", "out",
                                  "--path", str(tiny["diffuseq"]), "--sentences", "8", "--fractions", "0,0.5,1"])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if re.match(r"\s*\d+ +\d\.\d\d ", line)]
    assert [row[0] for row in rows] == ["0", "50", "99"], out  # T = 100 in the test model
    assert rows[0][3] == "100.0%", out
    assert all(0 <= float(row[2].rstrip("%")) <= 100 for row in rows)


def test_loss_by_position_adds_up_to_the_validation_mse(tiny, capsys):
    """benchmarks/official/loss_by_position.py: on one sentence, its per-position mse over the positions the
    checkpoint's loss covers averages to the mse fairseq-validate's criterion gives (same seeded draws)."""
    split = load("official/loss_by_position")
    model, task, cfg = split.load(tiny["diffuseq"], tiny["bin"], ("in", "out"))
    task.load_dataset("valid")
    criterion = task.build_criterion(cfg.criterion)
    losses = split.position_losses(model, task, criterion, "valid", sentences=1, batch_size=1)
    covered = ["word mse", "pad mse"] + (["source mse"] if cfg.criterion.loss_positions == "all" else [])
    per_position = torch.cat([losses[kind][0] for kind in covered])
    dataset = task.datasets["valid"]
    _, _, logged = criterion(model, dataset.collater([dataset[0]]))
    assert per_position.numel() > 0 and float(per_position.mean()) == pytest.approx(float(logged["mse"]), rel=1e-5)
    split.main([str(tiny["bin"]), f"a={tiny['diffuseq']}", f"b={tiny['diffuseq']}", "--source-lang", "in",
                "--target-lang", "out", "--sentences", "4"])
    rows = [line.split("|")[3:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| a ")
            or line.startswith("| b ")]
    assert len(rows) == 10 and rows[0] == rows[1]  # all steps and four quarters, the same checkpoint twice


def test_fairseq_timed_draws_the_official_loaders_order(tiny, monkeypatch):
    """fairseq_timed.py --official-order B: the training split in the order of the official loader's
    DistributedSampler (seed 0, epoch 0), less the first batch, which the official train.py discards."""
    from diffuseq_fairseq.tasks.diffuseq import DiffuSeqTask
    monkeypatch.setattr(DiffuSeqTask, "load_dataset", DiffuSeqTask.load_dataset)  # restored after the test
    load("official/fairseq_timed").official_order(2)
    _, task, _ = load("official/loss_by_position").load(tiny["diffuseq"], tiny["bin"], ("in", "out"))
    task.load_dataset("train")
    official = torch.randperm(len(task.datasets["train"]), generator=torch.Generator().manual_seed(0)).tolist()
    assert task.datasets["train"].ordered_indices().tolist() == official[2:] + official[:2]


@pytest.mark.slow
def test_samplers_and_lr_sweep_on_tiny_models(tiny):
    root, data_bin = tiny["root"], tiny["bin"]
    levt = train_model(data_bin, root / "ckpt_levt", LEVT_TRAIN_FLAGS)
    proc = run([BENCHMARKS / "samplers.py", "--data-bin", data_bin, "--source-lang", "in", "--target-lang", "out",
                "--diffuseq", tiny["diffuseq"], "--levt", levt, "--out", root / "samplers"])
    assert "vs DDPM full T" in proc.stdout and "decoding speed DiffuSeq" in proc.stdout
    assert set(json.loads((root / "samplers" / "samplers.json").read_text())) >= {"ddpm full T (paper)", "levt"}
    references = [root / "raw" / "valid.out", root / "raw" / "valid.in"]  # the target, and a wrong one
    proc = run([BENCHMARKS / "lr_sweep.py", "--data-bin", data_bin, "--source-lang", "in", "--target-lang", "out",
                "--diffuseq-lrs", "1e-3", "--levt-lrs", "1e-3", "--diffuseq-updates", "3", "--levt-updates", "3",
                "--valid-refs", *references, "--out", root / "sweep"])
    sweep = json.loads((root / "sweep" / "sweep.json").read_text())
    assert {row["updates"] for row in sweep.values()} == {3} and "final valid BLEU" in proc.stdout
    for name, row in sweep.items():  # every model decoded the whole valid split, scored against both files
        decoded = (root / "sweep" / f"gen_{name}_valid.txt").read_text()
        assert decoded.count("\nH-") + decoded.startswith("H-") == NUM_VALID
        assert 0 <= row["valid_multi_reference"]["bleu"] <= 1
    assert "multi-ref BLEU" in proc.stdout


@pytest.mark.slow
def test_ablation_on_the_toy_task(tmp_path):
    """benchmarks/ablation.py end to end: toy data, two variants trained, decoded and tabulated."""
    out = tmp_path / "ablation"
    run([BENCHMARKS / "ablation.py", "--toy", "--max-update", "3", "--variants", "0,3", "--out", out])
    result = json.loads((out / "ablation.json").read_text())
    assert list(result) == ["base (paper)", "+ both"]
    for entry in result.values():
        assert entry["train"]["updates"] == 3
        assert 0.0 <= entry["exact_match"] <= 1.0 and "bleu" in entry["metrics"]
    assert "+ both" in (out / "ablation.txt").read_text()


def test_paper_step_cost_times_the_step_both_ways(tiny):
    proc = run([BENCHMARKS / "paper_step_cost.py", "--data-bin", tiny["bin"], "--source-lang", "in",
                "--target-lang", "out", "--batch-size", "2", "--repeats", "1"])
    assert "anchor CE with gradient (before)" in proc.stdout and "ratio before / now" in proc.stdout
