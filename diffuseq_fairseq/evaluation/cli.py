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
from diffuseq_fairseq.evaluation.readers import read_files

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
}


def _format_value(value: Union[float, int, None]) -> str:
    if value is None:
        return "n/a"
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def format_table(result: dict[str, Union[float, int, None]]) -> str:
    """One metric per line: key, value (4 decimals) and what it measures."""
    width = max(len(key) for key in result)
    return "\n".join(
        f"{key:<{width}}  {_format_value(value):>8}  {_LABELS.get(key, '')}".rstrip()
        for key, value in result.items()
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffuseq-eval",
        description="Score generation outputs with DiffuSeq's metrics (scripts/eval_seq2seq.py protocol).",
    )
    parser.add_argument(
        "files", nargs="+", metavar="FILE",
        help="fairseq-generate output or DiffuSeq jsonl; several files (one per seed) form candidate sets",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--bert-model", metavar="PATH", help="model for BERTScore (needs bert-score installed)")
    parser.add_argument("--bert-layers", type=int, metavar="N", help="layer of --bert-model to use")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.bert_layers is not None and args.bert_model is None:
        parser.error("--bert-layers needs --bert-model")
    try:
        generations = read_files(args.files)
        result = evaluate(
            generations.selected, generations.references, generations.candidates, args.bert_model, args.bert_layers
        )
    except (OSError, ValueError, ImportError) as err:
        print(f"diffuseq-eval: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result) if args.json else format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
