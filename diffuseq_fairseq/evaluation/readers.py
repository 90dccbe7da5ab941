"""Read generation outputs into one record per source: reference and candidate hypotheses.

Two formats, told apart by content (a first non-blank line starting with ``{`` means jsonl):

* fairseq-generate text: ``S-id``/``T-id`` (source, reference), ``H-id\\tscore\\ttext`` and
  ``D-id\\tscore\\ttext`` (tokenized and detokenized hypotheses, best first); ``P-``, ``I-``,
  ``E-id_step`` and log lines are ignored. D- lines are preferred, H- lines are the fallback.
* DiffuSeq jsonl, one ``{"recover", "reference", "source"}`` object per line, one file per seed.

Several files are merged by example id (the line index for jsonl), so one file per seed yields
the candidate sets that the official script builds; the first file's hypothesis is the selected one.
An example appears once per file: a second S- or T- line for an id (e.g. two outputs concatenated)
is an error, since its hypotheses would otherwise pose as extra candidates.

Reference files (several references per source) hold one reference per line, line k for id k.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Sequence

_FAIRSEQ_LINE = re.compile(r"([A-Z])-(\d+)(?:_\d+)?(?:\t(.*))?$")
_SPECIAL = ("[CLS]", "[SEP]")
# subword-nmt's continuation marker, left in the text when fairseq-generate runs without --remove-bpe.
_BPE_SEPARATOR = re.compile(r"@@(?: |$)")


@dataclass
class Generations:
    """Aligned per-example outputs; ``candidates[k][0]`` is the hypothesis that gets scored."""

    ids: list[int]
    sources: list[str]
    references: list[str]
    candidates: list[list[str]]
    bpe_lines: int = 0  # lines of the file whose text still holds BPE separators

    @property
    def selected(self) -> list[str]:
        return [c[0] for c in self.candidates]


def has_bpe(text: str) -> bool:
    """Whether ``text`` still holds subword-nmt separators (``@@ ``)."""
    return _BPE_SEPARATOR.search(text) is not None


def clean(text: str, strip_pad: bool = False) -> str:
    """Delete BERT special tokens by string replacement like the official script ([PAD] only from
    hypotheses), then collapse the whitespace this leaves behind."""
    for token in _SPECIAL + (("[PAD]",) if strip_pad else ()):
        text = text.replace(token, "")
    return " ".join(text.split())


@dataclass
class _Entry:
    source: str = ""
    source_line: int = 0
    reference: str | None = None
    reference_line: int = 0
    first_hyp_line: int = 0
    detok: list[str] = field(default_factory=list)
    tok: list[str] = field(default_factory=list)


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]  # not splitlines(): text may hold U+2028 etc.
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def _check_first(path: str, lineno: int, kind: str, sample_id: int, entry: _Entry) -> None:
    first = entry.source_line if kind == "S" else entry.reference_line
    if first:
        raise ValueError(
            f"{path}:{lineno}: second {kind}- line for id {sample_id} (the first is line {first}): an example "
            "appears once in a fairseq-generate output; are several outputs concatenated? Give one file per run"
        )


def _group_by_id(path: str, lines: Sequence[str]) -> tuple[dict[int, _Entry], int]:
    """The S/T/H/D lines of each sample id, and how many of them still hold BPE separators."""
    entries: dict[int, _Entry] = {}
    bpe_lines = 0
    for lineno, line in enumerate(lines, 1):
        match = _FAIRSEQ_LINE.match(line)
        if match is None or match.group(1) not in "STHD":
            continue
        kind, sample_id, rest = match.group(1), int(match.group(2)), match.group(3) or ""
        bpe_lines += has_bpe(rest)
        entry = entries.setdefault(sample_id, _Entry())
        if kind in "ST":
            _check_first(path, lineno, kind, sample_id, entry)
        if kind == "S":
            entry.source, entry.source_line = clean(rest), lineno
        elif kind == "T":
            entry.reference, entry.reference_line = clean(rest), lineno
        else:
            score, _, text = rest.partition("\t")
            try:
                float(score)
            except ValueError:
                raise ValueError(f"{path}:{lineno}: expected '{kind}-{sample_id}<TAB>score<TAB>text'") from None
            (entry.detok if kind == "D" else entry.tok).append(clean(text, strip_pad=True))
            entry.first_hyp_line = entry.first_hyp_line or lineno
    return entries, bpe_lines


def parse_fairseq_generate(path: str, lines: Sequence[str]) -> Generations:
    """Group fairseq-generate lines by sample id; ids come back sorted numerically."""
    entries, bpe_lines = _group_by_id(path, lines)
    if not entries:
        raise ValueError(f"{path}: no S-/T-/H-/D- lines found; is this fairseq-generate output?")
    generations = Generations([], [], [], [], bpe_lines)
    for sample_id in sorted(entries):
        entry = entries[sample_id]
        if not entry.first_hyp_line and entry.reference is None:
            continue
        if not entry.first_hyp_line:
            raise ValueError(f"{path}:{entry.reference_line}: id {sample_id} has a T- line but no H- or D- line")
        if entry.reference is None:
            raise ValueError(
                f"{path}:{entry.first_hyp_line}: id {sample_id} has a hypothesis but no T- (reference) line"
            )
        generations.ids.append(sample_id)
        generations.sources.append(entry.source)
        generations.references.append(entry.reference)
        generations.candidates.append(entry.detok or entry.tok)
    return generations


def parse_diffuseq_jsonl(path: str, lines: Sequence[str]) -> Generations:
    """One example per non-blank line; its id is its index among those lines."""
    generations = Generations([], [], [], [])
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{lineno}: invalid JSON ({err.msg}, column {err.colno})") from None
        if not (
            isinstance(record, dict)
            and isinstance(record.get("recover"), str)
            and isinstance(record.get("reference"), str)
            and isinstance(record.get("source", ""), str)
        ):
            raise ValueError(f"{path}:{lineno}: expected an object with string fields 'recover' and 'reference'")
        generations.ids.append(len(generations.ids))
        generations.bpe_lines += any(has_bpe(record.get(key, "")) for key in ("recover", "reference", "source"))
        generations.sources.append(clean(record.get("source", "")))
        generations.references.append(clean(record["reference"]))
        generations.candidates.append([clean(record["recover"], strip_pad=True)])
    if not generations.ids:
        raise ValueError(f"{path}: no records")
    return generations


def read_file(path: str) -> Generations:
    """Read one fairseq-generate or DiffuSeq jsonl file, detecting the format from its content."""
    lines = _read_lines(path)
    first = next((line.lstrip() for line in lines if line.strip()), "")
    if not first:
        raise ValueError(f"{path}: empty file")
    parse = parse_diffuseq_jsonl if first.startswith("{") else parse_fairseq_generate
    return parse(path, lines)


def merge_runs(paths: Sequence[str], runs: Sequence[Generations]) -> Generations:
    """Merge what ``read_file`` read from files that hold the same examples (e.g. one per seed)
    into candidate sets."""
    for later, path in enumerate(paths[1:], 1):
        repeated = next((earlier for earlier in paths[:later] if os.path.samefile(earlier, path)), None)
        if repeated is not None:
            raise ValueError(f"{path}: the same file as {repeated}; its hypotheses would pose as extra candidates")
    first = runs[0]
    for path, run in zip(paths[1:], runs[1:]):
        if run.ids != first.ids:
            raise ValueError(
                f"{path}: holds {len(run.ids)} examples whose ids differ from the {len(first.ids)} in {paths[0]}"
            )
        for sample_id, ours, theirs in zip(run.ids, run.references, first.references):
            if ours != theirs:
                raise ValueError(f"{path}: reference of id {sample_id} differs from the one in {paths[0]}")
    candidates = [[c for run in runs for c in run.candidates[k]] for k in range(len(first.ids))]
    return Generations(first.ids, first.sources, first.references, candidates, sum(run.bpe_lines for run in runs))


def read_files(paths: Sequence[str]) -> Generations:
    """Read and merge files that hold the same examples (e.g. one per seed) into candidate sets."""
    if not paths:
        raise ValueError("no input files")
    return merge_runs(paths, [read_file(path) for path in paths])


def _check_ids_are_line_numbers(ids: Sequence[int], scored: str) -> None:
    if list(ids) == list(range(len(ids))):
        return
    missing = sorted(set(range(max(ids) + 1)) - set(ids))
    shown = ", ".join(map(str, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    raise ValueError(
        f"{scored}: reference files need the ids 0..N-1 (line k of a reference file is the reference of id k), "
        f"but {len(missing)} are missing ({shown}); fairseq-generate drops a last batch smaller than "
        "--required-batch-size-multiple unless it is 1"
    )


def read_reference_files(paths: Sequence[str], ids: Sequence[int], scored: str = "the output") -> list[list[str]]:
    """Per source (in the order of ``ids``, which must be 0..N-1), its references in the order of
    ``paths``: line k of every file is a reference of id k. ``scored`` names the output in errors."""
    if not paths:
        raise ValueError("no reference files")
    _check_ids_are_line_numbers(ids, scored)
    columns = []
    for path in paths:
        lines = _read_lines(path)
        if len(lines) != len(ids):
            raise ValueError(
                f"{path}: {len(lines)} lines, but {scored} holds {len(ids)} sources (ids 0..{len(ids) - 1}); "
                "line k must be a reference of id k"
            )
        columns.append([clean(line) for line in lines])
    return [list(refs) for refs in zip(*columns)]
