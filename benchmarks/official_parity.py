"""Training side by side with the official DiffuSeq v1 code on this CPU, in one command (issue #26).

    .venv/bin/python benchmarks/official_parity.py --out runs/official_parity \\
        --results benchmarks/results/official_parity_cpu.txt

Same data, model, batch, learning rate, T, schedule, seed and number of updates on both sides:

* data: a data-bin with its BPE'd text in DATA_BIN/text/ (default Multi30k de->en, built by
  scripts/prepare_multi30k.sh when missing); the official code reads the same text as jsonl and the
  data-bin's dictionary as its --vocab file, so both have the same tokens and the same vocabulary size;
* model: a BERT encoder of --layers/--hidden/--heads/--ffn with the paper's 128-d embedding, T=2000,
  the sqrt schedule, the loss-aware step sampler, the official loss (mse + decoder_nll + tT over all
  positions), torch's AdamW (the plugin's --optimizer adamw) with linear decay to 0 and no warm-up, dropout 0.1, EMA; seq_len 128;
* runs, one after the other with --threads threads each: the official code (train_tiny.py, official
  venv; it pads every pair to seq_len), the official code again with other seeds (--noise-seeds: its
  own run-to-run noise, the yardstick of every difference), the plugin padded to seq_len too
  (--canvas-len-a 0 --canvas-len-b 128 --token-layout diffuseq --loss-positions all), with batches
  drawn at random as the official loader draws them (--batch-order random), and the plugin with its
  batch-tight default canvas (and fairseq's batches of similar length, which that canvas needs); then
  the same three at the paper's diffuseq_base size for speed only. --length-batches-row adds the
  padded plugin with fairseq's length-sorted batches: what the batch order alone changes.

Reported, measured in this one run (see parity_measures.py for the clocks): seconds per update and
real tokens per second (padding not counted) with their ratios to the official code; the loss terms
of every run side by side (per sentence, unweighted, and the importance-weighted training loss; mean
± standard error per window of updates; a difference between the official and plugin runs means
something only where it exceeds the spread between the official seeds; the batch-tight run's terms
average over its shorter canvas, a different definition);
the paper's BLEU (diffuseq-eval) on the first --test-sentences test pairs, every trained model decoded
the same way by the plugin's decoder (DDIM, --decode-steps, rounding, |S| = 1 and MBR --mbr), the
official model also by the official decoder (its --step path, one seed per candidate, its MBR
through scripts/eval_seq2seq.py) and by DiffuSeq-v2's DPM-Solver script against
--sampler dpm-solver++ at --solver-steps; decoding seconds and sentences/s for each.

The defaults scale the paper's optimiser to a budget of a few hundred updates: --lr 1e-3 (paper 1e-4)
and --ema-rate 0.99 (after 300 updates an EMA of 0.9999 still holds 97 % of the initial weights,
so every decode would show the initialisation); give --lr 1e-4 --ema-rate 0.9999 for the paper's.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Sequence

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "benchmarks" / "official"
sys.path.insert(0, str(HERE))
import parity_measures as measures  # noqa: E402

from diffuseq_fairseq.convert_official import convert  # noqa: E402
from diffuseq_fairseq.experiments.report import write_json  # noqa: E402
from diffuseq_fairseq.experiments.runner import first_pairs, generate, progress  # noqa: E402
from diffuseq_fairseq.experiments.scoring import metrics_of  # noqa: E402
from diffuseq_fairseq.export_ema import export_ema  # noqa: E402

OFFICIAL_PYTHON = REPO / ".official-venv" / "bin" / "python"
USER_DIR = REPO / "diffuseq_fairseq"
DEFAULT_DATA_BIN = REPO / "data-bin" / "multi30k_de_en"
PAPER_BASE = {"layers": 12, "hidden": 768, "heads": 12, "ffn": 3072}
TOTAL_TAKES = re.compile(r"### Total takes ([\d.]+)s")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-bin", type=Path, default=DEFAULT_DATA_BIN, help="data-bin with text/{train,valid,test}.LANG")
    parser.add_argument("--source-lang", default="de")
    parser.add_argument("--target-lang", default="en")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "official_parity")
    parser.add_argument("--results", type=Path, help="also write the report here")
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64, help="sentences per update, both sides")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--ema-rate", default="0.99")
    parser.add_argument("--dropout", type=float, default=0.1, help="hidden and attention dropout, both sides "
                        "(0 takes dropout's randomness out of the loss curves)")
    parser.add_argument("--seed", type=int, default=102)
    parser.add_argument("--noise-seeds", type=int, default=1, help="train the official code again with seeds SEED+1.. "
                        "SEED+N: its run-to-run noise, the yardstick of the loss and speed differences")
    parser.add_argument("--diffusion-steps", type=int, default=2000)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--ffn", type=int, default=1024)
    parser.add_argument("--latent", type=int, default=128, help="embedding size (the paper's hidden_dim)")
    parser.add_argument("--base-updates", type=int, default=8, help="updates of the diffuseq_base speed rows (0: none)")
    parser.add_argument("--base-batch-size", type=int, default=16)
    parser.add_argument("--warmup-updates", type=int, default=5, help="updates left out of the speed (base rows: 2)")
    parser.add_argument("--loss-window", type=int, default=50)
    parser.add_argument("--test-sentences", type=int, default=200)
    parser.add_argument("--decode-steps", type=int, default=20)
    parser.add_argument("--mbr", type=int, default=10)
    parser.add_argument("--solver-steps", type=int, default=10)
    parser.add_argument("--decode-batch-size", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--uniform-output-bias", action="store_true", help="the plugin's lm_head bias initialised "
                        "as the official nn.Linear's, U(±1/√latent), instead of 0 (the plugin's --uniform-output-bias)")
    parser.add_argument("--plugin-optimizer", choices=("adamw", "adam"), default="adamw", help="the plugin's "
                        "optimizer: adamw is torch's AdamW, the official one; fairseq's adam adds its epsilon before "
                        "the bias correction on a CPU, which slows the first hundreds of updates (optim.py)")
    parser.add_argument("--length-batches-row", action="store_true", help="also train the padded plugin on "
                        "fairseq's batches of similar length (--batch-order length)")
    parser.add_argument("--official-batches", choices=("fixed", "seeded"), default="fixed", help="fixed: the official "
                        "loader as it is, whose DistributedSampler shuffles with seed 0 whatever --seed is (every official "
                        "run then sees the same batches); seeded: that sampler seeded with the run's seed")
    parser.add_argument("--reuse-training", action="store_true", help="reuse the finished runs of an earlier call "
                        "with the same --out (to decode again); their speed is the earlier run's")
    args = parser.parse_args(argv)
    if args.updates < args.warmup_updates + 2:
        parser.error(f"--updates must be at least --warmup-updates + 2 = {args.warmup_updates + 2} (one update timed)")
    if args.base_updates and args.base_updates < min(args.warmup_updates, 2) + 2:
        parser.error(f"--base-updates must be 0 or at least {min(args.warmup_updates, 2) + 2}")
    if args.updates % args.loss_window:
        parser.error("--updates must be a multiple of --loss-window")
    return args


def run(command, log: Path, threads: int) -> str:
    """Run ``command`` with ``threads`` threads; stdout and stderr to ``log``; returns stdout and stderr."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    log.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([str(c) for c in command], cwd=REPO, env=env, capture_output=True, text=True)
    log.write_text(done.stdout + done.stderr)
    if done.returncode:
        raise SystemExit(f"{' '.join(map(str, command[:3]))} ... failed (exit {done.returncode}); see {log}")
    return done.stdout + done.stderr


def prepare_data(args) -> dict:
    """The official jsonl folder and --vocab file, and the plugin's data-bin of the first test pairs."""
    data_bin, src, tgt = args.data_bin, args.source_lang, args.target_lang
    if not (data_bin / f"dict.{src}.txt").exists():
        if data_bin.resolve() != DEFAULT_DATA_BIN:
            raise SystemExit(f"{data_bin}/dict.{src}.txt not found: give a data-bin written by diffuseq-prepare")
        progress("building data-bin/multi30k_de_en (scripts/prepare_multi30k.sh)", "parity")
        run(["bash", REPO / "scripts" / "prepare_multi30k.sh"], args.out / "logs" / "prepare.log", args.threads)
    folder = args.out / "official_data"
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        sides = [(data_bin / "text" / f"{split}.{lang}").read_text(encoding="utf-8").splitlines() for lang in (src, tgt)]
        pairs = list(zip(*sides))[: args.test_sentences if split == "test" else None]
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps({"src": s, "trg": t}) + "\n" for s, t in pairs)
    # The official --vocab file reads the first field of each line: the data-bin dictionary as it is.
    (folder / "vocab.txt").write_text((data_bin / f"dict.{src}.txt").read_text(encoding="utf-8"), encoding="utf-8")
    test_bin = first_pairs(data_bin, src, tgt, args.test_sentences, args.out, args.threads)
    return {"official": folder, "vocab": folder / "vocab.txt", "test_bin": test_bin}


def sizes(args, base: bool) -> dict:
    model = {"layers": args.layers, "hidden": args.hidden, "heads": args.heads, "ffn": args.ffn}
    return {**(PAPER_BASE if base else model), "latent": args.latent}


def train_official(args, data: dict, name: str, model: dict, updates: int, batch: int, seed: int) -> dict:
    out = args.out / name
    run([OFFICIAL_PYTHON, HERE / "train_tiny.py", "--version", "v1", "--data-dir", data["official"],
         "--vocab", data["vocab"], "--out", out, "--steps", updates, "--seq-len", args.seq_len,
         "--diffusion-steps", args.diffusion_steps, "--batch-size", batch, "--lr", args.lr, "--seed", seed,
         "--ema-rate", args.ema_rate, "--dropout", args.dropout, "--layers", model["layers"], "--hidden", model["hidden"], "--heads", model["heads"],
         "--ffn", model["ffn"], "--latent", model["latent"], "--record", out / "record.json",
         *(["--sampler-seed", seed] if args.official_batches == "seeded" else [])],
        args.out / "logs" / f"train_{name}.log", args.threads)
    return {"record": json.loads((out / "record.json").read_text()),
            "checkpoint": out / f"ema_{args.ema_rate}_{updates:06d}.pt"}


def plugin_flags(args, model: dict, padded: bool, updates: int, batch: int, save_dir: Path,
                 batch_order: str = "length", ema: bool = True) -> list:
    """fairseq-train options of the official run's configuration (as diffuseq-convert-official writes it);
    ``ema=False`` leaves out --store-ema (fairseq 0.12 cannot restore a checkpoint without EMA under it)."""
    canvas = ["--canvas-len-a", "0", "--canvas-len-b", args.seq_len] if padded else []
    return [args.data_bin, "--user-dir", USER_DIR, "--task", "diffuseq", "--source-lang", args.source_lang,
            "--target-lang", args.target_lang, "--token-layout", "diffuseq", "--max-total-len", args.seq_len, *canvas,
            "--batch-order", batch_order,
            "--arch", "diffuseq_base", "--encoder-layers", model["layers"], "--encoder-embed-dim", model["hidden"],
            "--encoder-attention-heads", model["heads"], "--encoder-ffn-embed-dim", model["ffn"],
            "--latent-dim", model["latent"], "--dropout", args.dropout, "--attention-dropout", args.dropout, "--max-positions", "512",
            "--num-timesteps", args.diffusion_steps, "--noise-schedule", "sqrt", "--criterion", "diffuseq_loss",
            "--loss-positions", "all", "--timestep-sampler", "lossaware", "--optimizer", args.plugin_optimizer,
            "--adam-betas", "(0.9, 0.999)", "--adam-eps", "1e-08", "--weight-decay", "0", "--lr", args.lr,
            "--lr-scheduler", "polynomial_decay", "--total-num-update", updates, "--max-update", updates,
            "--batch-size", batch, "--seed", args.seed, *(["--store-ema", "--ema-decay", args.ema_rate] if ema else []),
            "--cpu",
            "--num-workers", "0", "--disable-validation", "--no-epoch-checkpoints", "--save-dir", save_dir,
            "--log-format", "json", "--log-interval", "10", "--no-progress-bar",
            *(["--uniform-output-bias"] if args.uniform_output_bias else []),
            # The official model has no up/down projections where the stack is as wide as the embedding.
            *(["--identity-projections"] if int(model["hidden"]) == int(model["latent"]) else [])]


def batch_order(name: str) -> str:
    """The padded runs draw batches at random, as the official loader; the batch-tight canvas pads
    each batch only to its longest pair, so it needs fairseq's batches of similar length."""
    return "random" if "padded" in name and not name.endswith("_length_batches") else "length"


def train_plugin(args, name: str, model: dict, padded: bool, updates: int, batch: int, timed: Sequence = (),
                 extra: Sequence = (), ema: bool = True) -> dict:
    """``timed``: fairseq_timed.py's own options; ``extra``: further fairseq-train options."""
    out = args.out / name
    out.mkdir(parents=True, exist_ok=True)
    run([sys.executable, HERE / "fairseq_timed.py", out / "record.json", *timed,
         *plugin_flags(args, model, padded, updates, batch, out, batch_order(name), ema), *extra],
        args.out / "logs" / f"train_{name}.log", args.threads)
    return {"record": json.loads((out / "record.json").read_text()), "checkpoint": out / "checkpoint_last.pt"}


def reused_run(args, name: str, updates: int) -> dict:
    """A finished run of an earlier call with the same --out (--reuse-training)."""
    folder = args.out / name
    checkpoint = folder / (f"ema_{args.ema_rate}_{updates:06d}.pt" if name.startswith("official") else "checkpoint_last.pt")
    record = json.loads((folder / "record.json").read_text())
    if len(record["updates"]) != updates or not checkpoint.exists():
        raise SystemExit(f"{folder}: holds {len(record['updates'])} updates, or no {checkpoint.name}; not a finished run "
                         f"of {updates} updates: leave out --reuse-training")
    return {"record": record, "checkpoint": checkpoint}


def train_all(args, data: dict) -> dict:
    """The three main runs, the official code again with other seeds (--noise-seeds) and, with
    --base-updates, the three diffuseq_base speed runs."""
    runs, model = {}, sizes(args, base=False)
    main = (False, args.updates, args.batch_size)
    plan = [("official", *main, args.seed)]
    plan += [(f"official_seed{args.seed + k}", *main, args.seed + k) for k in range(1, args.noise_seeds + 1)]
    plan += [("plugin_padded", *main, args.seed), ("plugin_tight", *main, args.seed)]
    if args.length_batches_row:
        plan.append(("plugin_padded_length_batches", *main, args.seed))
    if args.base_updates:
        plan += [(f"{name}_base", True, args.base_updates, args.base_batch_size, args.seed)
                 for name in ("official", "plugin_padded", "plugin_tight")]
    for name, base, updates, batch, seed in plan:
        shape = sizes(args, base) if base else model
        if args.reuse_training and (args.out / name / "record.json").exists():
            progress(f"{name}: reusing the run in {args.out / name}", "parity")
            runs[name] = reused_run(args, name, updates)
            continue
        progress(f"training {name}: {updates} updates of {batch} sentences", "parity")
        if name.startswith("official"):
            runs[name] = train_official(args, data, name, shape, updates, batch, seed)
        else:
            runs[name] = train_plugin(args, name, shape, "padded" in name, updates, batch)
    return runs


def speeds(args, runs: dict) -> dict:
    result = {}
    for name, trained in runs.items():
        warmup = min(args.warmup_updates, 2) if name.endswith("_base") else args.warmup_updates
        result[name] = measures.speed(trained["record"], warmup)
    return result


def official_outputs(folder: Path) -> Path:
    """Copies of the official decoder's jsonl files with its custom-vocabulary specials written as
    BERT's, which diffuseq-eval (like scripts/eval_seq2seq.py with its default --sos/--eos) removes."""
    normalised = folder.with_name(folder.name + "_scored")
    normalised.mkdir(exist_ok=True)
    for path in sorted(folder.glob("*.json")):
        text = path.read_text(encoding="utf-8").replace("[START]", "[CLS]").replace("[END]", "[SEP]")
        (normalised / path.name).write_text(text, encoding="utf-8")
    return normalised


def decode_entry(model: str, decoder: str, sampler: str, candidates: int, bleu: float, seconds: float,
                 sentences: int) -> dict:
    """One decode's figures; sentences/s is NaN where the clock read 0 (fairseq prints tenths of seconds)."""
    return {"model": model, "decoder": decoder, "sampler": sampler, "candidates": candidates, "bleu": bleu,
            "seconds": seconds, "sentences_per_second": sentences / seconds if seconds > 0 else math.nan}


def plugin_decode(args, data: dict, model: str, checkpoint: Path, sampler: str, flags: str, candidates: int,
                  reuse: bool = False) -> dict:
    """``reuse``: read back a decode finished by an earlier call (runner.generate's)."""
    tag = re.sub(r"\W+", "_", f"{model}_{sampler}_{candidates}")
    task = (f"--task diffuseq --source-lang {args.source_lang} --target-lang {args.target_lang} --token-layout diffuseq "
            f"--max-total-len {args.seq_len}")
    gen_file, speed = generate(tag, data["test_bin"], checkpoint, f"{task} {flags} --mbr-candidates {candidates} "
                               f"--output-vocab all --batch-size {args.decode_batch_size}", args.out, args.threads, "decode",
                               reuse=reuse)
    return decode_entry(model, "plugin (fairseq-generate)", sampler, candidates, metrics_of(gen_file)["bleu"],
                        speed["generate_seconds_in_fairseq"], args.test_sentences)


def official_decodes(args, checkpoint: Path) -> list:
    """The official decoder (its --step path, one seed per candidate) and v2's DPM-Solver script."""
    seeds = [str(101 + k) for k in range(args.mbr)]
    folder = args.out / "official_decoded"
    printed = run([OFFICIAL_PYTHON, HERE / "decode.py", "--checkpoint", checkpoint, "--seeds", *seeds, "--step",
                   args.decode_steps, "--batch-size", args.decode_batch_size, "--out", folder],
                  args.out / "logs" / "decode_official.log", args.threads)
    seconds = [float(s) for s in TOTAL_TAKES.findall(printed)]
    scored = official_outputs(folder)
    sampler = f"its --step {args.decode_steps} (DDIM path), rounding"
    entries = [decode_entry("official", "official (sample_seq2seq.py)", sampler, 1,
                            metrics_of(sorted(scored.glob("*.json"))[0])["bleu"], seconds[0], args.test_sentences)]
    if args.mbr > 1:
        figures = args.out / "official_decoded_mbr.json"
        run([OFFICIAL_PYTHON, HERE / "eval_official.py", "--folder", scored, "--mbr", "--json", figures],
            args.out / "logs" / "eval_official_mbr.log", args.threads)
        entries.append(decode_entry("official", "official (sample_seq2seq.py, eval_seq2seq.py --mbr)", sampler,
                                    args.mbr, json.loads(figures.read_text())["mbr"]["bleu"], sum(seconds),
                                    args.test_sentences))
    folder = args.out / "official_dpm"
    printed = run([OFFICIAL_PYTHON, HERE / "decode_dpm.py", "--checkpoint", checkpoint, "--step", args.solver_steps,
                   "--seeds", "101", "--batch-size", args.decode_batch_size, "--out", folder],
                  args.out / "logs" / "decode_official_dpm.log", args.threads)
    scored = official_outputs(folder)
    entries.append(decode_entry("official", "official v2 (sample_seq2seq_dpmSolver.py)",
                                f"DPM-Solver++ {args.solver_steps}, no rounding", 1,
                                metrics_of(sorted(scored.glob("*.json"))[0])["bleu"],
                                float(TOTAL_TAKES.findall(printed)[0]), args.test_sentences))
    return entries


def ddim_decode(args) -> tuple:
    """(label, fairseq-generate options) of the decode every trained model gets alike."""
    return (f"ddim {args.decode_steps}, rounding",
            f"--sampler ddim --diffusion-steps {args.decode_steps} --ddim-eta 0 --rounding l2 --round-output")


def decode_all(args, data: dict, runs: dict) -> list:
    """Every trained model through the plugin's decoder (the official runs of --noise-seeds at |S| = 1
    only: the yardstick), and the official model through the official decoders."""
    official = runs["official"]["checkpoint"]
    models = {}
    for name in (name for name in runs if name.startswith("official") and not name.endswith("_base")):
        converted = convert(runs[name]["checkpoint"], args.out / f"{name}_converted")["checkpoint"]
        models[name.replace("_", " ")] = (Path(converted), sorted({1, args.mbr}) if name == "official" else [1])
    for name in (name for name in runs if name.startswith("plugin") and not name.endswith("_base")):
        exported = args.out / name / "checkpoint_ema.pt"
        export_ema(runs[name]["checkpoint"], exported)
        models[name.replace("_", " ")] = (exported, [1] if name.endswith("_length_batches") else sorted({1, args.mbr}))
    ddim = ddim_decode(args)
    dpm = (f"dpm-solver++ {args.solver_steps}, no rounding",
           f"--sampler dpm-solver++ --diffusion-steps {args.solver_steps} --rounding none")
    entries = []
    for model, (checkpoint, candidate_counts) in models.items():
        for candidates in candidate_counts:
            progress(f"decoding the {model} model with the plugin: {ddim[0]}, {candidates} candidates", "parity")
            entries.append(plugin_decode(args, data, model, checkpoint, *ddim, candidates))
        if "seed" not in model and "length batches" not in model:
            entries.append(plugin_decode(args, data, model, checkpoint, *dpm, 1))
    progress("decoding the official model with the official decoders", "parity")
    return entries + official_decodes(args, official)


def describe(args, data: dict) -> list:
    train_pairs = sum(1 for _ in open(data["official"] / "train.jsonl", encoding="utf-8"))
    vocabulary = 4 + sum(1 for _ in open(data["vocab"], encoding="utf-8"))
    model = sizes(args, base=False)
    return [
        f"# data: {args.data_bin} ({args.source_lang}->{args.target_lang}), {train_pairs} training pairs, "
        f"{vocabulary} words (both sides); test: the first {args.test_sentences} test pairs",
        f"# model: BERT encoder {model['layers']} layers, d={model['hidden']}, {model['heads']} heads, FFN {model['ffn']}, "
        f"embedding {args.latent}; T={args.diffusion_steps}, sqrt schedule, loss-aware steps, official loss over all "
        f"positions, seq_len {args.seq_len}",
        f"# training: {args.updates} updates of {args.batch_size} sentences, AdamW (plugin: --optimizer "
        f"{args.plugin_optimizer}) lr {args.lr} decayed linearly to 0, "
        f"no warm-up, EMA {args.ema_rate}, dropout {args.dropout:g}, seed {args.seed} (the official code also with seeds "
        f"{args.seed + 1}..{args.seed + args.noise_seeds}); {args.threads} thread(s) per run, one run at "
        f"a time; diffuseq_base rows: {args.base_updates} updates of {args.base_batch_size} sentences",
        "# batches: the official loader's and the padded plugin's drawn at random (--batch-order random); the batch-tight "
        "plugin's of pairs of similar length (fairseq's), as are those of a 'length batches' row",
    ]


def report(args, argv, data: dict, speed: dict, runs: dict, decodes: list) -> str:
    baselines = {name: "official_base" if name.endswith("_base") else "official" for name in speed}
    labels = {name: name.replace("_", " ") for name in runs if not name.endswith("_base")}
    labels["plugin_tight"] = "plugin tight (own canvas)"
    if "plugin_padded_length_batches" in labels:
        labels["plugin_padded_length_batches"] = "plugin padded, length batches"
    windows = {label: measures.loss_windows(runs[name]["record"], int(name.startswith("plugin")), args.loss_window)
               for name, label in labels.items()}
    return "\n".join([
        "# Training side by side with the official DiffuSeq v1 code on this CPU (issue #26 item 3)",
        f"# command: .venv/bin/python benchmarks/official_parity.py {' '.join(argv)}", *describe(args, data), "",
        f"## Speed: steady state after {args.warmup_updates} updates (base rows: {min(args.warmup_updates, 2)}); real tokens = source + target "
        "tokens with the official specials, padding not counted; ratio = real tokens/s over the official run's",
        *measures.speed_table(speed, baselines), "",
        f"## Loss terms per sentence, mean ± standard error over each window of {args.loss_window} updates "
        "(unweighted; the training loss is the importance-weighted one each side minimised); the official seeds' "
        "spread is the run-to-run noise",
        *measures.loss_table(windows), "",
        f"## BLEU (diffuseq-eval: the paper's sentence BLEU x100) on the first {args.test_sentences} test pairs after "
        f"{args.updates} updates, and decoding time (seconds of the decode itself, model loading excluded)",
        *measures.decode_table(decodes), ""])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    run(["bash", REPO / "scripts" / "official_env.sh"], args.out / "logs" / "official_env.log", args.threads)
    data = prepare_data(args)
    runs = train_all(args, data)
    speed = speeds(args, runs)
    decodes = decode_all(args, data, runs)
    text = report(args, argv, data, speed, runs, decodes)
    write_json(args.out / "official_parity.json", {"speed": speed, "decodes": decodes,
                                                    "records": {name: r["record"] for name, r in runs.items()}})
    (args.out / "official_parity.txt").write_text(text)
    if args.results:
        args.results.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
