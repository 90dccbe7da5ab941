"""The side by side (scripts/compare_levt.py) end to end: on finished decodes written here (fast:
only the report, the multi-reference scoring and the plots run), and on tiny generated data (slow:
both models train and decode), with four reference files per sentence."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffuseq_fairseq.dataprep.toy_task import valid_targets, write_toy_task
from diffuseq_fairseq.experiments.decodes import SECTION_OPTIONS, options_of
from diffuseq_fairseq.experiments.recipes import CPU, TEST_TINY, TEST_TINY_LEVT

REPO = Path(__file__).resolve().parent.parent
COMPARE = [sys.executable, str(REPO / "scripts" / "compare_levt.py")]
TINY_DIFFUSEQ = f"{TEST_TINY.train} --self-condition --anchor-loss-weight 1"
TINY_LEVT = f"--task translation_lev_bleu {TEST_TINY_LEVT.train}"


def run(cmd, timeout=900):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "DEBUG:matplotlib" not in proc.stdout + proc.stderr
    return proc


def strict_json(path: Path):
    """compare.json as a strict parser reads it: NaN or Infinity is an error."""
    def refuse(constant):
        raise ValueError(f"{path}: {constant} is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def write_references(split_dir: Path, split: str, sources):
    """The caption data-bin's layout: SPLIT.ref1..4 (the toy task's four rephrasings) and SPLIT.src."""
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / f"{split}.src").write_text("".join(f"{source}\n" for source in sources))
    paths = []
    for k in range(4):
        path = split_dir / f"{split}.ref{k + 1}"
        path.write_text("".join(f"{valid_targets(source)[k]}\n" for source in sources))
        paths.append(str(path))
    return paths


# --- the report on finished decodes ------------------------------------------------------------------

SOURCES = ["the young woman pulls a green rabbit", "the yellow teacher watches a quiet boy near the street",
           "the boy carries a goat"]
TRAIN_LOG = (
    '2026-12-01 10:00:00 | INFO | fairseq_cli.train | {name} starts\n'
    '2026-12-01 10:01:00 | INFO | train_inner | {{"epoch": 1, "loss": "2.0", "wps": "900.0", "num_updates": "2"}}\n'
    '2026-12-01 10:02:00 | INFO | valid | {{"epoch": 1, "valid_loss": "1.5", "valid_num_updates": "4"}}\n'
    '2026-12-01 10:02:00 | INFO | train | {{"epoch": 1, "train_loss": "1.9", "train_wps": "1000.0", "train_num_updates": "4"}}\n'
)


def fake_decode(out: Path, name: str, tag: str, candidates: int, history_steps: int = 0):
    """A fairseq-generate output of the toy sentences (hypotheses: rephrasings, or the source itself) and its logs."""
    lines = []
    for i, source in enumerate(SOURCES):
        targets = valid_targets(source)
        lines += [f"S-{i}\t{source}", f"T-{i}\t{targets[0]}"]
        for c in range(candidates):
            hypothesis = targets[(i + c) % 4] if c < 3 else source
            lines += [f"H-{i}\t-0.5\t{hypothesis}", f"D-{i}\t-0.5\t{hypothesis}", f"P-{i}\t-0.5"]
            lines += [f"E-{i}_{step}\t{hypothesis}" for step in range(history_steps)]
    (out / f"gen_{name}_{tag}.txt").write_text("\n".join(lines) + "\n")
    log = out / "logs" / f"gen_{name}_{tag}.log"
    log.write_text("INFO | fairseq_cli.generate | Translated 3 sentences (30 tokens) in 0.5s (6.00 sentences/s, 60 tokens/s)\n")
    log.with_suffix(".rss").write_text("204800")


def test_report_of_finished_decodes_with_four_references(tmp_path):
    """--skip-training --reuse-decodes on written outputs: the 20-step point of Fig. 6 is the |S|=1
    decode, the multi-reference block scores both models, copying the source and the human ceiling,
    compare.json is strict JSON (a decode without its process timing is null), and the plots are the
    ones the results can draw (no validation BLEU: no Fig. 7)."""
    out = tmp_path / "out"
    (out / "logs").mkdir(parents=True)
    for name in ("diffuseq", "levt"):
        (out / "logs" / f"train_{name}.out").write_text(TRAIN_LOG.format(name=name))
    fake_decode(out, "levt", "default", 1)
    for tag, candidates in (("mbr1", 1), ("mbr3", 3), ("stop1", 1), ("stop10", 3), ("steps10", 1)):
        fake_decode(out, "diffuseq", tag, candidates)
    fake_decode(out, "diffuseq", "div_dpm-solver++", 3, history_steps=20)
    refs = write_references(tmp_path / "refs", "test", SOURCES)
    proc = run([*COMPARE, "--data-bin", str(tmp_path / "unused"), "--max-update", "4", "--skip-training",
                "--reuse-decodes", "--mbr-sizes", "1,3", "--step-counts", "10,20", "--diversity-samplers",
                "dpm-solver++", "--refs", *refs, "--out", str(out)], timeout=300)
    result = strict_json(out / "compare.json")
    diffuseq = result["diffuseq"]
    assert diffuseq["steps"]["20"] == diffuseq["mbr"]["1"] and not (out / "gen_diffuseq_steps20.txt").exists()
    assert diffuseq["mbr"]["1"]["speed"]["process_seconds"] is None  # read back: no process timing
    base = options_of(CPU.decode)
    for section, entries in ((section, diffuseq[section]) for section in SECTION_OPTIONS):
        for entry in entries.values():  # every decode keeps the base options its section does not vary
            options = options_of(entry["options"])
            assert all(options[key] == value for key, value in base.items() if key not in SECTION_OPTIONS[section])
    multi = result["multi_reference"]
    assert multi["references_per_source"] == 4 and multi["split"] == "test"
    assert set(multi["diffuseq"]) == {"1", "3"} and multi["files"] == refs
    assert multi["levt"]["all"]["bleu"] == pytest.approx(1.0)  # LevT's outputs here are one of the references
    assert multi["baselines"]["copy_source"]["all"]["bleu"] < multi["levt"]["all"]["bleu"]
    assert 0 < multi["baselines"]["human"]["leave_one_out"]["bleu"] < 1
    assert "multi-reference (test split, 4 references" in proc.stdout and "copy the source" in proc.stdout
    assert "human (1 reference vs the other 3)" in proc.stdout
    assert [Path(p).name for p in result["plots"]] == [
        "fig3_bleu_vs_candidates.png", "fig4_quality_diversity.png", "fig5_reverse_process.png", "fig6_bleu_vs_time.png"]
    assert "wrote" in proc.stdout and "and 4 plots" in proc.stdout


def test_mbr_sizes_without_one_is_refused_before_anything_runs(tmp_path):
    proc = subprocess.run([*COMPARE, "--data-bin", str(tmp_path), "--max-update", "2", "--mbr-sizes", "10",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--mbr-sizes 10: include 1" in proc.stderr
    assert not (tmp_path / "out").exists()


# --- end to end on tiny generated data (slow) ----------------------------------------------------------


@pytest.mark.slow
def test_compare_levt_on_toy_data(tmp_path):
    write_toy_task(tmp_path / "raw", n_train=300, n_valid=30, n_test=30)
    sources = {split: (tmp_path / "raw" / f"{split}.src").read_text().splitlines() for split in ("valid", "test")}
    refs = {split: write_references(tmp_path / "refs", split, lines) for split, lines in sources.items()}
    out = tmp_path / "out"
    proc = run([*COMPARE, "--trainpref", str(tmp_path / "raw" / "train"),
                "--validpref", str(tmp_path / "raw" / "valid"), "--testpref", str(tmp_path / "raw" / "test"),
                "--source-lang", "src", "--target-lang", "tgt", "--bpe-merges", "0", "--max-update", "20",
                "--test-sentences", "20", "--mbr-sizes", "1,3", "--step-counts", "5,20", "--timing-repeats", "1",
                "--refs", *refs["test"], "--out", str(out), "--diffuseq-args", TINY_DIFFUSEQ, "--levt-args", TINY_LEVT])
    assert "decode sentences/s" in proc.stdout and "ratios:" in proc.stdout
    result = strict_json(out / "compare.json")
    for key in ("bleu", "rouge_l", "dist_1", "self_bleu", "div_4", "avg_len", "sacrebleu"):
        assert key in result["diffuseq"]["mbr"]["3"]["metrics"]
    assert result["diffuseq"]["diversity"]["dpm-solver++"]["metrics"]["self_bleu"] is not None
    assert result["diffuseq"]["steps"]["20"] == result["diffuseq"]["mbr"]["1"]
    assert len(result["diffuseq"]["history"]) == 20
    assert result["levt"]["train"]["updates"] == 20 and result["diffuseq"]["train"]["updates"] == 20
    multi = result["multi_reference"]
    assert multi["references_per_source"] == 4 and set(multi["diffuseq"]) == {"1", "3"}
    assert 0 <= multi["levt"]["leave_one_out"]["bleu"] <= 1 and "copy_source" in multi["baselines"]
    assert "multi-reference (test split, 4 references" in proc.stdout
    assert "validation BLEU" in proc.stdout
    for name in ("diffuseq", "levt"):  # both curves carry BLEU (LevT's through translation_lev_bleu)
        curve = result[name]["train"]["valid_curve"]
        assert curve and all(0 <= point["bleu"] <= 100 and point["minutes"] >= 0 for point in curve), curve
    assert len(result["plots"]) == 5
    for name in result["plots"]:
        assert Path(name).stat().st_size > 1000

    # Decoding options chosen on the validation split, with its references: the test set is not decoded again.
    proc = run([*COMPARE, "--data-bin", str(out / "data-bin"), "--max-update", "20", "--skip-training",
                "--test-sentences", "20", "--mbr-sizes", "1", "--step-counts", "20", "--timing-repeats", "1",
                "--diversity-samplers", "dpm-solver++", "--valid-refs", *refs["valid"], "--out", str(out)])
    valid = strict_json(out / "valid_compare.json")
    assert valid["multi_reference"]["split"] == "valid"
    decoded = (out / "gen_diffuseq_valid_mbr1.txt").read_text().splitlines()
    assert {line.split("\t")[1] for line in decoded if line.startswith("S-")} == set(sources["valid"][:20])
    assert all(Path(name).name.startswith("valid_") for name in valid["plots"])
    assert strict_json(out / "compare.json") == result  # the test split's results stay as they were

    # A DiffuSeq variant (pooled importance sampler, EMA) against the same LevT run: only DiffuSeq trains,
    # and its decodes use the EMA weights.
    variant = tmp_path / "variant"
    proc = run([*COMPARE, "--data-bin", str(out / "data-bin"), "--source-lang", "src", "--target-lang", "tgt",
                "--max-update", "6", "--test-sentences", "20", "--mbr-sizes", "1", "--step-counts", "5",
                "--timing-repeats", "1", "--diversity-samplers", "dpm-solver++", "--levt-from", str(out),
                "--out", str(variant), "--no-valid-bleu", "--diffuseq-args",
                TINY_DIFFUSEQ + " --timestep-sampler-bins 10 --store-ema --ema-decay 0.9", "--train-args", "--max-tokens 500",
                "--diffuseq-lr", "3e-4"])
    assert "levt: reusing the run of" in proc.stdout and "training levt" not in proc.stdout
    reused = strict_json(variant / "compare.json")
    assert reused["levt"]["train"]["updates"] == 20 and reused["diffuseq"]["train"]["updates"] == 6
    assert reused["levt"]["decode"]["metrics"] == result["levt"]["decode"]["metrics"]
    variant_log = (variant / "logs" / "train_diffuseq.out").read_text()
    assert "'timestep_sampler_bins': 10" in variant_log
    assert "'max_tokens': 500" in variant_log  # --train-args wins over the recipe's --max-tokens 1000
    assert "'lr': [0.0003]" in variant_log  # --diffuseq-lr wins over --diffuseq-args' rate
    ema = variant / "ckpt_diffuseq" / "checkpoint_ema.pt"
    assert reused["diffuseq"]["train"]["checkpoint"] == str(ema) and ema.exists()
    assert f"loading model(s) from {ema}" in (variant / "logs" / "gen_diffuseq_mbr1.log").read_text()
    # Under --no-valid-bleu DiffuSeq has no validation BLEU, but LevT's reused run does: Fig. 7 still has a curve.
    assert any("fig7" in name for name in reused["plots"])

    # Both runs taken from earlier --outs (as from a learning-rate sweep's chosen runs): nothing trains, no budget needed.
    proc = run([*COMPARE, "--data-bin", str(out / "data-bin"), "--source-lang", "src", "--target-lang", "tgt",
                "--test-sentences", "20", "--mbr-sizes", "1", "--step-counts", "5", "--timing-repeats", "1",
                "--diversity-samplers", "dpm-solver++", "--diffuseq-from", str(variant), "--levt-from", str(out),
                "--out", str(tmp_path / "both"), "--no-valid-bleu"])
    assert "training diffuseq" not in proc.stdout and "training levt" not in proc.stdout
    assert "diffuseq: reusing the run of" in proc.stdout
    both = strict_json(tmp_path / "both" / "compare.json")
    assert (both["diffuseq"]["train"]["updates"], both["levt"]["train"]["updates"]) == (6, 20)

    # benchmarks/mbr_batching.py on the two checkpoints just trained.
    cmd = [sys.executable, str(REPO / "benchmarks" / "mbr_batching.py"), "--data-bin", str(out / "data-bin"),
           "--source-lang", "src", "--target-lang", "tgt", "--diffuseq", str(out / "ckpt_diffuseq" / "checkpoint_last.pt"),
           "--levt", str(out / "ckpt_levt" / "checkpoint_last.pt"), "--test-sentences", "12", "--batch-sizes", "1,12",
           "--candidates", "3", "--repeats", "1", "--out", str(tmp_path / "batching")]
    proc = run(cmd)
    rows = json.loads((tmp_path / "batching" / "mbr_batching.json").read_text())
    assert [row["batch_size"] for row in rows] == [1, 12]
    for row in rows:
        for key in ("S1", "S3", "S1_stop", "S3_stop", "levt"):
            assert row[key]["sentences_per_s"] > 0 and 0 <= row[key]["bleu"] <= 100, row
    assert "time ratio" in proc.stdout


@pytest.mark.slow
def test_compare_levt_cuts_a_lone_valid_jsonl(tmp_path):
    """A folder holding only valid.jsonl (as the QQP download does) is cut by --split-valid N,M, which
    compare_levt passes to diffuseq-prepare, and the side by side runs on the three splits."""
    write_toy_task(tmp_path / "raw", n_train=0, n_valid=120, n_test=0)
    jsonl = tmp_path / "jsonl"
    jsonl.mkdir()
    pairs = zip(*((tmp_path / "raw" / f"valid.{side}").read_text().splitlines() for side in ("src", "tgt")))
    (jsonl / "valid.jsonl").write_text("".join(json.dumps({"src": s, "trg": t}) + "\n" for s, t in pairs))
    out = tmp_path / "out"
    run([*COMPARE, "--jsonl-dir", str(jsonl), "--split-valid", "20,10", "--bpe-merges", "0", "--max-update", "2",
         "--test-sentences", "10", "--mbr-sizes", "1", "--step-counts", "5", "--timing-repeats", "1",
         "--no-valid-bleu", "--diversity-samplers", "dpm-solver++", "--out", str(out),
         "--diffuseq-args", TINY_DIFFUSEQ, "--levt-args", TINY_LEVT])
    preprocess_log = (out / "data-bin" / "preprocess.log").read_text()
    assert "90 sents" in preprocess_log and "20 sents" in preprocess_log and "10 sents" in preprocess_log
    assert strict_json(out / "compare.json")["diffuseq"]["train"]["updates"] == 2
