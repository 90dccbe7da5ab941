"""Turn a teacher's fairseq-generate output over a training set into distilled training text.

Sequence-level knowledge distillation (Kim & Rush, 2016) trains a non-autoregressive student on an
autoregressive teacher's beam-search translations of the training sources. This writes
``DESTDIR/text/train.{src,tgt}`` in the training set's order (sources as generate printed them,
targets the teacher's best hypothesis, both still in BPE) and copies the valid and test sets,
binarized and as text, from the original data-bin, so students are scored on the real references.

    python -m diffuseq_fairseq.dataprep.distill GEN_TRAIN_OUTPUT --data-bin data-bin/multi30k_de_en \\
        --source-lang de --target-lang en --destdir data-bin/multi30k_de_en_kd

Every training pair must have exactly one hypothesis: a missing or repeated one is an error naming
the file (and line), never a silently dropped pair. ``scripts/distill.sh`` runs the whole pipeline.
"""
import argparse
import shutil
import struct
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

# fairseq's mmap index: magic, version (<Q), dtype code (<B), number of sequences (<Q).
MMAP_INDEX_MAGIC = b"MMIDIDX\x00\x00"


def indexed_dataset_size(index_path: Path) -> int:
    """Number of sentences in a fairseq mmap-binarized dataset, read from its ``.idx`` header."""
    with open(index_path, "rb") as index:
        header = index.read(len(MMAP_INDEX_MAGIC) + 8 + 1 + 8)
    if not header.startswith(MMAP_INDEX_MAGIC) or len(header) < 26:
        raise ValueError(f"{index_path}: not a fairseq mmap index (binarize with --dataset-impl mmap)")
    return struct.unpack("<Q", header[len(MMAP_INDEX_MAGIC) + 9:])[0]


def read_translations(gen_path: Path, n_pairs: int) -> Tuple[List[str], List[str]]:
    """Sources (S- lines) and best hypotheses (first H- line) of sentences 0..n_pairs-1, in order.

    Stricter than ``evaluation.readers.read_file``, which scores whatever ids it finds: here an
    unreadable, repeated or out-of-range line is an error, since it would cost a training pair."""
    sources: Dict[int, str] = {}
    hypotheses: Dict[int, str] = {}
    with open(gen_path, encoding="utf-8") as lines:
        for line_number, line in enumerate(lines, 1):
            kind, dash, rest = line.rstrip("\n").partition("-")
            if not dash or kind not in ("S", "H"):
                continue
            fields = rest.split("\t")
            expected_fields = 2 if kind == "S" else 3
            if len(fields) != expected_fields or not fields[0].isdigit():
                raise ValueError(f"{gen_path}:{line_number}: malformed {kind}- line: {line.strip()[:80]!r}")
            sample_id = int(fields[0])
            if sample_id >= n_pairs:
                raise ValueError(f"{gen_path}:{line_number}: sentence id {sample_id} but the set has {n_pairs}")
            if kind == "S":
                if sample_id in sources:
                    raise ValueError(f"{gen_path}:{line_number}: sentence {sample_id} translated twice")
                sources[sample_id] = fields[1]
            else:
                hypotheses.setdefault(sample_id, fields[2])  # the best of --nbest
    missing = sorted(set(range(n_pairs)) - set(hypotheses))
    if missing:
        raise ValueError(f"{gen_path}: no hypothesis for {len(missing)} of {n_pairs} sentences "
                         f"(first ids {missing[:5]}); was --required-batch-size-multiple 1 given?")
    missing_sources = sorted(set(range(n_pairs)) - set(sources))
    if missing_sources:
        raise ValueError(f"{gen_path}: no S- line for sentences {missing_sources[:5]} (generate with --quiet?)")
    return [sources[i] for i in range(n_pairs)], [hypotheses[i] for i in range(n_pairs)]


def write_distilled(gen_path: Path, data_bin: Path, source_lang: str, target_lang: str, destdir: Path) -> int:
    """Write the distilled training text and copy valid/test from ``data_bin``; returns the pair count."""
    pair = f"{source_lang}-{target_lang}"
    n_pairs = indexed_dataset_size(data_bin / f"train.{pair}.{source_lang}.idx")
    sources, hypotheses = read_translations(gen_path, n_pairs)
    text = destdir / "text"
    text.mkdir(parents=True, exist_ok=True)
    (text / f"train.{source_lang}").write_text("".join(s + "\n" for s in sources), encoding="utf-8")
    (text / f"train.{target_lang}").write_text("".join(h + "\n" for h in hypotheses), encoding="utf-8")
    for split in ("valid", "test"):
        for lang in (source_lang, target_lang):
            for suffix in ("bin", "idx"):
                shutil.copy2(data_bin / f"{split}.{pair}.{lang}.{suffix}", destdir)
            # The raw text (kept by diffuseq-prepare) is what the benchmarks score against.
            if (data_bin / "text" / f"{split}.{lang}").exists():
                shutil.copy2(data_bin / "text" / f"{split}.{lang}", text)
    return n_pairs


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("generate_output", type=Path, help="fairseq-generate output over the training set")
    parser.add_argument("--data-bin", type=Path, required=True)
    parser.add_argument("--source-lang", required=True)
    parser.add_argument("--target-lang", required=True)
    parser.add_argument("--destdir", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        n_pairs = write_distilled(args.generate_output, args.data_bin, args.source_lang, args.target_lang,
                                  args.destdir)
    except (OSError, ValueError) as error:
        raise SystemExit(f"distill: {error}")
    print(f"[distill] {n_pairs} distilled pairs written to {args.destdir / 'text'}")


if __name__ == "__main__":
    main()
