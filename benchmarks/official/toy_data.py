"""Write a small jsonl task (the plugin's toy paraphrase task) in the official DiffuSeq format.

    .venv/bin/python benchmarks/official/toy_data.py OUT_DIR

OUT_DIR gets train/valid/test.jsonl ({"src", "trg"} per line), ``vocab.txt`` (a whitespace
vocabulary for the official ``--vocab FILE``) and ``wordpiece/vocab.txt``: a small BERT WordPiece
vocabulary (for ``--vocab bert``, since bert-base-uncased cannot be downloaded here) that keeps
BERT's special tokens but at other ids than BERT's, and splits every "-ing" word into a stem and
``##ing``, so that both the id permutation and the ``##`` pieces are exercised.
"""
import argparse
import json
import random
from pathlib import Path

from diffuseq_fairseq.dataprep import toy_task

WORDPIECE_SPECIALS = ("[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def wordpiece_vocabulary(words):
    """BERT's specials, then each word, with "-ing" words only as stem + ##ing."""
    pieces = list(WORDPIECE_SPECIALS)
    for word in words:
        for piece in ((word[:-3], "##ing") if word.endswith("ing") else (word,)):
            if piece not in pieces:
                pieces.append(piece)
    return pieces


def write_toy_jsonl(out_dir: Path, train: int = 200, valid: int = 20, test: int = 12, seed: int = 1) -> Path:
    rng, seen = random.Random(seed), set()
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", train), ("valid", valid), ("test", test)):
        pairs = toy_task.generate_pairs(rng, count, seen)
        (out_dir / f"{split}.jsonl").write_text("".join(json.dumps({"src": s, "trg": t}) + "\n" for s, t in pairs))
    words = toy_task.vocabulary()
    (out_dir / "vocab.txt").write_text("".join(f"{word}\n" for word in words))
    (out_dir / "wordpiece").mkdir(exist_ok=True)
    (out_dir / "wordpiece" / "vocab.txt").write_text("".join(f"{piece}\n" for piece in wordpiece_vocabulary(words)))
    return out_dir


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    print(f"wrote {write_toy_jsonl(parser.parse_args().out_dir)}")
