"""A deterministic, embedded toy paraphrase task with several valid targets per source.

Each source describes one scene in a fixed active-voice form::

    the red cat sees a small dog near the park

and every target is one of four rephrasings of that scene (passive, progressive, cleft,
existential), none of which equals the source::

    a small dog is seen by the red cat near the park
    the red cat is watching a small dog near the park
    it is the red cat that sees a small dog near the park
    there is a red cat that sees a small dog near the park

Training targets are drawn uniformly from the four, so a model that learns the task has a
genuinely multi-modal output distribution: sampling with different seeds should produce different
valid rephrasings. The quality measure is exact match against ANY valid target
(:func:`exact_match_accuracy`); copying the source scores 0.

Usage::

    python -m diffuseq_fairseq.dataprep.toy_task OUT_DIR [--n-train N] [--n-valid N]
        [--n-test N] [--seed S]
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

ADJECTIVES: tuple[str, ...] = (
    "red", "blue", "green", "black", "white", "brown", "yellow", "gray",
    "small", "big", "old", "young", "tall", "happy", "little", "quiet",
)
NOUNS: tuple[str, ...] = (
    "cat", "dog", "bird", "horse", "boy", "girl", "man", "woman",
    "fox", "rabbit", "mouse", "cow", "duck", "goat", "child", "teacher",
)
# (third person singular, past participle, progressive); the progressive is sometimes a synonym
# so that targets are not a purely morphological rewrite of the source.
VERBS: tuple[tuple[str, str, str], ...] = (
    ("sees", "seen", "watching"),
    ("chases", "chased", "chasing"),
    ("follows", "followed", "following"),
    ("finds", "found", "finding"),
    ("pushes", "pushed", "pushing"),
    ("helps", "helped", "helping"),
    ("carries", "carried", "carrying"),
    ("watches", "watched", "observing"),
    ("feeds", "fed", "feeding"),
    ("pulls", "pulled", "pulling"),
)
PREPOSITIONS: tuple[str, ...] = ("in", "near", "behind", "beside")
PLACES: tuple[str, ...] = (
    "park", "garden", "house", "street", "river", "field", "forest", "kitchen",
)
FUNCTION_WORDS: tuple[str, ...] = ("the", "a", "is", "by", "it", "that", "there")

_VERB_BY_FORM = {forms[0]: forms for forms in VERBS}
_NOUN_PHRASES = len(NOUNS) * (len(ADJECTIVES) + 1)
# Distinct sources; splits may use at most half, so rejection sampling stays fast.
N_SCENES = (
    _NOUN_PHRASES * (_NOUN_PHRASES - len(ADJECTIVES) - 1) * len(VERBS)
    * (len(PREPOSITIONS) * len(PLACES) + 1)
)
_SPLITS = ("train", "valid", "test")


def vocabulary() -> list[str]:
    """All words that can occur in a source or a target."""
    words = list(ADJECTIVES) + list(NOUNS) + [f for forms in VERBS for f in forms]
    return sorted(set(words + list(PREPOSITIONS) + list(PLACES) + list(FUNCTION_WORDS)))


@dataclass(frozen=True)
class Scene:
    """The meaning shared by a source and all of its valid targets."""

    subject: str
    subject_adj: str | None
    verb: tuple[str, str, str]
    obj: str
    obj_adj: str | None
    location: tuple[str, str] | None  # (preposition, place)


def _noun_phrase(article: str, adj: str | None, noun: str) -> str:
    return f"{article} {adj} {noun}" if adj else f"{article} {noun}"


def render_source(scene: Scene) -> str:
    subj = _noun_phrase("the", scene.subject_adj, scene.subject)
    obj = _noun_phrase("a", scene.obj_adj, scene.obj)
    return f"{subj} {scene.verb[0]} {obj}{_location(scene)}"


def _location(scene: Scene) -> str:
    return f" {scene.location[0]} the {scene.location[1]}" if scene.location else ""


def render_targets(scene: Scene) -> list[str]:
    """The valid paraphrases of ``scene``, in a fixed template order."""
    subj = _noun_phrase("the", scene.subject_adj, scene.subject)
    subj_indef = _noun_phrase("a", scene.subject_adj, scene.subject)
    obj = _noun_phrase("a", scene.obj_adj, scene.obj)
    verb, participle, progressive = scene.verb
    loc = _location(scene)
    return [
        f"{obj} is {participle} by {subj}{loc}",
        f"{subj} is {progressive} {obj}{loc}",
        f"it is {subj} that {verb} {obj}{loc}",
        f"there is {subj_indef} that {verb} {obj}{loc}",
    ]


def _parse_noun_phrase(tokens: list[str], pos: int, article: str) -> tuple[str | None, str, int]:
    if pos >= len(tokens) or tokens[pos] != article:
        raise ValueError(f"expected {article!r} at token {pos}")
    pos += 1
    adj = None
    if pos < len(tokens) and tokens[pos] in ADJECTIVES:
        adj, pos = tokens[pos], pos + 1
    if pos >= len(tokens) or tokens[pos] not in NOUNS:
        raise ValueError(f"expected a noun at token {pos}")
    return adj, tokens[pos], pos + 1


def parse_source(source: str) -> Scene:
    """Inverse of :func:`render_source`; raises ``ValueError`` for text outside the task."""
    tokens = source.split()
    try:
        subject_adj, subject, pos = _parse_noun_phrase(tokens, 0, "the")
        if pos >= len(tokens) or tokens[pos] not in _VERB_BY_FORM:
            raise ValueError(f"expected a verb at token {pos}")
        verb = _VERB_BY_FORM[tokens[pos]]
        obj_adj, obj, pos = _parse_noun_phrase(tokens, pos + 1, "a")
        rest = tokens[pos:]
        location = None
        if rest:
            if not (len(rest) == 3 and rest[0] in PREPOSITIONS and rest[1] == "the"
                    and rest[2] in PLACES):
                raise ValueError(f"unexpected tail {' '.join(rest)!r}")
            location = (rest[0], rest[2])
    except ValueError as exc:
        raise ValueError(f"not a toy-task source: {source!r} ({exc})") from None
    return Scene(subject, subject_adj, verb, obj, obj_adj, location)


def valid_targets(source: str) -> list[str]:
    """Every target that counts as a correct paraphrase of ``source``."""
    return render_targets(parse_source(source))


def exact_match_accuracy(sources: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Fraction of hypotheses (whitespace-normalized) equal to ANY valid target of their source."""
    if len(sources) != len(hypotheses):
        raise ValueError(f"{len(sources)} sources but {len(hypotheses)} hypotheses")
    if not sources:
        return 0.0
    hits = sum(" ".join(h.split()) in valid_targets(s) for s, h in zip(sources, hypotheses))
    return hits / len(sources)


def sample_scene(rng: random.Random) -> Scene:
    subject, obj = rng.sample(NOUNS, 2)  # distinct nouns keep "the cat sees a cat" out
    # Optional modifiers vary the length: sources have 5-10 tokens, targets 7-13.
    return Scene(
        subject=subject,
        subject_adj=rng.choice(ADJECTIVES) if rng.random() < 0.7 else None,
        verb=rng.choice(VERBS),
        obj=obj,
        obj_adj=rng.choice(ADJECTIVES) if rng.random() < 0.7 else None,
        location=(rng.choice(PREPOSITIONS), rng.choice(PLACES)) if rng.random() < 0.5 else None,
    )


def generate_pairs(rng: random.Random, n: int, seen: set[str], paraphrases: int = 4) -> list[tuple[str, str]]:
    """``n`` pairs whose sources are not in ``seen`` (updated in place), so splits never overlap;
    each target is drawn from the first ``paraphrases`` templates."""
    pairs = []
    while len(pairs) < n:
        scene = sample_scene(rng)
        source = render_source(scene)
        if source in seen:
            continue
        seen.add(source)
        pairs.append((source, rng.choice(render_targets(scene)[:paraphrases])))
    return pairs


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def write_toy_task(
    out_dir: str | Path,
    n_train: int = 10000,
    n_valid: int = 500,
    n_test: int = 500,
    seed: int = 1,
    paraphrases: int = 4,
) -> dict[str, int]:
    """Write ``{train,valid,test}.{src,tgt}`` to ``out_dir``; returns the pair count per split.

    The output depends only on the arguments (same seed, same files).
    """
    if min(n_train, n_valid, n_test) < 0 or n_train + n_valid + n_test > N_SCENES // 2:
        raise ValueError(f"split sizes must be >= 0 and sum to at most {N_SCENES // 2}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    seen: set[str] = set()
    counts: dict[str, int] = {}
    for split, n in zip(_SPLITS, (n_train, n_valid, n_test)):
        pairs = generate_pairs(rng, n, seen, paraphrases)
        _write_lines(out / f"{split}.src", (s for s, _ in pairs))
        _write_lines(out / f"{split}.tgt", (t for _, t in pairs))
        counts[split] = len(pairs)
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m diffuseq_fairseq.dataprep.toy_task",
        description="Write the embedded toy paraphrase task as {train,valid,test}.{src,tgt}.",
    )
    parser.add_argument("out_dir")
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--n-valid", type=int, default=500)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--paraphrases", type=int, default=4, choices=range(1, 5),
                        help="templates the training targets are drawn from (1: deterministic passive voice)")
    args = parser.parse_args(argv)
    counts = write_toy_task(args.out_dir, args.n_train, args.n_valid, args.n_test, args.seed, args.paraphrases)
    print(" ".join(f"{split}={n}" for split, n in counts.items()), f"vocab={len(vocabulary())}")


if __name__ == "__main__":
    main()
