"""diffuseq-eval against the official ``scripts/eval_seq2seq.py`` on the same jsonl files; plugin venv.

    .venv/bin/python benchmarks/official/compare_metrics.py --make-cases runs/metric_cases
    .venv/bin/python benchmarks/official/compare_metrics.py --folder generation_outputs/RUN/ema...samples

A folder holds one jsonl file per seed, as the official decoder writes them (``{"recover",
"reference", "source"}`` per line), so each source has one candidate per file. ``--make-cases``
first writes such a folder with the cases where the definitions can part: BERT specials to strip,
empty and very short outputs (no 4-gram), identical candidates, punctuation and capitals (ROUGE's
normaliser), plus random paraphrase-like sentences. The official script runs in the official venv
(benchmarks/official/eval_official.py, BERTScore aside); diffuseq-eval runs here, on each file
alone (BLEU, ROUGE-L, dist-1, length of that file) and on all files (self-BLEU, div-4).
Prints each figure of both and exits 1 if one differs by more than --tolerance, apart from the
known difference of definition listed in KNOWN_DIFFERENCES.
"""
import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from diffuseq_fairseq.evaluation.cli import main as diffuseq_eval

REPO = Path(__file__).resolve().parents[2]
QUALITY = ("bleu", "rouge_l", "dist_1", "avg_len")
DIVERSITY = ("self_bleu", "div_4")
KNOWN_DIFFERENCES = {
    "avg_len": "the official Len is len(recover.split(' ')) after deleting [CLS] [SEP] [PAD] by string replacement, "
               "so it counts the empty strings left behind; diffuseq-eval counts words (see its avg_len)",
}
WORDS = ("how", "do", "i", "can", "what", "is", "the", "best", "way", "to", "learn", "python", "a", "good",
         "book", "why", "are", "people", "so", "rude", "on", "quora", "which", "language", "should")
# Fixed candidates (one per file) that test a definition each; the reference is the first column.
EDGE_CASES = [
    ("[CLS] what is the best way [SEP]", ["[CLS] what is the best way [SEP] [PAD] [PAD]",
                                          "what is the way [SEP]", "[CLS] the best way [SEP] [PAD]"]),
    ("[CLS] why are people rude [SEP]", ["[CLS] [SEP] [PAD]", "", "why"]),  # empty and 1-word outputs
    ("how do i learn", ["how do", "how", "do i"]),  # no 4-gram in any candidate
    ("which book should i read", ["which book should i read"] * 3),  # identical candidates
    ("What's the BEST way, to learn?", ["what's the best way to learn ?", "WHAT IS THE BEST WAY!",
                                         "the best... way; to learn"]),
]


def write_cases(folder: Path, sources: int = 40, files: int = 3, seed: int = 3) -> Path:
    """seed{k}.json files: the edge cases, then random sentences with overlapping candidates."""
    rng = random.Random(seed)
    rows = [(ref, cands) for ref, cands in EDGE_CASES]
    for _ in range(sources - len(rows)):
        reference = [rng.choice(WORDS) for _ in range(rng.randint(3, 12))]
        candidates = []
        for _ in range(files):
            words = [w if rng.random() < 0.7 else rng.choice(WORDS) for w in reference]
            candidates.append(" ".join(words[: max(1, len(words) + rng.randint(-3, 2))]))
        rows.append((" ".join(reference), candidates))
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        with open(folder / f"seed{101 + k}_step0.json", "w", encoding="utf-8") as f:
            for n, (reference, candidates) in enumerate(rows):
                record = {"recover": candidates[k], "reference": reference, "source": f"[CLS] source {n} [SEP]"}
                f.write(json.dumps(record) + "\n")
    return folder


def official_figures(folder: Path, python: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "official.json"
        subprocess.run([str(python), str(REPO / "benchmarks" / "official" / "eval_official.py"), "--folder",
                        str(folder), "--json", str(out)], check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def plugin_figures(paths) -> dict:
    def run(files):
        import contextlib
        import io

        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            status = diffuseq_eval([str(p) for p in files] + ["--json"])
        if status:
            raise SystemExit(f"diffuseq-eval failed on {files}")
        return json.loads(printed.getvalue())

    return {"files": [run([path]) for path in paths], **{k: run(paths)[k] for k in DIVERSITY}}


def compare(official: dict, ours: dict):
    """Rows (figure, official, plugin, |difference|)."""
    rows = []
    for k, (theirs, mine) in enumerate(zip(official["files"], ours["files"])):
        rows += [(f"file {k} {key}", theirs[key], mine[key]) for key in QUALITY]
    rows += [(key, official[key], ours[key]) for key in DIVERSITY]
    return [(name, a, b, abs(a - b) if b is not None else float("inf")) for name, a, b in rows]


def unexplained(rows, tolerance: float):
    """Figures that differ by more than ``tolerance`` for no known reason of definition."""
    return [name for name, _, _, gap in rows if gap > tolerance and name.split()[-1] not in KNOWN_DIFFERENCES]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--folder", type=Path, help="existing folder of *json files, one per seed")
    source.add_argument("--make-cases", type=Path, metavar="FOLDER", help="write the test cases there first")
    parser.add_argument("--official-python", type=Path, default=REPO / ".official-venv" / "bin" / "python")
    parser.add_argument("--tolerance", type=float, default=1e-6)
    args = parser.parse_args(argv)
    folder = write_cases(args.make_cases) if args.make_cases else args.folder
    paths = sorted(folder.glob("*json"))  # the official script's order
    rows = compare(official_figures(folder, args.official_python), plugin_figures(paths))
    print(f"{len(paths)} files in {folder}: official scripts/eval_seq2seq.py against diffuseq-eval")
    print(f"{'figure':<22} {'official':>20} {'diffuseq-eval':>20} {'|difference|':>13}")
    for name, theirs, mine, gap in rows:
        print(f"{name:<22} {theirs:>20.12g} {mine if mine is None else format(mine, '20.12g'):>20} {gap:>13.3e}")
    for key, reason in KNOWN_DIFFERENCES.items():
        if any(name.split()[-1] == key and gap > args.tolerance for name, _, _, gap in rows):
            print(f"known difference, {key}: {reason}")
    differing = unexplained(rows, args.tolerance)
    print(f"differ by more than {args.tolerance:g} otherwise: {', '.join(differing) if differing else 'none'}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
