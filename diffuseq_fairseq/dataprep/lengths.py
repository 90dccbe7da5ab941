"""Length figures of prepared pairs, printed by diffuseq-prepare to choose a canvas rule.

The diffuseq task gives a target ``ceil(a*|x| + b)`` canvas positions (``--canvas-len-a/-b``), with
``|x|`` and the target counted in tokens including ``</s>``; a target longer than its canvas is
fitted in training, but at decoding the model can never output it. The coverage of a rule is the
share of pairs whose target fits, computed with the same float64 arithmetic as the task.
"""

from __future__ import annotations

import math
from typing import Sequence

CANVAS_RULES: tuple[tuple[float, int], ...] = ((1.2, 4), (1.5, 5), (2.0, 5), (2.5, 5))
Pairs = Sequence[tuple[str, str]]


def token_lengths(pairs: Pairs) -> list[tuple[int, int]]:
    return [(len(src.split()), len(tgt.split())) for src, tgt in pairs]


def canvas_coverage(lengths: Sequence[tuple[int, int]], a: float, b: int) -> float:
    """Share of pairs whose target plus ``</s>`` fits ``ceil(a*(|x|+1) + b)`` positions."""
    if not lengths:
        return float("nan")
    fits = sum(tgt + 1 <= math.ceil(a * (src + 1) + b) for src, tgt in lengths)
    return fits / len(lengths)


def _mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else float("nan")


def length_summary(name: str, words: Sequence[tuple[int, int]], tokens: Sequence[tuple[int, int]],
                   rules: Sequence[tuple[float, int]] = CANVAS_RULES) -> str:
    """One line per split: pairs, mean source/target words and tokens, canvas coverage per rule.

    ``words`` are the lengths before BPE, ``tokens`` after it (the same when there is no BPE).
    """
    def means(lengths: Sequence[tuple[int, int]]) -> str:
        src, tgt = zip(*lengths) if lengths else ((), ())
        return f"{_mean(list(src)):.2f} -> {_mean(list(tgt)):.2f}"

    coverage = ", ".join(
        f"{a:g}|x|+{b:g}: {100 * canvas_coverage(tokens, a, b):.2f}%" for a, b in rules
    )
    return (f"{name} lengths: {len(tokens)} pairs; mean words {means(words)}; mean tokens "
            f"{means(tokens)}; targets within the canvas (tokens with </s>) {coverage}")
