"""``diffuseq-eval``: score fairseq-generate or DiffuSeq jsonl outputs with the paper's metrics.

Give one file per seed to also get the set-diversity metrics (self-BLEU, div-4); the first file's
hypotheses are the ones scored for quality.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional, Sequence, Union

from diffuseq_fairseq.evaluation.metrics import evaluate
from diffuseq_fairseq.evaluation.readers import Generations, has_bpe, merge_runs, read_file, read_reference_files

_LABELS = {
    "bleu": "BLEU (nltk sentence-level, method4, mean)",
    "rouge_l": "ROUGE-L F1 (mean)",
    "bertscore": "BERTScore F1 (mean)",
    "dist_1": "dist-1 (mean)",
    "self_bleu": "self-BLEU over candidates (lower = more diverse)",
    "div_4": "div-4 over candidates (higher = more diverse)",
    "avg_len": "average length (tokens)",
    "sacrebleu": "sacreBLEU corpus BLEU (13a; not the paper's BLEU)",
    "n": "sources",
    "candidates_per_source": "candidates per source",
    "references_per_source": "references per source",
}
# Fractions in [0, 1], shown x100 in the table like the paper's tables and the side by side.
_PERCENTAGES = {"bleu", "rouge_l", "bertscore", "dist_1", "self_bleu", "div_4", "sacrebleu"}
_EPILOG = """\
The table shows the scores x100 (the scale of the paper's tables and of scripts/compare_levt.py:
BLEU 0.2413 is shown as 24.13), avg_len in tokens. --json prints the same keys with the scores as
fractions in [0, 1] (null where a metric is undefined: self-BLEU and div-4 need two or more
candidates per source).
"""


def _format_value(key: str, value: Union[float, int, None]) -> str:
    if value is None:
        return "n/a"
    if key in _PERCENTAGES:
        return f"{100 * value:.2f}"
    return str(value) if isinstance(value, int) else f"{value:.2f}"


def format_table(result: dict[str, Union[float, int, None]]) -> str:
    """One metric per line: key, value, its scale (x100 for the scores) and what it measures."""
    width = max(len(key) for key in result)
    return "\n".join(
        f"{key:<{width}}  {_format_value(key, value):>7}  {'x100' if key in _PERCENTAGES else '    '}  "
        f"{_LABELS.get(key, '')}".rstrip()
        for key, value in result.items()
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffuseq-eval",
        description="Score generation outputs with DiffuSeq's metrics (scripts/eval_seq2seq.py protocol).",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "files", nargs="+", metavar="FILE",
        help="fairseq-generate output or DiffuSeq jsonl; several files (one per seed) form candidate sets",
    )
    parser.add_argument(
        "--refs", nargs="+", metavar="REF",
        help="score the quality metrics (BLEU, ROUGE-L, sacreBLEU, BERTScore) against all these references "
             "instead of the T- lines (jsonl: 'reference'): one file per reference, line k = a reference of id k "
             "(ids 0..N-1); list the original reference file too to keep it. Put --refs after the FILEs",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object, scores as fractions in [0, 1]")
    parser.add_argument("--bert-model", metavar="PATH", help="model for BERTScore (needs bert-score installed)")
    parser.add_argument("--bert-layers", type=int, metavar="N", help="layer of --bert-model to use")
    return parser


def _warn_bpe(path: str, count: int, fix: str) -> None:
    if count:
        print(f"diffuseq-eval: warning: {path}: {count} lines still hold BPE separators ('@@ '), so the scores "
              f"are over subword pieces: {fix}", file=sys.stderr)


def _read(
    files: Sequence[str], ref_paths: Optional[Sequence[str]]
) -> tuple[Generations, Optional[list[list[str]]]]:
    """The merged generations and, with reference files, every source's references."""
    runs = [read_file(path) for path in files]
    for path, run in zip(files, runs):
        _warn_bpe(path, run.bpe_lines, "add --remove-bpe to fairseq-generate")
    generations = merge_runs(files, runs)
    if not ref_paths:
        return generations, None
    reference_sets = read_reference_files(ref_paths, generations.ids, scored=files[0])
    for column, path in enumerate(ref_paths):
        count = sum(has_bpe(refs[column]) for refs in reference_sets)
        _warn_bpe(path, count, "give the references as plain text (what fairseq-generate --remove-bpe prints)")
    return generations, reference_sets


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.bert_layers is not None and args.bert_model is None:
        parser.error("--bert-layers needs --bert-model")
    try:
        generations, reference_sets = _read(args.files, args.refs)
        result = evaluate(generations.selected, generations.references, generations.candidates,
                          args.bert_model, args.bert_layers, reference_sets=reference_sets)
    except (OSError, ValueError, ImportError) as err:
        print(f"diffuseq-eval: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
