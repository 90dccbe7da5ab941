"""The caption-paraphrase task: pairs, direction cycle, reference files and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffuseq_fairseq.dataprep import prepare
from diffuseq_fairseq.dataprep.captions import (
    cyclic_pairs, held_out_pairs, read_caption_split, reference_files,
    write_references,
)
from diffuseq_fairseq.dataprep.validate import DataError

IMAGES = {"train": 12, "val": 4, "test_a": 3}
WORDS = "a man dog woman child runs sits in the park on grass with ball near water".split()


def caption(image: int, k: int) -> str:
    """Caption k of an image, longest first like Multi30k's, naming both so pairs are traceable."""
    body = [WORDS[(image * 7 + k * 3 + j) % len(WORDS)] for j in range(12 - 2 * k)]
    return f"img{image} cap{k} " + " ".join(body) + " ."


def write_captions(folder: Path, images: dict[str, int] = IMAGES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count in images.items():
        for k in range(1, 6):
            lines = "".join(caption(i, k) + "\n" for i in range(count))
            (folder / f"{prefix}.{k}.en").write_text(lines, encoding="utf-8")
    return folder


def _read(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_training_pairs_cycle_through_all_five_directions(tmp_path: Path) -> None:
    train = read_caption_split(write_captions(tmp_path / "c"), "train")
    pairs = cyclic_pairs(train.images)
    assert len(pairs) == 5 * IMAGES["train"] and train.stats.kept == IMAGES["train"]
    first_image = [(caption(0, k), caption(0, k % 5 + 1)) for k in range(1, 6)]
    assert pairs[:5] == first_image  # 1->2, 2->3, 3->4, 4->5, 5->1, image by image
    # Every caption is a source once and a target once: as many shortening as lengthening pairs.
    assert sorted(src for src, _ in pairs) == sorted(tgt for _, tgt in pairs)
    longer_target = sum(len(tgt.split()) > len(src.split()) for src, tgt in pairs)
    assert longer_target == IMAGES["train"]  # only 5 -> 1 lengthens in this synthetic set
    for src, tgt in pairs:  # never two images mixed in one pair
        assert src.split()[0] == tgt.split()[0]


def test_held_out_pairs_and_reference_files_align_with_ids(tmp_path: Path) -> None:
    test = read_caption_split(write_captions(tmp_path / "c"), "test")
    assert held_out_pairs(test.images) == [(caption(i, 3), caption(i, 1)) for i in range(3)]
    write_references(test, tmp_path / "refs")
    src, *refs = reference_files(tmp_path / "refs", "test")
    assert [p.name for p in refs] == ["test.ref1", "test.ref2", "test.ref3", "test.ref4"]
    assert _read(src) == [caption(i, 3) for i in range(3)]
    for ref, k in zip(refs, (1, 2, 4, 5)):
        assert _read(ref) == [caption(i, k) for i in range(3)]


def test_missing_caption_file(tmp_path: Path) -> None:
    folder = write_captions(tmp_path / "c")
    (folder / "val.4.en").unlink()
    with pytest.raises(DataError, match=r"val\.4\.en: cannot open"):
        read_caption_split(folder, "valid")


def test_caption_files_of_different_line_counts(tmp_path: Path) -> None:
    folder = write_captions(tmp_path / "c")
    path = folder / "test_a.3.en"
    path.write_text(_read(path)[0] + "\n", encoding="utf-8")  # 1 line of 3 left
    with pytest.raises(DataError) as err:
        read_caption_split(folder, "test")
    message = str(err.value)
    assert "test_a.1.en has 3 lines" in message and "test_a.3.en has 1 lines" in message


def test_empty_caption_names_file_and_line_or_drops_the_image(tmp_path: Path) -> None:
    folder = write_captions(tmp_path / "c")
    lines = _read(folder / "val.2.en")
    lines[2] = "   "
    (folder / "val.2.en").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"val\.2\.en:3: empty caption"):
        read_caption_split(folder, "valid")

    valid = read_caption_split(folder, "valid", on_empty="skip")
    assert (valid.stats.read, valid.stats.kept, valid.stats.skipped_empty) == (4, 3, 1)
    assert valid.stats.empty_lines == [3]
    write_references(valid, tmp_path / "refs")  # the dropped image leaves no line anywhere
    src, ref1, *_ = reference_files(tmp_path / "refs", "valid")
    assert _read(src) == [caption(i, 3) for i in (0, 1, 3)]
    assert _read(ref1) == [caption(i, 1) for i in (0, 1, 3)]


def test_caption_emptied_by_tokenization(tmp_path: Path) -> None:
    folder = write_captions(tmp_path / "c")

    def drop_image_one(text: str) -> str:
        return "" if text.startswith("img1 cap4") else text
    with pytest.raises(DataError, match=r"train\.4\.en:2: caption empty after tokenization"):
        read_caption_split(folder, "train", normalize=drop_image_one)


def test_prepare_rejects_mixed_inputs(tmp_path: Path) -> None:
    for extra in (["--jsonl-dir", "x"], ["--split-valid", "2,2"]):
        with pytest.raises(SystemExit):
            prepare.parse_args(["--captions-dir", "c", "--destdir", str(tmp_path), *extra])


def test_prepare_captions_reports_bad_input(tmp_path: Path, capsys) -> None:
    folder = write_captions(tmp_path / "c")
    (folder / "train.5.en").unlink()
    assert prepare.main(["--captions-dir", str(folder), "--destdir", str(tmp_path / "bin")]) == 1
    assert "train.5.en: cannot open" in capsys.readouterr().err


def test_prepare_captions_end_to_end_is_deterministic(tmp_path: Path, capsys, monkeypatch) -> None:
    pytest.importorskip("fairseq")
    pytest.importorskip("subword_nmt")
    folder = write_captions(tmp_path / "c")
    dest, again = tmp_path / "bin", tmp_path / "again"
    argv = ["--captions-dir", str(folder), "--bpe-merges", "40"]
    assert prepare.main([*argv, "--destdir", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "train: read 12, kept 12, skipped 0; wrote 60 pairs" in out
    assert "test lengths: 3 pairs" in out and "1.2|x|+4:" in out and "2.5|x|+5:" in out
    assert (dest / "dict.src.txt").read_text() == (dest / "dict.tgt.txt").read_text()
    for split in ("train", "valid", "test"):
        assert (dest / f"{split}.src-tgt.tgt.bin").stat().st_size > 0

    text = dest / "text"
    assert len(_read(text / "train.src")) == 60
    assert any("@@" in line for line in _read(text / "train.src"))
    refs = dest / "refs"
    for split, prefix in (("valid", "val"), ("test", "test_a")):
        # The data-bin's target is caption 1, and --remove-bpe gives back the references' text.
        unbpe = [line.replace("@@ ", "") for line in _read(text / f"{split}.tgt")]
        assert unbpe == _read(refs / f"{split}.ref1") == _read(folder / f"{prefix}.1.en")
        assert _read(refs / f"{split}.src") == _read(folder / f"{prefix}.3.en")
        assert _read(refs / f"{split}.ref4") == _read(folder / f"{prefix}.5.en")

    # Deterministic: a second run writes the same text fairseq-preprocess binarizes (binarizing
    # the same text is fairseq's business, so it is skipped here to keep the test fast).
    monkeypatch.setattr(prepare, "binarize", lambda *args: None)
    assert prepare.main([*argv, "--destdir", str(again)]) == 0
    for name in ("bpe.codes", "train.src", "train.tgt", "valid.src", "test.tgt"):
        assert (text / name).read_bytes() == (again / "text" / name).read_bytes()
    for path in refs.iterdir():
        assert path.read_bytes() == (again / "refs" / path.name).read_bytes()
