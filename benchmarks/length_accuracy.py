"""How well a model's length predictor (--length-predictor) knows the target length, on one split.

For every pair of the split: the predictor's likeliest length (as --length-beam 1 decodes it,
clamped to [1, --max-total-len - |x|]) against the target's length (its canvas: words, </s> and the
token layout's specials). Prints the share predicted exactly and within ±1, the mean absolute error,
the mean predicted and true lengths, and two constant baselines, each the best of its kind on the
split itself (so optimistic): the split's most frequent target length, and its most frequent offset
from the source length (a model that only adds a constant to the source length).

    python benchmarks/length_accuracy.py --data-bin data-bin/multi30k_de_en --source-lang de \\
        --target-lang en --path runs/compare/ckpt_diffuseq/checkpoint_last.pt --subset valid
"""
import argparse
import json
import sys
from collections import Counter

import torch

import diffuseq_fairseq  # noqa: F401  (registers the task and model, allowlists checkpoint globals)
from diffuseq_fairseq.length import likeliest_lengths
from fairseq import checkpoint_utils

BATCH = 256


def predicted_and_true(network, task, subset: str):
    """(predicted lengths, true lengths, source lengths) of every pair of ``subset``, in id order."""
    dataset = task.dataset(subset)
    pad, limit = task.target_dictionary.pad(), task.cfg.max_total_len
    predicted, true, sources = [], [], []
    with torch.no_grad():
        for start in range(0, len(dataset), BATCH):
            batch = dataset.collater([dataset[i] for i in range(start, min(start + BATCH, len(dataset)))])
            order = batch["id"].argsort()  # the collater sorts by source length
            src, lengths = batch["net_input"]["src_tokens"][order], batch["net_input"]["src_lengths"][order]
            logits = network.length_logits(network.encode_source(src, lengths))
            lengths_of_beam, _ = likeliest_lengths(network.length_head, logits, lengths, 1, limit)
            predicted.append(lengths_of_beam[:, 0])
            true.append(batch["target"][order].ne(pad).sum(1))
            sources.append(lengths)
    return torch.cat(predicted), torch.cat(true), torch.cat(sources)


def percent(hits: torch.Tensor) -> float:
    return round(100 * float(hits.float().mean()), 2)


def figures(predicted: torch.Tensor, true: torch.Tensor, sources: torch.Tensor) -> dict:
    error = (predicted - true).abs()
    majority, _ = Counter((true - sources).tolist()).most_common(1)[0]
    constant_error = (sources + majority - true).abs()
    common_length, _ = Counter(true.tolist()).most_common(1)[0]
    common_error = (true - common_length).abs()
    return {
        "pairs": len(true), "exact": percent(error == 0), "within_1": percent(error <= 1),
        "mean_abs_error": round(float(error.float().mean()), 3),
        "mean_predicted": round(float(predicted.float().mean()), 3), "mean_true": round(float(true.float().mean()), 3),
        "majority_length": common_length, "majority_length_exact": percent(common_error == 0),
        "majority_length_within_1": percent(common_error <= 1),
        "majority_offset": majority, "majority_exact": percent(constant_error == 0),
        "majority_within_1": percent(constant_error <= 1),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-bin", required=True)
    parser.add_argument("--source-lang", required=True)
    parser.add_argument("--target-lang", required=True)
    parser.add_argument("--path", required=True, help="a DiffuSeq checkpoint trained with --length-predictor")
    parser.add_argument("--subset", default="valid")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    args = parser.parse_args(argv)
    overrides = {"data": args.data_bin, "source_lang": args.source_lang, "target_lang": args.target_lang}
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([args.path], arg_overrides=overrides)
    network = models[0].network.eval()
    if network.length_head is None:
        sys.exit(f"{args.path}: the model has no length predictor (it was trained without --length-predictor)")
    task.load_dataset(args.subset)
    result = figures(*predicted_and_true(network, task, args.subset))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{args.subset}: {result['pairs']} pairs; length predictor of {args.path}")
    print(f"  exact          {result['exact']:6.2f} %")
    print(f"  within ±1      {result['within_1']:6.2f} %")
    print(f"  mean |error|   {result['mean_abs_error']:6.3f} positions")
    print(f"  mean length    predicted {result['mean_predicted']:.3f}, true {result['mean_true']:.3f}")
    print(f"  constant length {result['majority_length']} (the split's most frequent): exact "
          f"{result['majority_length_exact']:.2f} %, within ±1 {result['majority_length_within_1']:.2f} %")
    print(f"  constant offset {result['majority_offset']:+d} (the split's most frequent): exact "
          f"{result['majority_exact']:.2f} %, within ±1 {result['majority_within_1']:.2f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
