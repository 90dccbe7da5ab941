"""What copying the source and a human score on a multi-reference task, as scripts/compare_levt.py --refs
scores the systems: sentence BLEU (paper), sacreBLEU and ROUGE-L against all K references and against K-1
(each reference left out in turn, averaged); the human ceiling scores each reference against the other K-1.

    python benchmarks/reference_baselines.py --refs data-bin/captions/refs/test.ref{1,2,3,4} \\
        --source data-bin/captions/refs/test.src [--first 200]
"""
import argparse

from diffuseq_fairseq.evaluation.readers import read_reference_files
from diffuseq_fairseq.experiments.scoring import baselines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refs", nargs="+", required=True, help="reference files, line k = sentence k")
    parser.add_argument("--source", required=True, help="the source file, line k = sentence k")
    parser.add_argument("--first", type=int, default=0, help="only the first N sentences (0 = all)")
    args = parser.parse_args(argv)
    with open(args.source, encoding="utf-8") as f:
        ids = list(range(sum(1 for _ in f)))
    reference_sets = read_reference_files(args.refs, ids, scored=args.source)
    sources = [refs[0] for refs in read_reference_files([args.source], ids, scored=args.source)]
    count = args.first or len(ids)
    found = baselines(reference_sets[:count], sources[:count])
    k = len(args.refs)
    print(f"{count} sentences, {k} references each; scores x100")
    print(f"{'baseline':34s} {'BLEU':>7s} {'sacreBLEU':>9s} {'ROUGE-L':>8s}")
    rows = [(f"copy the source, {k} references", found["copy_source"]["all"]),
            (f"copy the source, {k - 1} references", found["copy_source"]["leave_one_out"]),
            (f"human, {k - 1} references", found["human"]["leave_one_out"])]
    for label, metrics in rows:
        print(f"{label:34s} {100 * metrics['bleu']:7.2f} {100 * metrics['sacrebleu']:9.2f} {100 * metrics['rouge_l']:8.2f}")


if __name__ == "__main__":
    main()
