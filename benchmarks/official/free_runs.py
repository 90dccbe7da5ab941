"""Free training runs of the official code and of the padded plugin over several seeds: is a loss gap
between them systematic, or the spread of single runs?

Each run is official_parity.py's (its own initialisation, batches, draws and dropout on each side), only
smaller and repeated over seeds, so a gap can be set against the seed-to-seed spread of each side:

    .venv/bin/python benchmarks/official/free_runs.py --side official --seeds 102-107 --out runs/free_runs
    .venv/bin/python benchmarks/official/free_runs.py --side plugin --seeds 102-107 --out runs/free_runs
    .venv/bin/python benchmarks/official/free_runs.py --summary runs/free_runs
    .venv/bin/python benchmarks/official/free_runs.py --decode runs/free_runs --test-sentences 100

(the two sides can run at once, one core each). The official loader shuffles with a fixed seed, so
every official run sees the same batches whatever its seed; --official-batches seeded (the default here)
seeds its sampler with the run's seed, and --plugin-order official gives the plugin that one fixed order.

The summary gives, per window of updates, each side's mean and standard deviation over its seeds of the
mse and of the logged x̂0 NLL, and the two-sided p-value of an exact permutation test of the difference of
means (the seeds are not paired: the two sides initialise and draw differently); then each run's
breakthrough, the first update after its plateau whose --window/3 mean NLL falls below --breakthrough-nll.
--decode decodes every finished run (the official ones converted, the plugin's EMA weights) alike with the
plugin's decoder, as official_parity.py decodes (DDIM 20 with rounding, |S| = 1), and gives the paper's BLEU
on the first --test-sentences test pairs: BLEU at matched updates, set against each side's seed spread.
"""
import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import official_parity  # noqa: E402

from diffuseq_fairseq.convert_official import convert  # noqa: E402
from diffuseq_fairseq.experiments.runner import first_pairs  # noqa: E402
from diffuseq_fairseq.export_ema import export_ema  # noqa: E402

SIDES = {"official": "official", "plugin": "plugin_padded"}  # run folder prefixes


def seed_list(text: str) -> list:
    """'102-107' or '102,105' (or both mixed) as a list of ints."""
    seeds = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds += list(range(int(low), int(high or low) + 1))
    return seeds


def parity_args(args, seed: int):
    layers, hidden, heads, ffn, latent = args.size.split(",")
    return official_parity.parse_args([
        "--seed", str(seed), "--updates", str(args.updates), "--loss-window", "1", "--warmup-updates", "0",
        "--noise-seeds", "0", "--base-updates", "0", "--test-sentences", "10", "--out", str(args.out),
        "--dropout", str(args.dropout), "--layers", layers, "--hidden", hidden, "--heads", heads, "--ffn", ffn,
        "--latent", latent, "--official-batches", args.official_batches,
        *(["--uniform-output-bias"] if args.uniform_output_bias else []),
        *(["--data-bin", str(args.data_bin)] if args.data_bin else [])])


def train(args) -> None:
    (args.out / "logs").mkdir(parents=True, exist_ok=True)  # official_parity's data preparation logs there
    for seed in seed_list(args.seeds):
        parity = parity_args(args, seed)
        model = official_parity.sizes(parity, False)
        name = f"{SIDES[args.side]}_{seed}"
        if (args.out / name / "record.json").exists():
            print(f"{name}: done before, kept", flush=True)
            continue
        if args.side == "official":
            data = official_parity.prepare_data(parity)
            official_parity.train_official(parity, data, name, model, args.updates, parity.batch_size, seed)
        elif args.plugin_order == "random":  # "padded" in the name: official_parity draws its batches at random
            official_parity.train_plugin(parity, name, model, True, args.updates, parity.batch_size)
        else:  # the official loader's one order, unshuffled by fairseq in the first epoch
            start = ["--restore-file", str(args.init.resolve()), "--reset-optimizer", "--reset-dataloader",
                     "--reset-lr-scheduler", "--reset-meters"] if args.init else []
            official_parity.train_plugin(parity, name, model, True, args.updates, parity.batch_size,
                                         timed=["--official-order", parity.batch_size],
                                         extra=["--curriculum", "1", *start], ema=not (args.init or args.no_ema))
        print(f"{name}: trained", flush=True)


def curves(folder: Path, prefix: str) -> dict:
    """{seed: {"mse": [...], "nll": [...]}} of the finished runs of one side in ``folder``."""
    runs = {}
    for record in sorted(folder.glob(f"{prefix}_*/record.json")):
        updates = json.loads(record.read_text())["updates"]
        nll_key = "nll" if prefix == "official" else "anchor_nll"
        runs[int(record.parent.name.rsplit("_", 1)[1])] = {
            "mse": [u["terms"]["mse"] for u in updates], "nll": [u["terms"][nll_key] for u in updates]}
    return runs


def permutation_p(a: list, b: list) -> float:
    """Two-sided exact permutation p-value of mean(a) − mean(b) over every split of the pooled values."""
    pooled, observed = a + b, abs(statistics.fmean(a) - statistics.fmean(b))
    total = extreme = 0
    for chosen in itertools.combinations(range(len(pooled)), len(a)):
        picked = set(chosen)
        first = [pooled[i] for i in picked]
        second = [pooled[i] for i in range(len(pooled)) if i not in picked]
        total += 1
        extreme += abs(statistics.fmean(first) - statistics.fmean(second)) >= observed - 1e-12
    return extreme / total


def spread(values: list) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def breakthrough(nll: list, window: int, threshold: float):
    """The first update, after the peak of the rolling ``window`` mean NLL (it dips for a few updates
    after the first, then rises to a plateau of 10–15 before the model breaks through), whose mean is below
    ``threshold``; None if none."""
    means = {end: statistics.fmean(nll[end - window:end]) for end in range(window, len(nll) + 1)}
    peak = max(means, key=means.get)
    return next((end for end, mean in means.items() if end > peak and mean < threshold), None)


def summary(folder: Path, window: int, threshold: float, first: int = None) -> str:
    official, plugin = curves(folder, "official"), curves(folder, "plugin_padded")
    if not official or not plugin:
        raise SystemExit(f"{folder}: needs finished runs of both sides (official_SEED/, plugin_padded_SEED/)")
    # The official code writes its record as it trains: a run still going has fewer updates, left out
    # (with ``first``: the runs that have at least that many, over those).
    updates = first or max(len(run["mse"]) for run in [*official.values(), *plugin.values()])
    official, plugin = ({seed: {term: values[:updates] for term, values in run.items()}
                         for seed, run in runs.items() if len(run["mse"]) >= updates} for runs in (official, plugin))
    if not official or not plugin:
        raise SystemExit(f"{folder}: no side has finished {updates} updates in both")
    lines = [f"# {folder}: {len(official)} official seeds {sorted(official)}, {len(plugin)} plugin seeds "
             f"{sorted(plugin)}, {updates} updates; mean ± sd over seeds of each run's window mean; p: exact "
             f"permutation test of the difference of means", "",
             "| updates | official mse | plugin mse | p | official x̂0 NLL | plugin x̂0 NLL | p |",
             "|---|---|---|---|---|---|---|"]
    for start in range(0, updates, window):
        stop = min(start + window, updates)
        row = [f"{start + 1}–{stop}"]
        for term in ("mse", "nll"):
            a = [statistics.fmean(run[term][start:stop]) for run in official.values()]
            b = [statistics.fmean(run[term][start:stop]) for run in plugin.values()]
            row += [spread(a), spread(b), f"{permutation_p(a, b):.3f}"]
        lines.append("| " + " | ".join(row) + " |")
    last = f"{updates - (updates - 1) % window}–{updates}"
    lines += ["", f"breakthrough (first update, after its peak, whose {window // 3 or 1}-update mean x̂0 NLL "
              f"< {threshold:g}; - : not within {updates}), and each run's mse and x̂0 NLL over updates {last}"]
    for side, runs in (("official", official), ("plugin", plugin)):
        found = {seed: breakthrough(run["nll"], window // 3 or 1, threshold) for seed, run in runs.items()}
        ends = {seed: [statistics.fmean(run[term][(updates - 1) // window * window:]) for term in ("mse", "nll")]
                for seed, run in runs.items()}
        lines.append(f"{side}: " + ", ".join(f"{seed}: {found[seed] or '-'} ({ends[seed][0]:.3f}, {ends[seed][1]:.2f})"
                                             for seed in sorted(found)))
    return "\n".join(lines)


def decode(folder: Path, sentences: int, data_bin: Path = None) -> str:
    """The paper's BLEU of every finished run in ``folder``, each decoded by the plugin's decoder as
    official_parity.py decodes its runs; outputs in FOLDER/decoded/, where a run decoded by an earlier
    call is read back (add runs to the folder and call again)."""
    parity = official_parity.parse_args(["--out", str(folder / "decoded"), "--test-sentences", str(sentences),
                                         *(["--data-bin", str(data_bin)] if data_bin else [])])
    (parity.out / "logs").mkdir(parents=True, exist_ok=True)
    data = {"test_bin": first_pairs(parity.data_bin, parity.source_lang, parity.target_lang, sentences, parity.out,
                                    parity.threads)}
    ddim = official_parity.ddim_decode(parity)
    bleu, lines = {}, []
    for side, prefix in SIDES.items():
        for record in sorted(folder.glob(f"{prefix}_*/record.json")):
            run, updates = record.parent, len(json.loads(record.read_text())["updates"])
            weights = run / (f"ema_{parity.ema_rate}_{updates:06d}.pt" if side == "official" else "checkpoint_last.pt")
            if not weights.exists():  # stopped early: no final checkpoint
                lines.append(f"{run.name}: {updates} updates, no {weights.name}; left out")
                continue
            if side == "official":
                checkpoint = Path(convert(weights, parity.out / f"{run.name}_converted")["checkpoint"])
            else:
                checkpoint = parity.out / f"{run.name}_ema.pt"
                export_ema(weights, checkpoint)
            entry = official_parity.plugin_decode(parity, data, run.name, checkpoint, *ddim, 1, reuse=True)
            bleu.setdefault(side, {})[int(run.name.rsplit("_", 1)[1])] = (updates, entry["bleu"])
    lines += [f"# {folder}: the paper's BLEU (x100) on the first {sentences} test pairs, every run decoded by the plugin "
              f"({ddim[0]}, |S| = 1)", "", "| side | seed | updates | BLEU |", "|---|---|---|---|"]
    for side, runs in bleu.items():
        lines += [f"| {side} | {seed} | {updates} | {100 * score:.2f} |" for seed, (updates, score) in sorted(runs.items())]
        lines.append(f"| {side} | mean ± sd | | {spread([100 * score for _, score in runs.values()])} |")
    if len(bleu) == 2:
        sides = [[score for _, score in runs.values()] for runs in bleu.values()]
        lines.append(f"\nexact permutation test of the difference of means: p {permutation_p(*sides):.3f}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--side", choices=sorted(SIDES), help="train this side's runs")
    parser.add_argument("--seeds", default="102-107", help="e.g. 102-107 or 102,104")
    parser.add_argument("--updates", type=int, default=150)
    parser.add_argument("--dropout", type=float, default=0.1, help="hidden and attention dropout, both sides")
    parser.add_argument("--size", default="2,128,2,512,128", help="layers,hidden,heads,ffn,latent (embedding)")
    parser.add_argument("--official-batches", choices=("fixed", "seeded"), default="seeded", help="official_parity.py's: "
                        "seeded (default here) gives each official seed its own batch order, as each plugin seed has")
    parser.add_argument("--plugin-order", choices=("random", "official"), default="random", help="random: the plugin "
                        "draws its batches at random, each seed its own order; official: in the official loader's order "
                        "under its sampler's default seed 0 (fairseq_timed.py --official-order)")
    parser.add_argument("--init", type=Path, help="with --plugin-order official: start from this checkpoint (an official "
                        "initialisation, model000000.pt, converted by diffuseq-convert-official); trains without EMA")
    parser.add_argument("--no-ema", action="store_true", help="with --plugin-order official: train without EMA, as runs "
                        "from --init do (fairseq's EMA only reads the weights: the losses stay the same)")
    parser.add_argument("--uniform-output-bias", action="store_true", help="the plugin's lm_head bias initialised as "
                        "the official nn.Linear's, U(±1/√latent), instead of 0 (official_parity.py's option)")
    parser.add_argument("--data-bin", type=Path, help="official_parity.py's --data-bin (default: its own)")
    parser.add_argument("--out", type=Path, default=Path("runs/free_runs"))
    parser.add_argument("--summary", type=Path, nargs="+", metavar="FOLDER", help="print the comparison of these")
    parser.add_argument("--window", type=int, default=30, help="updates per row of the summary")
    parser.add_argument("--breakthrough-nll", type=float, default=5.0)
    parser.add_argument("--first", type=int, help="summarise the first N updates (of the runs that have them)")
    parser.add_argument("--decode", type=Path, metavar="FOLDER", help="decode every finished run in FOLDER; print BLEU")
    parser.add_argument("--test-sentences", type=int, default=100, help="with --decode: the first N test pairs")
    args = parser.parse_args(argv)
    if args.summary:
        print("\n\n".join(summary(folder, args.window, args.breakthrough_nll, args.first) for folder in args.summary))
    elif args.decode:
        print(decode(args.decode, args.test_sentences, args.data_bin))
    elif args.side:
        if (args.init or args.no_ema) and (args.side != "plugin" or args.plugin_order != "official"):
            parser.error("--init and --no-ema go with --side plugin --plugin-order official")
        train(args)
    else:
        parser.error("give --side (train), --summary FOLDER or --decode FOLDER")


if __name__ == "__main__":
    main()
