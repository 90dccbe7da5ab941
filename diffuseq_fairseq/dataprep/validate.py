"""Strict readers for seq2seq training data.

Every problem is reported as a :class:`DataError` whose message starts with ``file:line:`` (or
names both files for a line-count mismatch), so a bad corpus fails before binarization instead of
silently shifting source/target alignment.

Documented, counted handling (never silent):

* Empty or whitespace-only sides: an error by default; with ``on_empty="skip"`` the pair is dropped
  and counted in :class:`ReadStats` together with the first few line numbers.
* Whitespace inside a line (tabs, ``\\r`` from CRLF files, Unicode line separators) is collapsed to
  single spaces. fairseq re-reads the text in universal-newline mode, where a stray ``\\r`` or
  ``\\u2028`` would split one example into two and misalign the corpus.
* A UTF-8 byte-order mark at the start of a file is dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal

OnEmpty = Literal["error", "skip"]
ON_EMPTY_CHOICES: tuple[str, ...] = ("error", "skip")
_MAX_REPORTED_LINES = 5
_SKIP_HINT = "on_empty='skip' or --on-empty skip drops such pairs"


class DataError(ValueError):
    """Malformed input data; the message names the file and, where it applies, the line."""


@dataclass
class ReadStats:
    """What a reader did with its input."""

    source: str  # the file(s) read, for messages
    read: int = 0
    kept: int = 0
    skipped_empty: int = 0
    empty_lines: list[int] = field(default_factory=list)  # first few skipped line numbers
    kept_lines: list[int] = field(default_factory=list, repr=False)  # line of each kept pair

    def keep(self, line: int) -> None:
        self.kept += 1
        self.kept_lines.append(line)

    def skip_empty(self, line: int) -> None:
        self.skipped_empty += 1
        if len(self.empty_lines) < _MAX_REPORTED_LINES:
            self.empty_lines.append(line)

    def summary(self) -> str:
        text = f"read {self.read}, kept {self.kept}, skipped {self.skipped_empty}"
        if self.skipped_empty:
            more = ", ..." if self.skipped_empty > len(self.empty_lines) else ""
            lines = ", ".join(map(str, self.empty_lines))
            text += f" (empty source or target at line {lines}{more})"
        return text


def _check_on_empty(on_empty: str) -> None:
    if on_empty not in ON_EMPTY_CHOICES:
        raise ValueError(f"on_empty must be one of {ON_EMPTY_CHOICES}, got {on_empty!r}")


def normalize_whitespace(text: str) -> str:
    return " ".join(text.split())


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` with 1-based numbers, decoding each line strictly as UTF-8.

    Splits on ``\\n`` only, so the numbering matches ``wc -l`` and editors.
    """
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise DataError(f"{path}: cannot open: {exc.strerror}") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(
                    f"{path}:{number}: invalid UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                    f"{exc.start + 1})"
                ) from None
            if number == 1:
                text = text.removeprefix("\ufeff")
            yield number, text


def read_lines(path: str | Path) -> list[str]:
    """All lines of ``path``, UTF-8 checked and whitespace-normalized."""
    return [normalize_whitespace(text) for _, text in iter_lines(path)]


def read_parallel(
    src_path: str | Path, tgt_path: str | Path, on_empty: OnEmpty = "error"
) -> tuple[list[tuple[str, str]], ReadStats]:
    """Read line-aligned parallel text files into ``(src, tgt)`` pairs."""
    _check_on_empty(on_empty)
    src_lines = read_lines(src_path)
    tgt_lines = read_lines(tgt_path)
    if len(src_lines) != len(tgt_lines):
        raise DataError(
            f"line count mismatch: {src_path} has {len(src_lines)} lines, "
            f"{tgt_path} has {len(tgt_lines)} lines"
        )
    stats = ReadStats(source=f"{src_path} + {tgt_path}")
    pairs = []
    for number, (src, tgt) in enumerate(zip(src_lines, tgt_lines), start=1):
        stats.read += 1
        if not src or not tgt:
            if on_empty == "error":
                bad = src_path if not src else tgt_path
                raise DataError(f"{bad}:{number}: empty line ({_SKIP_HINT})")
            stats.skip_empty(number)
            continue
        pairs.append((src, tgt))
        stats.keep(number)
    return pairs, stats


def _jsonl_field(record: dict, key: str, where: str) -> str:
    if key not in record:
        keys = ", ".join(map(repr, record)) or "none"
        raise DataError(f"{where}: missing key {key!r} (keys: {keys})")
    value = record[key]
    if not isinstance(value, str):
        raise DataError(f"{where}: {key!r} must be a string, got {type(value).__name__}")
    return normalize_whitespace(value)


def read_diffuseq_jsonl(
    path: str | Path, on_empty: OnEmpty = "error"
) -> tuple[list[tuple[str, str]], ReadStats]:
    """Read DiffuSeq jsonl (one ``{"src": ..., "trg": ...}`` object per line) into pairs.

    Extra keys are ignored. A blank line counts as an empty pair under ``on_empty``.
    """
    _check_on_empty(on_empty)
    stats = ReadStats(source=str(path))
    pairs = []
    for number, text in iter_lines(path):
        where = f"{path}:{number}"
        stats.read += 1
        if text.strip():
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: invalid JSON: {exc.msg} (column {exc.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
            src, tgt = _jsonl_field(record, "src", where), _jsonl_field(record, "trg", where)
        else:
            src = tgt = ""
        if not src or not tgt:
            if on_empty == "error":
                side = "blank line" if not text.strip() else f"empty {'src' if not src else 'trg'}"
                raise DataError(f"{where}: {side} ({_SKIP_HINT})")
            stats.skip_empty(number)
            continue
        pairs.append((src, tgt))
        stats.keep(number)
    return pairs, stats
