"""The caption-paraphrase task: five independent captions of each image, as seq2seq pairs.

Input folder layout (Multi30k task 2, as in ``../shared/data/multi30k_captions``): for each split
prefix (``train``, ``val``, ``test_a``) five line-aligned files ``PREFIX.1.en`` ... ``PREFIX.5.en``,
line k of each holding one caption of image k.

* train: the five cyclic pairs of every image (1->2, 2->3, 3->4, 4->5, 5->1). Captions are roughly
  ordered by length (caption 1 longest), so a cycle trains every direction: lengthening as much as
  shortening, never one fixed direction.
* valid and test: caption 3 -> caption 1 (one reference, so fairseq's validation and the T lines of
  fairseq-generate work), plus the four references (captions 1, 2, 4, 5) and the caption-3 sources
  as plain tokenized text in ``DEST/refs/{split}.ref1..4`` and ``{split}.src`` (line k = sentence
  id k), the text ``fairseq-generate --remove-bpe`` prints, for multi-reference scoring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .validate import DataError, OnEmpty, ReadStats, read_lines

CAPTIONS_PER_IMAGE = 5
# data-bin split -> file prefix in the captions folder
CAPTION_FILE_PREFIXES = {"train": "train", "valid": "val", "test": "test_a"}
CAPTION_LANG = "en"
SOURCE_CAPTION, TARGET_CAPTION = 3, 1  # held-out pairs: caption 3 -> caption 1 (1-based)
REFERENCE_CAPTIONS = (1, 2, 4, 5)  # every caption but the source, the target's first
REFS_DIR = "refs"

Images = list[tuple[str, ...]]  # the five captions of each image


@dataclass
class CaptionSplit:
    name: str  # data-bin split name
    images: Images
    stats: ReadStats  # counts images, not files' lines times five


def caption_files(directory: str | Path, prefix: str) -> list[Path]:
    return [Path(directory) / f"{prefix}.{k}.{CAPTION_LANG}" for k in range(1, 6)]


def _check_line_counts(files: list[Path], columns: list[list[str]]) -> None:
    for path, lines in zip(files[1:], columns[1:]):
        if len(lines) != len(columns[0]):
            raise DataError(
                f"line count mismatch: {files[0]} has {len(columns[0])} lines, "
                f"{path} has {len(lines)} lines (line k of every caption file is image k)"
            )


def read_caption_split(
    directory: str | Path,
    name: str,
    on_empty: OnEmpty = "error",
    normalize: Callable[[str], str] = str,
) -> CaptionSplit:
    """Read the five caption files of one split, applying ``normalize`` (lowercasing, tokenization).

    An image with an empty caption (before or after ``normalize``) is an error naming the file and
    line; with ``on_empty="skip"`` the whole image is dropped and counted, so its other four
    captions never appear as pairs or references without it.
    """
    files = caption_files(directory, CAPTION_FILE_PREFIXES[name])
    columns = [read_lines(path) for path in files]
    _check_line_counts(files, columns)
    stats = ReadStats(source=str(Path(directory) / f"{CAPTION_FILE_PREFIXES[name]}.{{1..5}}.en"))
    images: Images = []
    for index, raw in enumerate(zip(*columns)):
        line = index + 1
        stats.read += 1
        captions = tuple(" ".join(normalize(text).split()) if text else "" for text in raw)
        empty = next((k for k, text in enumerate(captions) if not text), None)
        if empty is not None:
            if on_empty == "error":
                what = "empty caption" if not raw[empty] else "caption empty after tokenization"
                raise DataError(f"{files[empty]}:{line}: {what} (--on-empty skip drops the image)")
            stats.skip_empty(line)
            continue
        images.append(captions)
        stats.keep(line)
    return CaptionSplit(name, images, stats)


def cyclic_pairs(images: Images) -> list[tuple[str, str]]:
    """Caption i -> caption i+1 of every image, caption 5 -> caption 1 closing the cycle."""
    return [
        (captions[i], captions[(i + 1) % CAPTIONS_PER_IMAGE])
        for captions in images
        for i in range(CAPTIONS_PER_IMAGE)
    ]


def held_out_pairs(images: Images) -> list[tuple[str, str]]:
    return [(captions[SOURCE_CAPTION - 1], captions[TARGET_CAPTION - 1]) for captions in images]


def reference_files(refs_dir: Path, split: str) -> list[Path]:
    """``{split}.src`` then ``{split}.ref1`` ... ``.ref4``, in ``REFERENCE_CAPTIONS`` order."""
    refs = [refs_dir / f"{split}.ref{n}" for n in range(1, len(REFERENCE_CAPTIONS) + 1)]
    return [refs_dir / f"{split}.src", *refs]


def write_references(split: CaptionSplit, refs_dir: Path) -> None:
    refs_dir.mkdir(parents=True, exist_ok=True)
    columns = (SOURCE_CAPTION, *REFERENCE_CAPTIONS)
    for path, caption in zip(reference_files(refs_dir, split.name), columns):
        text = "".join(captions[caption - 1] + "\n" for captions in split.images)
        path.write_text(text, encoding="utf-8")


def remove_references(refs_dir: Path) -> None:
    """Delete the files :func:`write_references` writes: stale ones would misdescribe new data."""
    for split in CAPTION_FILE_PREFIXES:
        for path in reference_files(refs_dir, split):
            path.unlink(missing_ok=True)
    if refs_dir.is_dir() and not any(refs_dir.iterdir()):
        refs_dir.rmdir()
