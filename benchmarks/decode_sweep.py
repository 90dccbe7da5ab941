"""Decoding options chosen on validation: several decodes of each trained model on the first N pairs
of a split, each scored against every reference, in one table.

Made for the caption paraphrases (issue #28), where both models write shorter outputs than the
references: LevT's length knob is fairseq's --iter-decode-eos-penalty, DiffuSeq's its --end-penalty
(the same knob for a canvas: a seed that fills its canvas needs a negative one) or its canvas
(--canvas-len-a/--canvas-len-b, the positions it may fill). Per seed N:

    python benchmarks/decode_sweep.py --data-bin data-bin/captions --split valid --sentences 200 \\
        --refs data-bin/captions/refs/valid.ref{1,2,3,4} \\
        --checkpoint levt=runs/cap37_sN/ckpt_levt_lr5e-4/checkpoint_last.pt \\
        --checkpoint diffuseq=runs/cap37_sN/ckpt_diffuseq_lr1.5e-3/checkpoint_last.pt \\
        --decode "levt:eos0=--task translation_lev $(python -m diffuseq_fairseq.experiments.recipes levt_cpu --decode)" \\
        --decode "levt:eos2=--task translation_lev ... --iter-decode-eos-penalty 2" \\
        --decode "diffuseq:end0=--task diffuseq $(... captions_cpu --decode) --mbr-candidates 10 --nbest 10" \\
        --decode "diffuseq:end-4=... --end-penalty -4" ... \\
        --out runs/lensweep_sN

Every decode is fairseq-generate with the options given (after the defaults of scripts/compare_levt.py's
decodes: batch 100, --remove-bpe, seed 1); the table gives multi-reference sentence BLEU (all K
references and K-1, averaged over the one left out), ROUGE-L, average length and dist-1.
"""
import argparse
import json
from pathlib import Path

from diffuseq_fairseq.experiments import scoring
from diffuseq_fairseq.experiments.runner import first_lines, first_pairs, generate_parallel, progress


def labelled(text: str, separator: str, what: str):
    label, found, value = text.partition(separator)
    if not found or not label or not value:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {what}")
    return label, value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-bin", required=True, type=Path)
    parser.add_argument("--source-lang", default="src")
    parser.add_argument("--target-lang", default="tgt")
    parser.add_argument("--split", default="valid", help="the split decoded (choose options on valid, never test)")
    parser.add_argument("--sentences", type=int, default=200, help="its first N pairs")
    parser.add_argument("--refs", nargs="+", required=True, help="reference files of the split (line k = id k)")
    parser.add_argument("--checkpoint", action="append", required=True, metavar="MODEL=PATH",
                        type=lambda text: labelled(text, "=", "MODEL=PATH"))
    parser.add_argument("--decode", action="append", required=True, metavar="MODEL:TAG=OPTIONS",
                        type=lambda text: labelled(text, "=", "MODEL:TAG=OPTIONS"))
    parser.add_argument("--parallel", type=int, default=2, help="decodes at a time")
    parser.add_argument("--threads", type=int, default=1, help="OMP threads per decode")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    args.checkpoint = dict(args.checkpoint)
    jobs = {}
    for name, options in args.decode:
        model, _, tag = name.partition(":")
        if model not in args.checkpoint or not tag:
            parser.error(f"--decode {name}: expected MODEL:TAG with MODEL one of {', '.join(args.checkpoint)}")
        jobs.setdefault(model, {})[tag] = options
    args.jobs = jobs
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    subset = first_pairs(args.data_bin, args.source_lang, args.target_lang, args.sentences, args.out, args.threads,
                         args.split)
    refs = first_lines(args.refs, args.sentences, args.out / f"{subset.name}_refs")
    rows = []
    for model, jobs in args.jobs.items():
        progress(f"{model}: {len(jobs)} decodes of {subset.name}", prefix="sweep")
        langs = f" --source-lang {args.source_lang} --target-lang {args.target_lang}"
        decoded = generate_parallel(model, subset, args.checkpoint[model],
                                    {tag: options + langs for tag, options in jobs.items()}, args.out, args.threads,
                                    args.parallel, subset=args.split)
        for tag, (gen_file, speed) in decoded.items():
            scores = scoring.multi_reference_of(gen_file, refs)
            rows.append({"model": model, "tag": tag, "options": jobs[tag], "output": str(gen_file),
                         "bleu": scores["all"]["bleu"], "bleu_leave_one_out": scores["leave_one_out"]["bleu"],
                         "rouge_l": scores["all"]["rouge_l"], "avg_len": scores["all"]["avg_len"],
                         "dist_1": scores["all"]["dist_1"], "sentences_per_s": speed["sentences_per_s"]})
    (args.out / "sweep.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print(f"{len(refs)} references per source, first {args.sentences} pairs of {args.split} (BLEU x100)")
    print(f"{'model':10} {'decode':16} {'BLEU':>6} {'K-1':>6} {'ROUGE-L':>8} {'len':>5} {'dist-1':>6}")
    for row in rows:
        print(f"{row['model']:10} {row['tag']:16} {row['bleu'] * 100:6.2f} {row['bleu_leave_one_out'] * 100:6.2f} "
              f"{row['rouge_l'] * 100:8.2f} {row['avg_len']:5.1f} {row['dist_1'] * 100:6.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
