"""Decode one DiffuSeq checkpoint with several --shown-timestep-fraction values (DINOISER's
condition-enhanced inference) and print paper BLEU / sacreBLEU / self-BLEU, speed and foreign words
per decode.

    python benchmarks/shown_floor.py CHECKPOINT DATA_BIN OUT_DIR [fairseq-generate options...]
    e.g. python benchmarks/shown_floor.py runs/compare_multi30k_v25_default/ckpt_diffuseq/checkpoint_best.pt \\
        data-bin/multi30k_de_en runs/shown_floor_v25 --source-lang de --target-lang en

Options after OUT_DIR go to every decode, after (so over) the script's own, e.g. --gen-subset valid.
Two decodes run at a time, one thread each (the 2-core CPU machine). --fractions and --decodes
(default: the environment's FRACTIONS and DECODES, as benchmarks/shown_floor.sh read them) set the grid.
foreign%: the share of outputs holding a word that no training target holds (a source-language word,
which the joined dictionary allows), against DATA_BIN/text/train.<--target-lang> ("-" without it).
"""
import argparse
import os
import shlex
from pathlib import Path

from diffuseq_fairseq.evaluation.metrics import evaluate
from diffuseq_fairseq.evaluation.readers import read_file
from diffuseq_fairseq.experiments.decodes import options_of
from diffuseq_fairseq.experiments.runner import generate_parallel

FRACTIONS = "none 0.95 0.99"
DECODES = ("s1:--mbr-candidates 1;s1stop:--mbr-candidates 1 --stop-when-stable 1;mbr10:--mbr-candidates 10;"
           "mbr10stop:--mbr-candidates 10 --stop-when-stable 1 --nbest 10")
BASE = "--task diffuseq --sampler dpm-solver++ --diffusion-steps 20"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("data_bin")
    parser.add_argument("out")
    parser.add_argument("--fractions", default=os.environ.get("FRACTIONS", FRACTIONS),
                        help="space-separated shown-timestep fractions; 'none' decodes without the floor")
    parser.add_argument("--decodes", default=os.environ.get("DECODES", DECODES),
                        help="';'-separated TAG:OPTIONS decodes, each run at every fraction")
    parser.add_argument("--parallel", type=int, default=2, help="decodes at a time, one thread each")
    parser.add_argument("generate_options", nargs=argparse.REMAINDER, help="fairseq-generate options for every decode")
    return parser.parse_args(argv)


def grid(fractions: str, decodes: str) -> dict:
    """{tag: decoding options} for every decode at every fraction, fraction by fraction."""
    entries = [entry.split(":", 1) for entry in decodes.split(";") if entry]
    jobs = {}
    for fraction in fractions.split():
        floor = "" if fraction == "none" else f"--shown-timestep-fraction {fraction}"
        for tag, options in entries:
            jobs[f"{tag}_{fraction}"] = f"{BASE} {options} {floor}"
    return jobs


def known_words(data_bin: Path, generate_options: str):
    """The words of the training targets (BPE joined), or None without DATA_BIN/text/train.<--target-lang>."""
    path = data_bin / "text" / f"train.{options_of(generate_options).get('--target-lang', '')}"
    return set(path.read_text(encoding="utf-8").replace("@@ ", "").split()) if path.is_file() else None


def row(tag: str, gen_file: Path, speed: dict, known) -> str:
    generations = read_file(str(gen_file))
    metrics = evaluate(generations.selected, generations.references, generations.candidates)
    self_bleu = f"{100 * metrics['self_bleu']:.2f}" if metrics.get("self_bleu") is not None else "-"
    foreign = "-" if known is None else \
        f"{100 * sum(not set(h.split()) <= known for h in generations.selected) / len(generations.selected):.1f}"
    per_second = speed["sentences_per_s"]
    return (f"{tag:22s} {100 * metrics['bleu']:7.2f} {100 * metrics['sacrebleu']:7.2f} {self_bleu:>10s} "
            f"{(f'{per_second:.2f}' if per_second == per_second else '-'):>8s} {foreign:>9s}")


def main(argv=None):
    args = parse_args(argv)
    out, data_bin = Path(args.out), Path(args.data_bin)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    extra = shlex.join(args.generate_options)
    jobs = {tag: f"{options} {extra}" for tag, options in grid(args.fractions, args.decodes).items()}
    decoded = generate_parallel("diffuseq", data_bin, args.checkpoint, jobs, out, threads=1, parallel=args.parallel)
    known = known_words(data_bin, extra)
    print(f"{'decode':22s} {'BLEU':>7s} {'sacre':>7s} {'self-BLEU':>10s} {'sent/s':>8s} {'foreign%':>9s}")
    # Each decode at every fraction, side by side.
    for entry in (entry.split(":", 1)[0] for entry in args.decodes.split(";") if entry):
        for fraction in args.fractions.split():
            tag = f"{entry}_{fraction}"
            print(row(tag, *decoded[tag], known))


if __name__ == "__main__":
    main()
