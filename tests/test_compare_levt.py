"""The side-by-side and ablation commands end to end on tiny generated data (slow: they train and decode)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from diffuseq_fairseq.dataprep.toy_task import write_toy_task

REPO = Path(__file__).resolve().parent.parent
TINY_DIFFUSEQ = (
    "--arch diffuseq_tiny --criterion diffuseq_loss --num-timesteps 100 --encoder-layers 1 "
    "--encoder-embed-dim 32 --encoder-ffn-embed-dim 64 --encoder-attention-heads 2 --latent-dim 16 "
    "--optimizer adam --lr 1e-3 --max-tokens 1000 --self-condition --anchor-loss-weight 1"
)
TINY_LEVT = (
    "--task translation_lev_bleu --arch levenshtein_transformer --criterion nat_loss --noise random_delete "
    "--share-all-embeddings --encoder-layers 1 --decoder-layers 1 --encoder-embed-dim 32 --decoder-embed-dim 32 "
    "--encoder-ffn-embed-dim 64 --decoder-ffn-embed-dim 64 --encoder-attention-heads 2 --decoder-attention-heads 2 "
    "--optimizer adam --lr 1e-3 --max-tokens 1000"
)


@pytest.mark.slow
def test_compare_levt_on_toy_data(tmp_path):
    write_toy_task(tmp_path / "raw", n_train=300, n_valid=30, n_test=30)
    out = tmp_path / "out"
    cmd = [sys.executable, str(REPO / "scripts" / "compare_levt.py"), "--trainpref", str(tmp_path / "raw" / "train"),
           "--validpref", str(tmp_path / "raw" / "valid"), "--testpref", str(tmp_path / "raw" / "test"),
           "--source-lang", "src", "--target-lang", "tgt", "--bpe-merges", "0", "--max-update", "20",
           "--test-sentences", "20", "--mbr-sizes", "1,3", "--step-counts", "5,10", "--out", str(out),
           "--diffuseq-args", TINY_DIFFUSEQ, "--levt-args", TINY_LEVT]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "decode sentences/s" in proc.stdout and "ratios:" in proc.stdout
    result = json.loads((out / "compare.json").read_text())
    for key in ("bleu", "rouge_l", "dist_1", "self_bleu", "div_4", "avg_len", "sacrebleu"):
        assert key in result["diffuseq"]["mbr"]["3"]["metrics"]
    assert result["diffuseq"]["diversity"]["dpm-solver++"]["metrics"]["self_bleu"] is not None
    assert len(result["diffuseq"]["history"]) == 20
    assert result["levt"]["train"]["updates"] == 20 and result["diffuseq"]["train"]["updates"] == 20
    assert "validation BLEU" in proc.stdout
    for name in ("diffuseq", "levt"):  # both curves carry BLEU (LevT's through translation_lev_bleu)
        curve = result[name]["train"]["valid_curve"]
        assert curve and all(0 <= point["bleu"] <= 100 and point["minutes"] >= 0 for point in curve), curve
    for name in result["plots"]:
        assert Path(name).stat().st_size > 1000

    # A DiffuSeq variant (pooled importance sampler, EMA) against the same LevT run: only DiffuSeq trains,
    # and its decodes use the EMA weights.
    variant = tmp_path / "variant"
    cmd = [sys.executable, str(REPO / "scripts" / "compare_levt.py"), "--data-bin", str(out / "data-bin"),
           "--source-lang", "src", "--target-lang", "tgt", "--max-update", "6", "--test-sentences", "20",
           "--mbr-sizes", "1", "--step-counts", "5", "--timing-repeats", "1", "--diversity-samplers", "dpm-solver++",
           "--levt-from", str(out), "--out", str(variant), "--diffuseq-args",
           TINY_DIFFUSEQ + " --timestep-sampler-bins 10 --store-ema --ema-decay 0.9",
           "--train-args", "--max-tokens 500"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "levt: reusing the run of" in proc.stdout and "training levt" not in proc.stdout
    reused = json.loads((variant / "compare.json").read_text())
    assert reused["levt"]["train"]["updates"] == 20 and reused["diffuseq"]["train"]["updates"] == 6
    assert reused["levt"]["decode"]["metrics"] == result["levt"]["decode"]["metrics"]
    variant_log = (variant / "logs" / "train_diffuseq.out").read_text()
    assert "'timestep_sampler_bins': 10" in variant_log
    assert "'max_tokens': 500" in variant_log  # --train-args wins over the recipe's --max-tokens 1000
    ema = variant / "ckpt_diffuseq" / "checkpoint_ema.pt"
    assert reused["diffuseq"]["train"]["checkpoint"] == str(ema) and ema.exists()
    assert f"loading model(s) from {ema}" in (variant / "logs" / "gen_diffuseq_mbr1.log").read_text()

    # benchmarks/mbr_batching.py on the two checkpoints just trained.
    cmd = [sys.executable, str(REPO / "benchmarks" / "mbr_batching.py"), "--data-bin", str(out / "data-bin"),
           "--source-lang", "src", "--target-lang", "tgt", "--diffuseq", str(out / "ckpt_diffuseq" / "checkpoint_last.pt"),
           "--levt", str(out / "ckpt_levt" / "checkpoint_last.pt"), "--test-sentences", "12", "--batch-sizes", "1,12",
           "--candidates", "3", "--repeats", "1", "--out", str(tmp_path / "batching")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads((tmp_path / "batching" / "mbr_batching.json").read_text())
    assert [row["batch_size"] for row in rows] == [1, 12]
    for row in rows:
        for key in ("S1", "S3", "S1_stop", "S3_stop", "levt"):
            assert row[key]["sentences_per_s"] > 0 and 0 <= row[key]["bleu"] <= 100, row
    assert "time ratio" in proc.stdout


@pytest.mark.slow
def test_ablation_on_the_toy_task(tmp_path):
    """benchmarks/ablation.py end to end: toy data, two variants trained, decoded and tabulated."""
    out = tmp_path / "ablation"
    cmd = [sys.executable, str(REPO / "benchmarks" / "ablation.py"), "--toy", "--max-update", "3",
           "--variants", "0,3", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((out / "ablation.json").read_text())
    assert list(result) == ["base (paper)", "+ both"]
    for entry in result.values():
        assert entry["train"]["updates"] == 3
        assert 0.0 <= entry["exact_match"] <= 1.0 and "bleu" in entry["metrics"]
    assert "+ both" in (out / "ablation.txt").read_text()
