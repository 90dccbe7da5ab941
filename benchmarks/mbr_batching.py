"""What MBR candidates cost, by how many sentences a call decodes at once (fairseq's --batch-size).

MBR's S candidates of a sentence share every model call, so they are nearly free while a call is
too small to keep the hardware busy (fairseq-interactive: one sentence at a time) and cost S times
the arithmetic once it is large (fairseq-generate, 100 sentences a call). For each --batch-size
this decodes the same test sentences with DiffuSeq at |S| = 1 and |S| = S, every step and with
--stop-when-stable 1, and with LevT, through fairseq-generate, and prints sentences/s and the two
ratios: MBR time over |S|=1 time, DiffuSeq speed over LevT's. Each decode is seeded (identical
repeats) and the fastest of --repeats runs counts.

    python benchmarks/mbr_batching.py --data-bin data-bin/multi30k_de_en --source-lang de --target-lang en \\
        --diffuseq runs/compare_multi30k_v6/ckpt_diffuseq/checkpoint_last.pt \\
        --levt runs/compare_multi30k_v6/ckpt_levt/checkpoint_last.pt --test-sentences 200 --out runs/mbr_batching
"""
import argparse
import json
from pathlib import Path

from diffuseq_fairseq.experiments.recipes import CPU, LEVT_CPU
from diffuseq_fairseq.experiments.report import write_json
from diffuseq_fairseq.experiments.runner import first_pairs, generate
from diffuseq_fairseq.experiments.scoring import metrics_of

EARLY_STOP = CPU.early_stop


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-bin", required=True)
    parser.add_argument("--source-lang", required=True)
    parser.add_argument("--target-lang", required=True)
    parser.add_argument("--diffuseq", required=True, help="DiffuSeq checkpoint")
    parser.add_argument("--levt", help="LevT checkpoint (optional: its column is left out without it)")
    parser.add_argument("--test-sentences", type=int, default=200)
    parser.add_argument("--batch-sizes", default="1,10,100")
    parser.add_argument("--candidates", type=int, default=10, help="the MBR size set against |S|=1")
    parser.add_argument("--diffuseq-decode", default=CPU.decode)
    parser.add_argument("--levt-decode", default=LEVT_CPU.decode)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--report-only", action="store_true", help="re-print the table of --out/mbr_batching.json")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    rows_file = out / "mbr_batching.json"
    if args.report_only:
        report(json.loads(rows_file.read_text()), args)
        return
    data = first_pairs(Path(args.data_bin), args.source_lang, args.target_lang, args.test_sentences, out, args.threads)
    langs = f"--source-lang {args.source_lang} --target-lang {args.target_lang}"

    def decode(name, checkpoint, flags, tag):
        gen_file, speed = generate(name, data, checkpoint, f"{flags} {langs}", out, args.threads, tag,
                                   repeats=args.repeats, device=args.device)
        return {"sentences_per_s": speed["sentences_per_s"], "bleu": metrics_of(gen_file)["bleu"]}

    rows = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        row = {"batch_size": batch}
        for stop in ("", EARLY_STOP):
            for size in (1, args.candidates):
                label = f"S{size}{'_stop' if stop else ''}"
                flags = f"--task diffuseq {args.diffuseq_decode} {stop} --mbr-candidates {size} --batch-size {batch}"
                row[label] = decode("diffuseq", args.diffuseq, flags, f"b{batch}_{label}")
        if args.levt:
            row["levt"] = decode("levt", args.levt, f"{LEVT_CPU.decode_task} {args.levt_decode} --batch-size {batch}",
                                 f"b{batch}_levt")
        rows.append(row)
        print(json.dumps(row), flush=True)
    write_json(rows_file, rows)
    report(rows, args)


def report(rows, args):
    s = args.candidates
    print(f"\nsentences/s by --batch-size ({args.test_sentences} sentences, {args.diffuseq_decode}; "
          f"stop = {EARLY_STOP}; sentence BLEU in brackets)")
    levt = "levt" in rows[0]
    columns = ["S1", f"S{s}", "time ratio", "S1 stop", f"S{s} stop", "time ratio"]
    columns += ["LevT", "S1 stop/LevT", f"S{s} stop/LevT"] if levt else []
    print(f"{'batch':>5}" + "".join(f"{name:>15}" for name in columns))
    for row in rows:
        cells = []
        for every, many in (("S1", f"S{s}"), ("S1_stop", f"S{s}_stop")):
            cells += [_cell(row[every]), _cell(row[many]),
                      f"{row[every]['sentences_per_s'] / row[many]['sentences_per_s']:.2f}x"]
        if levt:
            speed = row["levt"]["sentences_per_s"]
            cells += [_cell(row["levt"]), f"{row['S1_stop']['sentences_per_s'] / speed:.2f}x",
                      f"{row[f'S{s}_stop']['sentences_per_s'] / speed:.2f}x"]
        print(f"{row['batch_size']:>5}" + "".join(f"{cell:>15}" for cell in cells))


def _cell(result) -> str:
    return f"{result['sentences_per_s']:.2f} ({100 * result['bleu']:.2f})"


if __name__ == "__main__":
    main()
