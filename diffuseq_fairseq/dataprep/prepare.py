"""Turn raw seq2seq data into a fairseq data-bin in one command.

Pipeline per split: read and validate (:mod:`.validate`) -> optional lowercasing -> optional Moses
tokenization -> optional joint BPE learned on train source+target -> ``DESTDIR/text/{split}.{lang}``
-> ``fairseq-preprocess --joined-dictionary`` into ``DESTDIR`` (run with this same interpreter).
Then one line per split with the pair count, mean lengths and canvas coverage (:mod:`.lengths`).

Usage::

    python -m diffuseq_fairseq.dataprep.prepare --jsonl-dir DIR [--split-valid N,M] --destdir DEST [options]
    python -m diffuseq_fairseq.dataprep.prepare --trainpref P --validpref P [--testpref P] \\
        --source-lang S --target-lang T --destdir DEST [options]
    python -m diffuseq_fairseq.dataprep.prepare --captions-dir DIR --destdir DEST [options]

    options: --tokenize {none,moses} [--moses-lang L] --lowercase --bpe-merges N
             --on-empty {error,skip} --workers N --force

A missing test split (no ``test.jsonl`` / no ``--testpref`` / ``--split-valid N,0``) reuses the
valid split, so ``fairseq-generate --gen-subset test`` always works. ``--split-valid`` cuts a folder
holding only ``valid.jsonl`` into three splits (:mod:`.holdout`); ``--captions-dir`` builds the
caption-paraphrase task and its multi-reference files in ``DEST/refs`` (:mod:`.captions`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from .captions import (CAPTION_LANG, REFS_DIR, CaptionSplit, cyclic_pairs, held_out_pairs,
                       read_caption_split, remove_references, write_references)
from .holdout import cut_holdout, parse_holdout_sizes
from .lengths import length_summary, token_lengths
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
    src = parser.add_argument_group(
        "input: --jsonl-dir, --trainpref/--validpref with languages, or --captions-dir")
    src.add_argument("--jsonl-dir", help="holds train.jsonl, valid.jsonl[, test.jsonl]; or only "
                     "valid.jsonl, cut with --split-valid")
    src.add_argument("--split-valid", type=parse_holdout_sizes, metavar="N,M",
                     help="with a --jsonl-dir holding only valid.jsonl (e.g. DiffuSeq's released QQP "
                     "split): cut it in file order, without shuffling: the last N+M pairs become "
                     "valid (N) and test (M, the very last; 0: test reuses valid), all pairs before "
                     "them train (N and M count pairs kept under --on-empty)")
    src.add_argument("--trainpref", help="parallel text: reads TRAINPREF.S and TRAINPREF.T")
    src.add_argument("--validpref")
    src.add_argument("--testpref", help="optional; defaults to reusing the valid split")
    src.add_argument("--source-lang", help="file suffix of the source side (parallel input)")
    src.add_argument("--target-lang", help="file suffix of the target side (parallel input)")
    src.add_argument("--captions-dir", help="caption paraphrase: five line-aligned caption files "
                     "per split, {train,val,test_a}.{1..5}.en (line k = image k); train on the five "
                     "cyclic pairs of each image (1->2, ..., 5->1), valid/test on caption 3 -> 1, "
                     "with the caption-3 sources and the four references (captions 1, 2, 4, 5) as "
                     "plain text in DEST/refs/{valid,test}.src and .ref1..4; --on-empty skip drops "
                     "an image with an empty caption")
    parser.add_argument("--destdir", required=True, help="output data-bin directory")
    parser.add_argument("--tokenize", choices=("none", "moses"), default="none",
                        help="'none' for already tokenized input (default)")
    parser.add_argument("--moses-lang", help="Moses language for both sides (default: the "
                        "source/target language for parallel input, 'en' for jsonl "
                        "and captions)")
    parser.add_argument("--lowercase", action="store_true")
    parser.add_argument("--bpe-merges", type=int, default=0,
                        help="joint subword-nmt BPE merges learned on train src+tgt (0: no BPE)")
    parser.add_argument("--on-empty", choices=ON_EMPTY_CHOICES, default="error",
                        help="what to do with pairs that have an empty side (default: error)")
    parser.add_argument("--workers", type=int, default=1, help="fairseq-preprocess workers")
    parser.add_argument("--force", action="store_true", help="overwrite an existing data-bin")
    args = parser.parse_args(argv)

    if sum(map(bool, (args.jsonl_dir, args.trainpref, args.captions_dir))) != 1:
        parser.error("give exactly one of --jsonl-dir, --trainpref or --captions-dir")
    if args.split_valid and not args.jsonl_dir:
        parser.error("--split-valid needs --jsonl-dir")
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
    if args.trainpref:
        return args.source_lang, args.target_lang
    return "src", "tgt"


def read_jsonl_splits(args: argparse.Namespace) -> list[Split]:
    directory = Path(args.jsonl_dir)
    if args.split_valid:
        for name in ("train", "test"):
            if (directory / f"{name}.jsonl").exists():
                raise DataError(f"{directory / name}.jsonl: --split-valid cuts valid.jsonl into all "
                                f"three splits, so the folder must not hold {name}.jsonl too "
                                "(without --split-valid it is used)")
        pairs, stats = read_diffuseq_jsonl(directory / "valid.jsonl", args.on_empty)
        parts = cut_holdout(pairs, stats, *args.split_valid)
        return [Split(name, part, part_stats, note=f" from {part_stats.source}")
                for name, part, part_stats in parts]
    if not (directory / "train.jsonl").exists():
        raise DataError(f"{directory / 'train.jsonl'}: cannot open: no such file (a folder holding "
                        "only valid.jsonl, like DiffuSeq's released QQP split, can be cut into "
                        "train/valid/test with --split-valid N,M)")
    splits = []
    for name in SPLITS:
        path = directory / f"{name}.jsonl"
        if name == "test" and not path.exists():
            continue
        splits.append(Split(name, *read_diffuseq_jsonl(path, args.on_empty)))
    return splits


def read_splits(args: argparse.Namespace) -> list[Split]:
    """Read and validate every split of --jsonl-dir or --trainpref input, in ``SPLITS`` order."""
    if args.jsonl_dir:
        splits = read_jsonl_splits(args)
    else:
        splits = []
        for name in SPLITS:
            prefix = getattr(args, f"{name}pref")
            if prefix is not None:
                src_path, tgt_path = (f"{prefix}.{lang}" for lang in languages(args))
                splits.append(Split(name, *read_parallel(src_path, tgt_path, args.on_empty)))
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
    if args.captions_dir:
        return (build(CAPTION_LANG),) * 2
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


def read_captions(args: argparse.Namespace) -> tuple[list[Split], list[CaptionSplit]]:
    """Caption input: the pairs of every split, and the valid/test images for the references.

    Lowercasing and tokenization apply per caption, so pairs and references hold the same text.
    """
    tokenize = make_tokenizers(args, CAPTION_LANG, CAPTION_LANG)[0]
    normalize = (lambda text: tokenize(text.lower())) if args.lowercase else tokenize
    parts = [read_caption_split(args.captions_dir, name, args.on_empty, normalize) for name in SPLITS]
    splits = [Split("train", cyclic_pairs(parts[0].images), parts[0].stats,
                    note=" (images; five cyclic pairs each)")]
    splits += [Split(part.name, held_out_pairs(part.images), part.stats,
                     note=f" (images; caption 3 -> 1, four references in {REFS_DIR}/)")
               for part in parts[1:]]
    return splits, parts[1:]


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
    if args.captions_dir:
        splits, held_out = read_captions(args)
    else:
        splits, held_out = read_splits(args), []
        process(splits, args, src_lang, tgt_lang)
    for split in splits:
        print(split.summary(), flush=True)
    if not splits[0].pairs:
        raise DataError(f"{splits[0].stats.source}: no training pairs left")
    text_dir = destdir / "text"
    text_dir.mkdir(parents=True, exist_ok=True)
    remove_references(destdir / REFS_DIR)  # stale ones would misdescribe the data
    for part in held_out:
        write_references(part, destdir / REFS_DIR)
    word_lengths = [token_lengths(split.pairs) for split in splits]
    if args.bpe_merges:
        apply_joint_bpe(splits, args.bpe_merges, text_dir / "bpe.codes")
    else:
        (text_dir / "bpe.codes").unlink(missing_ok=True)  # a stale file would misdescribe the data
    for split, words in zip(splits, word_lengths):
        print(length_summary(split.name, words, token_lengths(split.pairs)), flush=True)
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
