"""Cut one file's pairs into train/valid/test (``diffuseq-prepare --split-valid N,M``).

Some corpora are available only as a validation split (QQP and Quasar-T in DiffuSeq's release),
so the three splits are cut from that one file, deterministically and in file order: the last
``N + M`` pairs become valid (``N``) and test (``M``, the very last), everything before them train.
No shuffling, so the cut is the same ``head``/``tail`` split on every machine, and no pair is in
two splits. ``M = 0`` leaves no test split (diffuseq-prepare then reuses valid as test).
"""

from __future__ import annotations

import argparse

from .validate import DataError, ReadStats

Pairs = list[tuple[str, str]]


def parse_holdout_sizes(text: str) -> tuple[int, int]:
    """argparse type of ``--split-valid``: ``N,M`` with N >= 1 valid and M >= 0 test pairs."""
    parts = text.split(",")
    try:
        valid, test = (int(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N,M (two integers), got {text!r}") from None
    if valid < 1 or test < 0:
        raise argparse.ArgumentTypeError(f"need N >= 1 valid and M >= 0 test pairs, got {text!r}")
    return valid, test


def _line_range_stats(stats: ReadStats, first: int, last: int, kept: set[int]) -> ReadStats:
    """The counts of ``stats`` restricted to lines ``first..last`` of its file."""
    part = ReadStats(source=f"{stats.source} lines {first}-{last}")
    for line in range(first, last + 1):
        part.read += 1
        if line in kept:
            part.keep(line)
        else:
            part.skip_empty(line)
    return part


def cut_holdout(pairs: Pairs, stats: ReadStats, valid_size: int, test_size: int
                ) -> list[tuple[str, Pairs, ReadStats]]:
    """``(name, pairs, stats)`` for train, valid and (when ``test_size``) test, in that order.

    Sizes count kept pairs; lines dropped under ``--on-empty skip`` stay counted in the split whose
    line range holds them.
    """
    train_size = len(pairs) - valid_size - test_size
    if train_size < 1:
        raise DataError(
            f"{stats.source}: --split-valid {valid_size},{test_size} holds out "
            f"{valid_size + test_size} pairs, but the file has only {len(pairs)}; "
            "at least one must be left for training"
        )
    bounds = [0, train_size, train_size + valid_size, len(pairs)]
    names = ["train", "valid", "test"][: 3 if test_size else 2]
    kept = set(stats.kept_lines)
    parts = []
    for index, name in enumerate(names):
        start, stop = bounds[index], bounds[index + 1]
        first = 1 if start == 0 else stats.kept_lines[start]
        last = stats.kept_lines[stop] - 1 if stop < len(pairs) else stats.read
        parts.append((name, pairs[start:stop], _line_range_stats(stats, first, last, kept)))
    return parts
