"""Sequence-level knowledge distillation: parsing the teacher's output (every pair kept, in order,
errors naming the file and line) and scripts/distill.sh end to end on a tiny data-bin."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fairseq.data import data_utils, indexed_dataset

from diffuseq_fairseq.dataprep.distill import indexed_dataset_size, read_translations
from fairseq_harness import REPO, create_dummy_data, run_cli

# fairseq-generate prints sentences in batch order, not id order, and --nbest 2 prints two H- lines.
GENERATE_OUTPUT = (
    "S-1\tb a\nT-1\ta b\nH-1\t-0.1\ta b\nD-1\t-0.1\ta b\nP-1\t-0.1 -0.1\nH-1\t-0.9\tb b\n"
    "S-0\tc\nH-0\t-0.2\tc c\n"
    "Generate train with beam=4: BLEU4 = 10.00\n"
)


def test_translations_come_back_in_training_order_with_the_best_hypothesis(tmp_path):
    path = tmp_path / "gen.txt"
    path.write_text(GENERATE_OUTPUT)
    assert read_translations(path, 2) == (["c", "b a"], ["c c", "a b"])


@pytest.mark.parametrize("text, n_pairs, message", [
    (GENERATE_OUTPUT, 3, "no hypothesis for 1 of 3 sentences (first ids [2])"),
    (GENERATE_OUTPUT + "H-x\t-0.1\ta\n", 2, ":10: malformed H- line"),
    (GENERATE_OUTPUT + "S-0\tc\n", 2, ":10: sentence 0 translated twice"),
    (GENERATE_OUTPUT + "S-7\tc\n", 2, ":10: sentence id 7 but the set has 2"),
    ("H-0\t-0.2\tc c\n", 1, "no S- line for sentences [0]"),
])
def test_a_lost_or_garbled_pair_is_an_error_naming_the_file(tmp_path, text, n_pairs, message):
    path = tmp_path / "gen.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match="gen.txt") as error:
        read_translations(path, n_pairs)
    assert message in str(error.value)


def test_a_file_that_is_not_an_mmap_index_is_refused(tmp_path):
    path = tmp_path / "train.de-en.de.idx"
    path.write_bytes(b"TNTIDX\x00\x00" + bytes(40))
    with pytest.raises(ValueError, match="not a fairseq mmap index"):
        indexed_dataset_size(path)


def test_distill_script_end_to_end(tmp_path):
    """A teacher trained for seconds: every training source kept byte for byte with the teacher's
    translation as its target; valid and test are the original data-bin's; counts agree everywhere."""
    raw, data_bin, dest = tmp_path / "raw", tmp_path / "bin", tmp_path / "kd"
    create_dummy_data(raw, num_train=120, num_valid=12)
    for lang in ("in", "out"):
        (raw / f"test.{lang}").write_text((raw / f"valid.{lang}").read_text())
    run_cli("preprocess", [
        "--source-lang", "in", "--target-lang", "out", "--trainpref", str(raw / "train"),
        "--validpref", str(raw / "valid"), "--testpref", str(raw / "test"), "--joined-dictionary",
        "--destdir", str(data_bin), "--workers", "1"]).check_returncode()
    env = {**os.environ, "DATA_BIN": str(data_bin), "SRC": "in", "TGT": "out", "DEST": str(dest),
           "TEACHER_MINUTES": "0.02", "THREADS": "1", "BEAM": "2", "GEN_ARGS": "--max-len-b 12"}
    result = subprocess.run(["bash", str(REPO / "scripts" / "distill.sh")], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "120 distilled pairs" in result.stdout and "BLEU4" in (dest / "teacher" / "test_bleu.txt").read_text()

    assert (dest / "train.in-out.in.bin").read_bytes() == (data_bin / "train.in-out.in.bin").read_bytes()
    for split in ("valid", "test"):
        for lang in ("in", "out"):
            for suffix in ("bin", "idx"):
                name = f"{split}.in-out.{lang}.{suffix}"
                assert (dest / name).read_bytes() == (data_bin / name).read_bytes(), name
    hypotheses = (dest / "text" / "train.out").read_text().splitlines()
    targets = data_utils.load_indexed_dataset(str(dest / "train.in-out.out"), None)
    assert indexed_dataset_size(dest / "train.in-out.out.idx") == len(targets) == len(hypotheses) == 120
    dictionary_size = len((data_bin / "dict.out.txt").read_text().splitlines())
    assert all(len(t) == len(h.split()) + 1 for t, h in zip(targets, hypotheses))  # + </s>
    assert max(int(t.max()) for t in targets) < dictionary_size + 4  # the original dictionary

    again = subprocess.run(["bash", str(REPO / "scripts" / "distill.sh")], env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "already distilled" in again.stdout  # no second teacher
