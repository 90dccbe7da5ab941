"""Tests for diffuseq_fairseq.dataprep: toy task, input validation, and the prepare CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diffuseq_fairseq.dataprep import holdout, lengths, prepare, toy_task
from diffuseq_fairseq.dataprep.validate import DataError, read_diffuseq_jsonl, read_parallel


# ---------------------------------------------------------------- toy task


def _read(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_toy_task_is_deterministic(tmp_path: Path) -> None:
    counts = toy_task.write_toy_task(tmp_path / "a", n_train=200, n_valid=20, n_test=20, seed=3)
    toy_task.write_toy_task(tmp_path / "b", n_train=200, n_valid=20, n_test=20, seed=3)
    toy_task.write_toy_task(tmp_path / "c", n_train=200, n_valid=20, n_test=20, seed=4)
    assert counts == {"train": 200, "valid": 20, "test": 20}
    for name in ("train.src", "train.tgt", "valid.src", "valid.tgt", "test.src", "test.tgt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert _read(tmp_path / "a" / "train.src") != _read(tmp_path / "c" / "train.src")


def test_toy_task_shape(tmp_path: Path) -> None:
    toy_task.write_toy_task(tmp_path, n_train=500, n_valid=50, n_test=50, seed=1)
    vocab = set(toy_task.vocabulary())
    assert 60 <= len(vocab) <= 150
    sources = {split: _read(tmp_path / f"{split}.src") for split in ("train", "valid", "test")}
    # Splits never share a source, so valid/test measure generalization.
    assert not set(sources["train"]) & set(sources["test"])
    assert not set(sources["valid"]) & set(sources["test"])
    for split in ("train", "valid", "test"):
        for src, tgt in zip(sources[split], _read(tmp_path / f"{split}.tgt")):
            assert 5 <= len(src.split()) <= 15 and 5 <= len(tgt.split()) <= 15
            assert set(src.split()) | set(tgt.split()) <= vocab
            assert tgt in toy_task.valid_targets(src)


def test_toy_task_has_several_valid_targets(tmp_path: Path) -> None:
    toy_task.write_toy_task(tmp_path, n_train=400, n_valid=0, n_test=0, seed=1)
    sources, targets = _read(tmp_path / "train.src"), _read(tmp_path / "train.tgt")
    for src in sources[:50]:
        assert len(set(toy_task.valid_targets(src))) >= 3
    # Training targets really use every template, so a model sees a multi-modal distribution.
    used = {toy_task.valid_targets(s).index(t) for s, t in zip(sources, targets)}
    assert used == {0, 1, 2, 3}


def test_toy_task_exact_match(tmp_path: Path) -> None:
    toy_task.write_toy_task(tmp_path, n_train=0, n_valid=0, n_test=300, seed=2)
    sources, targets = _read(tmp_path / "test.src"), _read(tmp_path / "test.tgt")
    assert toy_task.exact_match_accuracy(sources, targets) == 1.0
    assert toy_task.exact_match_accuracy(sources, sources) == 0.0  # copying the source is wrong
    other = [toy_task.valid_targets(s)[-1] for s in sources]  # any valid paraphrase counts
    assert toy_task.exact_match_accuracy(sources, other) == 1.0
    with pytest.raises(ValueError, match="not a toy-task source"):
        toy_task.valid_targets("a cat sees the dog")


def test_toy_task_cli(tmp_path: Path) -> None:
    out = tmp_path / "toy"
    subprocess.run(
        [sys.executable, "-m", "diffuseq_fairseq.dataprep.toy_task", str(out), "--n-train", "30",
         "--n-valid", "5", "--n-test", "5"],
        check=True, capture_output=True, cwd=Path(__file__).resolve().parents[1],
    )
    assert len(_read(out / "train.src")) == 30 and len(_read(out / "test.tgt")) == 5


# ---------------------------------------------------------------- validation


def _write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def test_read_parallel_ok_and_normalizes(tmp_path: Path) -> None:
    src = _write(tmp_path / "a.src", "\ufeffein  haus\r\nzwei\thunde\n")
    tgt = _write(tmp_path / "a.tgt", "a house\ntwo dogs")  # no final newline
    pairs, stats = read_parallel(src, tgt)
    assert pairs == [("ein haus", "a house"), ("zwei hunde", "two dogs")]
    assert (stats.read, stats.kept, stats.skipped_empty) == (2, 2, 0)


def test_read_parallel_line_count_mismatch(tmp_path: Path) -> None:
    src = _write(tmp_path / "x.de", "a\nb\nc\n")
    tgt = _write(tmp_path / "x.en", "a\nb\n")
    with pytest.raises(DataError) as err:
        read_parallel(src, tgt)
    msg = str(err.value)
    assert "x.de" in msg and "3 lines" in msg and "x.en" in msg and "2 lines" in msg


def test_read_parallel_invalid_utf8(tmp_path: Path) -> None:
    src = _write(tmp_path / "bad.de", b"gut\nschlecht \xff\xfe\n")
    tgt = _write(tmp_path / "bad.en", "good\nbad\n")
    with pytest.raises(DataError, match=r"bad\.de:2: invalid UTF-8"):
        read_parallel(src, tgt)


def test_read_parallel_empty_line(tmp_path: Path) -> None:
    src = _write(tmp_path / "e.de", "eins\nzwei\ndrei\nvier\n")
    tgt = _write(tmp_path / "e.en", "one\n   \nthree\n\n")
    with pytest.raises(DataError, match=r"e\.en:2: empty line"):
        read_parallel(src, tgt)
    pairs, stats = read_parallel(src, tgt, on_empty="skip")
    assert pairs == [("eins", "one"), ("drei", "three")]
    assert (stats.read, stats.kept, stats.skipped_empty) == (4, 2, 2)
    assert stats.empty_lines == [2, 4]
    assert stats.kept_lines == [1, 3]
    assert "skipped 2" in stats.summary() and "2, 4" in stats.summary()
    with pytest.raises(ValueError, match="on_empty"):
        read_parallel(src, tgt, on_empty="ignore")  # type: ignore[arg-type]


def _jsonl(path: Path, lines: list[str], newline: str = "\n") -> Path:
    return _write(path, "".join(line + newline for line in lines))


GOOD = json.dumps({"src": " what is it ? ", "trg": "what's that?"})


def test_read_jsonl_ok_with_crlf_and_key_order(tmp_path: Path) -> None:
    other = json.dumps({"trg": "b", "src": "a", "id": 3})
    path = _jsonl(tmp_path / "ok.jsonl", [GOOD, other], "\r\n")
    pairs, stats = read_diffuseq_jsonl(path)
    assert pairs == [("what is it ?", "what's that?"), ("a", "b")]
    assert stats.kept == 2


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ('{"src": "a", "trg": ', "invalid JSON"),
        ('["a", "b"]', "expected a JSON object, got list"),
        ('{"src": "a"}', "missing key 'trg'"),
        ('{"trg": "b"}', "missing key 'src'"),
        ('{"src": "a", "trg": 5}', "'trg' must be a string, got int"),
        ('{"src": null, "trg": "b"}', "'src' must be a string, got NoneType"),
        ('{"src": "  ", "trg": "b"}', "empty src"),
        ("", "blank line"),
    ],
)
def test_read_jsonl_errors_name_file_and_line(tmp_path: Path, bad_line: str, message: str) -> None:
    path = _jsonl(tmp_path / "broken.jsonl", [GOOD, GOOD, bad_line, GOOD])
    with pytest.raises(DataError) as err:
        read_diffuseq_jsonl(path)
    assert str(err.value).startswith(f"{path}:3: ")
    assert message in str(err.value)


def test_read_jsonl_invalid_utf8_and_skip_mode(tmp_path: Path) -> None:
    path = _write(tmp_path / "u.jsonl", GOOD.encode() + b'\n{"src": "\xc3(", "trg": "x"}\n')
    with pytest.raises(DataError, match=r"u\.jsonl:2: invalid UTF-8"):
        read_diffuseq_jsonl(path)
    path = _jsonl(tmp_path / "s.jsonl", [GOOD, '{"src": "a", "trg": ""}', "", GOOD])
    pairs, stats = read_diffuseq_jsonl(path, on_empty="skip")
    assert len(pairs) == 2 and stats.skipped_empty == 2 and stats.empty_lines == [2, 3]


def test_read_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.jsonl: cannot open"):
        read_diffuseq_jsonl(tmp_path / "nope.jsonl")


# ---------------------------------------------------------------- prepare CLI


def test_prepare_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        prepare.parse_args(["--destdir", str(tmp_path)])  # no input
    with pytest.raises(SystemExit):
        prepare.parse_args(["--trainpref", "x", "--destdir", str(tmp_path)])  # no languages


def test_prepare_reports_data_errors_before_binarizing(tmp_path: Path, capsys) -> None:
    data = tmp_path / "raw"
    data.mkdir()
    _jsonl(data / "train.jsonl", [GOOD, '{"src": "a"}'])
    _jsonl(data / "valid.jsonl", [GOOD])
    assert prepare.main(["--jsonl-dir", str(data), "--destdir", str(tmp_path / "bin")]) == 1
    assert "train.jsonl:2: missing key 'trg'" in capsys.readouterr().err


def _toy_jsonl(tmp_path: Path) -> Path:
    toy = tmp_path / "toy"
    toy_task.write_toy_task(toy, n_train=120, n_valid=10, n_test=10, seed=5)
    data = tmp_path / "jsonl"
    data.mkdir()
    for split in ("train", "valid"):  # no test.jsonl: prepare must reuse valid
        pairs = zip(_read(toy / f"{split}.src"), _read(toy / f"{split}.tgt"))
        lines = [json.dumps({"src": s, "trg": t}) for s, t in pairs]
        _jsonl(data / f"{split}.jsonl", lines, "\r\n")
    with open(data / "train.jsonl", "a", encoding="utf-8") as f:
        f.write('{"src": "", "trg": "dropped"}\n')  # counted, not fatal, under --on-empty skip
    return data


def test_prepare_end_to_end_jsonl(tmp_path: Path, capsys) -> None:
    pytest.importorskip("fairseq")
    pytest.importorskip("subword_nmt")
    data, dest = _toy_jsonl(tmp_path), tmp_path / "data-bin"
    argv = ["--jsonl-dir", str(data), "--destdir", str(dest), "--bpe-merges", "50",
            "--on-empty", "skip"]
    assert prepare.main(argv) == 0
    out = capsys.readouterr().out
    assert "train: read 121, kept 120, skipped 1" in out
    assert "test:" in out and "reusing valid" in out

    assert (dest / "dict.src.txt").read_text() == (dest / "dict.tgt.txt").read_text()
    for split in ("train", "valid", "test"):
        for lang in ("src", "tgt"):
            assert (dest / f"{split}.src-tgt.{lang}.bin").stat().st_size > 0
            assert (dest / f"{split}.src-tgt.{lang}.idx").exists()
    text = dest / "text"
    assert (text / "bpe.codes").exists()
    train_src = _read(text / "train.src")
    assert len(train_src) == 120 == len(_read(text / "train.tgt"))
    assert any("@@" in line for line in train_src)  # BPE actually split some words
    assert _read(text / "test.tgt") == _read(text / "valid.tgt")

    assert prepare.main(argv) == 1  # refuses to clobber an existing data-bin...
    assert "--force" in capsys.readouterr().err
    assert prepare.main(argv + ["--force"]) == 0  # ...unless asked to


def test_prepare_end_to_end_parallel_moses(tmp_path: Path) -> None:
    pytest.importorskip("fairseq")
    pytest.importorskip("sacremoses")
    raw = tmp_path / "raw"
    raw.mkdir()
    for split, n in (("train", 12), ("dev", 3)):
        _write(raw / f"{split}.de", "".join(f"Das ist Satz {i}, oder?\n" for i in range(n)))
        _write(raw / f"{split}.en", "".join(f"This is sentence {i}, isn't it?\n" for i in range(n)))
    dest = tmp_path / "bin"
    argv = ["--trainpref", str(raw / "train"), "--validpref", str(raw / "dev"),
            "--source-lang", "de", "--target-lang", "en", "--tokenize", "moses", "--lowercase",
            "--destdir", str(dest)]
    assert prepare.main(argv) == 0
    assert _read(dest / "text" / "train.en")[0] == "this is sentence 0 , isn 't it ?"
    assert (dest / "dict.de.txt").read_text() == (dest / "dict.en.txt").read_text()
    assert (dest / "test.de-en.de.bin").exists()
    assert not (dest / "text" / "bpe.codes").exists()


# ---------------------------------------------------------------- --split-valid (holdout)


def _numbered_jsonl(path: Path, count: int, blank_lines: tuple[int, ...] = ()) -> Path:
    lines = ["" if n in blank_lines else json.dumps({"src": f"q {n}", "trg": f"p {n}"})
             for n in range(1, count + 1)]
    return _jsonl(path, lines)


@pytest.mark.parametrize("text, sizes", [("200,200", (200, 200)), ("5,0", (5, 0))])
def test_split_valid_parses(text: str, sizes: tuple[int, int]) -> None:
    assert holdout.parse_holdout_sizes(text) == sizes


@pytest.mark.parametrize("text", ["0,5", "5", "1,2,3", "a,b", "3,-1"])
def test_split_valid_rejects_bad_sizes(text: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        prepare.parse_args(["--jsonl-dir", "x", "--split-valid", text, "--destdir", str(tmp_path)])


def test_split_valid_needs_jsonl_dir(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        prepare.parse_args(["--trainpref", "t", "--validpref", "v", "--source-lang", "de",
                            "--target-lang", "en", "--split-valid", "2,2", "--destdir", str(tmp_path)])


def test_cut_holdout_counts_order_and_no_overlap(tmp_path: Path) -> None:
    pairs, stats = read_diffuseq_jsonl(_numbered_jsonl(tmp_path / "valid.jsonl", 20))
    parts = holdout.cut_holdout(pairs, stats, 3, 2)
    assert [name for name, _, _ in parts] == ["train", "valid", "test"]
    assert [len(part) for _, part, _ in parts] == [15, 3, 2]
    assert [pair for _, part, _ in parts for pair in part] == pairs  # file order, each pair once
    assert parts[1][1][0] == ("q 16", "p 16") and parts[2][1][-1] == ("q 20", "p 20")
    assert [part_stats.source.split(" lines ")[1] for _, _, part_stats in parts] == [
        "1-15", "16-18", "19-20"]

    no_test = holdout.cut_holdout(pairs, stats, 4, 0)
    assert [(name, len(part)) for name, part, _ in no_test] == [("train", 16), ("valid", 4)]


def test_cut_holdout_counts_kept_pairs_and_skipped_lines(tmp_path: Path) -> None:
    path = _numbered_jsonl(tmp_path / "valid.jsonl", 12, blank_lines=(2, 9, 11))
    pairs, stats = read_diffuseq_jsonl(path, on_empty="skip")
    (_, train, train_stats), (_, valid, valid_stats), (_, test, test_stats) = holdout.cut_holdout(
        pairs, stats, 2, 2)
    assert (len(train), len(valid), len(test)) == (5, 2, 2)  # sizes count kept pairs
    assert valid == [("q 7", "p 7"), ("q 8", "p 8")] and test == [("q 10", "p 10"), ("q 12", "p 12")]
    assert train_stats.empty_lines == [2] and valid_stats.empty_lines == [9]
    assert test_stats.empty_lines == [11]
    assert sum(s.read for s in (train_stats, valid_stats, test_stats)) == 12


def test_cut_holdout_leaves_training_pairs(tmp_path: Path) -> None:
    pairs, stats = read_diffuseq_jsonl(_numbered_jsonl(tmp_path / "valid.jsonl", 4))
    with pytest.raises(DataError, match=r"valid\.jsonl: --split-valid 2,2 holds out 4 pairs"):
        holdout.cut_holdout(pairs, stats, 2, 2)


def test_jsonl_dir_without_train_names_the_option(tmp_path: Path, capsys) -> None:
    data = tmp_path / "qqp"
    data.mkdir()
    _numbered_jsonl(data / "valid.jsonl", 10)
    assert prepare.main(["--jsonl-dir", str(data), "--destdir", str(tmp_path / "bin")]) == 1
    err = capsys.readouterr().err
    assert "train.jsonl: cannot open" in err and "--split-valid N,M" in err

    _numbered_jsonl(data / "train.jsonl", 10)  # --split-valid would ignore it: refused
    argv = ["--jsonl-dir", str(data), "--split-valid", "2,2", "--destdir", str(tmp_path / "bin")]
    assert prepare.main(argv) == 1
    assert "train.jsonl: --split-valid cuts valid.jsonl" in capsys.readouterr().err


def test_prepare_split_valid_end_to_end(tmp_path: Path, capsys) -> None:
    pytest.importorskip("fairseq")
    data, dest = tmp_path / "qqp", tmp_path / "bin"
    data.mkdir()
    _numbered_jsonl(data / "valid.jsonl", 30)
    argv = ["--jsonl-dir", str(data), "--split-valid", "4,3", "--destdir", str(dest)]
    assert prepare.main(argv) == 0
    out = capsys.readouterr().out
    assert "train: read 23, kept 23" in out and "valid: read 4" in out and "test: read 3" in out
    assert "lines 24-27" in out
    text = dest / "text"
    assert _read(text / "train.src") == [f"q {n}" for n in range(1, 24)]
    assert _read(text / "valid.tgt") == [f"p {n}" for n in range(24, 28)]
    assert _read(text / "test.src") == [f"q {n}" for n in range(28, 31)]
    assert (dest / "test.src-tgt.src.bin").stat().st_size > 0


# ---------------------------------------------------------------- length figures


def test_canvas_coverage_counts_eos_on_both_sides() -> None:
    # |x| = 4 words + </s> = 5: 1.2*5 + 4 = 10 positions, so a 9-word target (+ </s>) just fits.
    assert lengths.canvas_coverage([(4, 9)], 1.2, 4) == 1.0
    assert lengths.canvas_coverage([(4, 10)], 1.2, 4) == 0.0
    # 1.5*5 + 5 = 12.5 -> 13 positions; 1.5*2 + 5 = 8.
    assert lengths.canvas_coverage([(4, 12), (4, 13), (1, 7), (1, 8)], 1.5, 5) == 0.5


def test_canvas_coverage_uses_the_task_arithmetic() -> None:
    torch = pytest.importorskip("torch")
    sources = torch.arange(1, 300)
    for a, b in lengths.CANVAS_RULES:  # the same float64 ceil as DiffuSeqTask.canvas_length
        canvas = torch.ceil(a * sources.double() + b).long()
        for src, size in zip(sources.tolist(), canvas.tolist()):
            fits = [(src - 1, size - 1), (src - 1, size)]  # target of size-1 tokens + </s> fits
            assert lengths.canvas_coverage(fits, a, b) == 0.5


def test_length_summary_line() -> None:
    words = [(2, 3), (4, 5)]
    tokens = [(3, 4), (5, 30)]
    line = lengths.length_summary("train", words, tokens, rules=((1.5, 5),))
    assert line.startswith("train lengths: 2 pairs")
    assert "mean words 3.00 -> 4.00" in line and "mean tokens 4.00 -> 17.00" in line
    assert "1.5|x|+5: 50.00%" in line
    assert lengths.token_lengths([("a b@@ c", "d")]) == [(3, 1)]
