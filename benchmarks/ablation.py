"""Ablation of the convergence options at one training budget: base, + self-conditioning,
+ soft absorbing state (DiffuSeq-v2), + both, (+ anchor loss on top of the best). Each variant trains
with the same flags and budget (two at a time, one thread each), then decodes the same test
sentences with 20 DPM-Solver++ steps; the table shows sentence BLEU, corpus BLEU and the last
validation loss terms.

    python benchmarks/ablation.py --data-bin runs/quickstart/data-bin --source-lang src --target-lang tgt \\
        --max-update 1500 --out runs/ablation_toy
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from compare_levt import generate, metrics_of, progress, train_all  # noqa: E402

BASE = (
    "--task diffuseq --arch diffuseq_tiny --criterion diffuseq_loss --encoder-layers 3 --encoder-embed-dim 128 "
    "--encoder-ffn-embed-dim 512 --latent-dim 64 --optimizer adam --adam-betas (0.9,0.98) --lr 1e-3 "
    "--lr-scheduler inverse_sqrt --warmup-updates 300 --max-tokens 2048 --dropout 0.1 --attention-dropout 0"
)
VARIANTS = {
    "base": "",
    "+ self-conditioning": "--self-condition",
    "+ soft absorbing": "--learned-mean-embed --absorb-rate 0.5",
    "+ both": "--self-condition --learned-mean-embed --absorb-rate 0.5",
    "+ both + anchor loss": "--self-condition --learned-mean-embed --absorb-rate 0.5 --anchor-loss-weight 1",
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-bin", required=True)
    parser.add_argument("--source-lang", required=True)
    parser.add_argument("--target-lang", required=True)
    parser.add_argument("--max-update", type=int, required=True)
    parser.add_argument("--base-args", default=BASE)
    parser.add_argument("--parallel", type=int, default=2, help="variants trained at the same time")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    langs = f"--source-lang {args.source_lang} --target-lang {args.target_lang}"
    names = {label: f"v{i}" for i, label in enumerate(VARIANTS)}
    runs = [(names[label], f"{args.base_args} {flags} {langs}") for label, flags in VARIANTS.items()]
    trained = {}
    for i in range(0, len(runs), args.parallel):
        trained.update(train_all(runs[i : i + args.parallel], ["--max-update", str(args.max_update)], out, 1, args.data_bin))
    results = {}
    for label in VARIANTS:
        name = names[label]
        progress(f"decoding {label}")
        gen_file, speed = generate(name, Path(args.data_bin), trained[name]["checkpoint"],
                                   f"--task diffuseq {langs} --sampler dpm-solver++ --diffusion-steps 20", out, 1, "dpm20")
        log = (out / "logs" / f"train_{name}.log").read_text()
        valid = [json.loads(line.split("| valid | ", 1)[1]) for line in log.splitlines() if "| valid | " in line]
        results[label] = {"train": trained[name], "metrics": metrics_of(gen_file), "last_valid": valid[-1] if valid else {}}
    print(f"\n{'variant':24s} {'BLEU':>6s} {'sacreBLEU':>9s} {'valid mse':>9s} {'valid anchor_nll':>16s} {'updates':>7s}")
    for label, entry in results.items():
        v = entry["last_valid"]
        print(f"{label:24s} {100 * entry['metrics']['bleu']:6.2f} {100 * entry['metrics']['sacrebleu']:9.2f} "
              f"{float(v.get('valid_mse', 'nan')):9.4f} {float(v.get('valid_anchor_nll', 'nan')):16.3f} {entry['train']['updates']:7d}")
    (out / "ablation.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
