"""The vocabulary of an official DiffuSeq run, and the order of its ids in a fairseq Dictionary.

An official run's tokens come from its vocab.json (``{token: id}``, written by the official code),
its ``--vocab FILE`` (a token per line, first field, after [START] [END] [UNK] [PAD]) or, for
``--vocab bert`` runs, the WordPiece ``vocab.txt`` (with the special tokens the tokenizer saved).
fairseq's Dictionary puts ``<s> <pad> </s> <unk>`` at ids 0-3: the official start, pad, end and
unknown symbols take those ids and every other token keeps its order after them
(``OfficialVocabulary.fairseq_order``), so a token fairseq cannot hold (empty, with whitespace,
twice, or one of fairseq's own specials) is refused with its file and line.
"""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")  # fairseq Dictionary ids 0-3
CUSTOM_SPECIALS = ("[START]", "[PAD]", "[END]", "[UNK]")  # official --vocab FILE: ids 0, 3, 1, 2
BERT_SPECIAL_KEYS = ("cls_token", "pad_token", "sep_token", "unk_token")
BERT_SPECIALS = ("[CLS]", "[PAD]", "[SEP]", "[UNK]")


class ConversionError(ValueError):
    """Input the converter cannot use; the message names the file and the key or line."""


@dataclass
class OfficialVocabulary:
    """Tokens by official id, and the official ids that become fairseq's <s> <pad> </s> <unk>."""

    path: Path
    tokens: List[str]
    special_ids: List[int]

    def fairseq_order(self) -> List[int]:
        """order[fairseq id] = official id."""
        specials = set(self.special_ids)
        return list(self.special_ids) + [i for i in range(len(self.tokens)) if i not in specials]


def read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise ConversionError(f"{path}: {what} not found (give it with an option, see --help)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConversionError(f"{path}: not a JSON file ({err})") from None


def _check_tokens(path: Path, tokens: Sequence[str], where: Sequence[str]) -> None:
    """Tokens fairseq's Dictionary can hold: non-empty, no whitespace, unique, not fairseq's specials."""
    seen: Dict[str, str] = {}
    for token, place in zip(tokens, where):
        if not token or any(c.isspace() for c in token):
            raise ConversionError(f"{path}: {place}: token {token!r} is empty or holds whitespace")
        if token in FAIRSEQ_SPECIALS:
            raise ConversionError(f"{path}: {place}: token {token!r} is one of fairseq's special symbols")
        if token in seen:
            raise ConversionError(f"{path}: {place}: token {token!r} appears twice (first at {seen[token]})")
        seen[token] = place


def _vocabulary_from_json(path: Path) -> List[str]:
    """vocab.json written by the official code: {token: id}, ids 0..V-1."""
    mapping = read_json(path, "vocabulary")
    if not isinstance(mapping, dict):
        raise ConversionError(f"{path}: expected a JSON object {{token: id}}")
    tokens: List[Optional[str]] = [None] * len(mapping)
    for token, index in mapping.items():
        if not isinstance(index, int) or not 0 <= index < len(mapping) or tokens[index] is not None:
            raise ConversionError(f"{path}: token {token!r} has id {index!r}; ids must be 0..{len(mapping) - 1}, "
                                  "each used once")
        tokens[index] = token
    _check_tokens(path, tokens, [f"id {i}" for i in range(len(tokens))])
    return tokens


def _vocabulary_from_lines(path: Path, prefix: Sequence[str], first_field: bool) -> List[str]:
    """A token per line (id = position after ``prefix``): the official --vocab FILE (first
    space-separated field, after [START] [END] [UNK] [PAD]) or a WordPiece vocab.txt (whole line)."""
    if not path.is_file():
        raise ConversionError(f"{path}: vocabulary not found (give it with --vocab)")
    lines = path.read_text(encoding="utf-8").splitlines()
    tokens = [line.strip().split(" ")[0] if first_field else line.rstrip("\r\n") for line in lines]
    places = [f"special {t}" for t in prefix] + [f"line {n}" for n in range(1, len(tokens) + 1)]
    _check_tokens(path, list(prefix) + tokens, places)
    return list(prefix) + tokens


def read_vocabulary(path: Path, bert: bool) -> OfficialVocabulary:
    """The official vocabulary of a run: vocab.json, a --vocab whitespace file, or (bert) vocab.txt."""
    if bert:
        tokens = _vocabulary_from_lines(path, (), first_field=False)
        names = dict(zip(BERT_SPECIAL_KEYS, BERT_SPECIALS))
        special_map = path.parent / "special_tokens_map.json"
        if special_map.is_file():  # written by the official tokenizer.save_pretrained
            saved = read_json(special_map, "special tokens")
            names.update({k: v if isinstance(v, str) else v.get("content") for k, v in saved.items() if k in names})
        specials = [names[k] for k in BERT_SPECIAL_KEYS]
    elif path.suffix == ".json":
        tokens, specials = _vocabulary_from_json(path), CUSTOM_SPECIALS
    else:
        tokens, specials = _vocabulary_from_lines(path, ("[START]", "[END]", "[UNK]", "[PAD]"), True), CUSTOM_SPECIALS
    index = {token: i for i, token in enumerate(tokens)}
    missing = [name for name in specials if name not in index]
    if missing:
        raise ConversionError(f"{path}: the special token(s) {', '.join(missing)} are missing")
    return OfficialVocabulary(path, tokens, [index[name] for name in specials])
