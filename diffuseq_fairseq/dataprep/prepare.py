"""Turn raw seq2seq data into a fairseq data-bin in one command.

Pipeline per split: read and validate (:mod:`.validate`) -> optional lowercasing -> optional Moses
tokenization -> optional joint BPE learned on train source+target -> ``DESTDIR/text/{split}.{lang}``
-> ``fairseq-preprocess --joined-dictionary`` into ``DESTDIR`` (run with this same interpreter).

Usage::

    python -m diffuseq_fairseq.dataprep.prepare --jsonl-dir DIR --destdir DEST [options]
    python -m diffuseq_fairseq.dataprep.prepare --trainpref P --validpref P [--testpref P] \\
        --source-lang S --target-lang T --destdir DEST [options]

    options: --tokenize {none,moses} [--moses-lang L] --lowercase --bpe-merges N
             --on-empty {error,skip} --workers N --force

A missing test split (no ``test.jsonl`` / no ``--testpref``) reuses the valid split, so
``fairseq-generate --gen-subset test`` always works.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .validate import ON_EMPTY_CHOICES, DataError, ReadStats, read_diffuseq_jsonl, read_parallel

SPLITS = ("train", "valid", "test")
Pairs = list[tuple[str, str]]


@dataclass
class Split:
    name: str
    pairs: Pairs
    stats: ReadStats
    skipped_after_processing: int = 0
    note: str = ""

    def summary(self) -> str:
        text = f"{self.name}: {self.stats.summary()}"
        if self.skipped_after_processing:
            text += f"; skipped {self.skipped_after_processing} more, empty after tokenization"
        return f"{text}; wrote {len(self.pairs)} pairs{self.note}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="diffuseq-prepare",
        description="Validate, tokenize and BPE-encode raw seq2seq data, then binarize it with "
        "fairseq-preprocess --joined-dictionary.",
    )
    src = parser.add_argument_group("input: --jsonl-dir, or --trainpref/--validpref with languages")
    src.add_argument("--jsonl-dir", help="holds train.jsonl, valid.jsonl[, test.jsonl]")
    src.add_argument("--trainpref", help="parallel text: reads TRAINPREF.S and TRAINPREF.T")
    src.add_argument("--validpref")
    src.add_argument("--testpref", help="optional; defaults to reusing the valid split")
    src.add_argument("--source-lang", help="file suffix of the source side (parallel input)")
    src.add_argument("--target-lang", help="file suffix of the target side (parallel input)")
    parser.add_argument("--destdir", required=True, help="output data-bin directory")
    parser.add_argument("--tokenize", choices=("none", "moses"), default="none",
                        help="'none' for already tokenized input (default)")
    parser.add_argument("--moses-lang", help="Moses language for both sides (default: the "
                        "source/target language for parallel input, 'en' for jsonl)")
    parser.add_argument("--lowercase", action="store_true")
    parser.add_argument("--bpe-merges", type=int, default=0,
                        help="joint subword-nmt BPE merges learned on train src+tgt (0: no BPE)")
    parser.add_argument("--on-empty", choices=ON_EMPTY_CHOICES, default="error",
                        help="what to do with pairs that have an empty side (default: error)")
    parser.add_argument("--workers", type=int, default=1, help="fairseq-preprocess workers")
    parser.add_argument("--force", action="store_true", help="overwrite an existing data-bin")
    args = parser.parse_args(argv)

    if bool(args.jsonl_dir) == bool(args.trainpref):
        parser.error("give exactly one of --jsonl-dir or --trainpref")
    if args.trainpref:
        if not (args.validpref and args.source_lang and args.target_lang):
            parser.error("--trainpref needs --validpref, --source-lang and --target-lang")
        if args.source_lang == args.target_lang:
            parser.error("--source-lang and --target-lang must differ")
    elif args.validpref or args.testpref or args.source_lang or args.target_lang:
        parser.error("--validpref/--testpref/--source-lang/--target-lang need --trainpref")
    if args.bpe_merges < 0 or args.workers < 1:
        parser.error("--bpe-merges must be >= 0 and --workers >= 1")
    return args


def languages(args: argparse.Namespace) -> tuple[str, str]:
    """File suffixes of the source and target side, in the input and in the data-bin."""
    return ("src", "tgt") if args.jsonl_dir else (args.source_lang, args.target_lang)


def read_splits(args: argparse.Namespace) -> list[Split]:
    """Read and validate every split, in ``SPLITS`` order."""
    src_lang, tgt_lang = languages(args)
    splits = []
    for name in SPLITS:
        if args.jsonl_dir:
            path = Path(args.jsonl_dir) / f"{name}.jsonl"
            if name == "test" and not path.exists():
                continue
            pairs, stats = read_diffuseq_jsonl(path, args.on_empty)
        else:
            prefix = getattr(args, f"{name}pref")
            if prefix is None:
                continue
            src_path, tgt_path = f"{prefix}.{src_lang}", f"{prefix}.{tgt_lang}"
            pairs, stats = read_parallel(src_path, tgt_path, args.on_empty)
        splits.append(Split(name, pairs, stats))
    if len(splits) == 2:
        valid = splits[1]
        note = " (no test input: reusing valid)"
        splits.append(Split("test", list(valid.pairs), valid.stats, note=note))
    return splits


def make_tokenizers(
    args: argparse.Namespace, src_lang: str, tgt_lang: str
) -> tuple[Callable[[str], str], Callable[[str], str]]:
    if args.tokenize == "none":
        return (str, str)
    from sacremoses import MosesTokenizer

    def build(lang: str) -> Callable[[str], str]:
        tok = MosesTokenizer(lang=lang)
        # No XML escaping: outputs stay readable and detokenize without an extra unescape step.
        return lambda text: tok.tokenize(text, escape=False, return_str=True)

    if args.moses_lang:
        return (build(args.moses_lang),) * 2
    if args.jsonl_dir:
        return (build("en"),) * 2
    return build(src_lang), build(tgt_lang)


def process(splits: list[Split], args: argparse.Namespace, src_lang: str, tgt_lang: str) -> None:
    """Lowercase and tokenize in place; drop (or reject) pairs that tokenization emptied."""
    tok_src, tok_tgt = make_tokenizers(args, src_lang, tgt_lang)
    for split in splits:
        out: Pairs = []
        for (src, tgt), line in zip(split.pairs, split.stats.kept_lines):
            if args.lowercase:
                src, tgt = src.lower(), tgt.lower()
            src, tgt = " ".join(tok_src(src).split()), " ".join(tok_tgt(tgt).split())
            if not src or not tgt:
                if args.on_empty == "error":
                    raise DataError(f"{split.stats.source}:{line}: empty after tokenization "
                                    "(use --on-empty skip to drop such pairs)")
                split.skipped_after_processing += 1
                continue
            out.append((src, tgt))
        split.pairs = out


def apply_joint_bpe(splits: list[Split], merges: int, codes_path: Path) -> None:
    """Learn ``merges`` joint BPE merges on train source+target and apply them to every split."""
    from subword_nmt.apply_bpe import BPE
    from subword_nmt.learn_bpe import learn_bpe

    train = splits[0].pairs
    corpus = [side for pair in train for side in pair]
    with open(codes_path, "w", encoding="utf-8") as codes:
        learn_bpe(corpus, codes, merges)
    with open(codes_path, encoding="utf-8") as codes:
        bpe = BPE(codes)
    for split in splits:
        split.pairs = [(bpe.segment(src), bpe.segment(tgt)) for src, tgt in split.pairs]


def write_text(splits: list[Split], text_dir: Path, src_lang: str, tgt_lang: str) -> None:
    for split in splits:
        for index, lang in ((0, src_lang), (1, tgt_lang)):
            lines = "".join(pair[index] + "\n" for pair in split.pairs)
            (text_dir / f"{split.name}.{lang}").write_text(lines, encoding="utf-8")


def binarize(text_dir: Path, destdir: Path, src_lang: str, tgt_lang: str, workers: int) -> None:
    cmd = [
        sys.executable, "-m", "fairseq_cli.preprocess",
        "--source-lang", src_lang, "--target-lang", tgt_lang, "--joined-dictionary",
        *(arg for name in SPLITS for arg in (f"--{name}pref", str(text_dir / name))),
        "--destdir", str(destdir), "--workers", str(workers),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(
            f"fairseq-preprocess failed (exit {result.returncode}): {' '.join(cmd)}\n"
            f"{result.stderr[-4000:]}"
        )


def prepare(args: argparse.Namespace) -> list[Split]:
    src_lang, tgt_lang = languages(args)
    destdir = Path(args.destdir)
    dicts = [destdir / f"dict.{lang}.txt" for lang in (src_lang, tgt_lang)]
    if any(d.exists() for d in dicts) and not args.force:
        raise FileExistsError(f"{destdir} already holds a data-bin; pass --force to overwrite it")
    splits = read_splits(args)
    text_dir = destdir / "text"
    text_dir.mkdir(parents=True, exist_ok=True)
    process(splits, args, src_lang, tgt_lang)
    for split in splits:
        print(split.summary(), flush=True)
    if not splits[0].pairs:
        raise DataError(f"{splits[0].stats.source}: no training pairs left")
    if args.bpe_merges:
        apply_joint_bpe(splits, args.bpe_merges, text_dir / "bpe.codes")
    else:
        (text_dir / "bpe.codes").unlink(missing_ok=True)  # a stale file would misdescribe the data
    write_text(splits, text_dir, src_lang, tgt_lang)
    for d in dicts:  # only now that the input is known good; fairseq refuses to overwrite them
        d.unlink(missing_ok=True)
    binarize(text_dir, destdir, src_lang, tgt_lang, args.workers)
    return splits


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        prepare(args)
    except (DataError, FileExistsError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"data-bin written to {args.destdir} (text after tokenization/BPE in its text/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
