"""Train a small model with the official DiffuSeq code (v1 or v2) on a CPU; run in the official venv.

    .official-venv/bin/python benchmarks/official/train_tiny.py --version v1 --data-dir DIR \\
        --vocab VOCAB.txt --out runs/official_v1 --steps 6

DIR holds train.jsonl, valid.jsonl and test.jsonl ({"src": ..., "trg": ...} per line). ``--vocab``
is a whitespace vocabulary file (one token a line; the official code puts [START] [END] [UNK]
[PAD] before it) or ``bert`` with ``--bert-vocab vocab.txt`` (a WordPiece vocabulary, loaded by
the official ``AutoTokenizer.from_pretrained(--config_name)`` from the local config folder).

The official ``train.py`` runs unchanged, with one difference a CPU forces: after
``TrainLoop.__init__`` the model is wrapped in DistributedDataParallel over gloo (world size 1).
On a CPU the official loop skips DDP, and its loss then fails on ``model.model.module``.
Writes OUT/ema_<rate>_<steps>.pt, OUT/training_args.json and OUT/vocab.json (or the tokenizer
files under --vocab bert), as the official code does. ``--record FILE`` also writes, per update, the
clock at its start (``time.perf_counter``), its real tokens (the non-[PAD] ids of its batch), the
per-sentence terms of ``training_losses`` averaged over its batch (loss = mse + decoder_nll + tT, mse,
nll; the official log multiplies them by the importance weights) and the importance-weighted loss
it logged and trained (``weighted_loss``), as JSON.
"""
import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_setup import use_official, write_bert_config  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", choices=("v1", "v2"), default="v1")
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--vocab", required=True, help="whitespace vocabulary file, or 'bert'")
    parser.add_argument("--bert-vocab", type=Path, help="WordPiece vocab.txt for --vocab bert")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64, help="BERT hidden size")
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--ffn", type=int, default=128)
    parser.add_argument("--latent", type=int, default=32, help="hidden_dim (embedding size; equal to --hidden, the "
                        "official model has no projections)")
    parser.add_argument("--time-dim", type=int, help="hidden_t_dim (step embedding size; default --latent)")
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--diffusion-steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=102)
    parser.add_argument("--ema-rate", default="0.9999", help="the official --ema_rate (the checkpoint is ema_RATE_STEPS.pt)")
    parser.add_argument("--learned-mean-embed", action="store_true", help="v2's soft absorbing state")
    parser.add_argument("--denoise-rate", type=float, default=0.0, help="v2's discrete noise (0 = off)")
    parser.add_argument("--dropout", type=float, default=0.1, help="the official --dropout and the BERT config's "
                        "hidden and attention dropout (0: training without randomness beyond the batches and the noise)")
    parser.add_argument("--sampler-seed", type=int, help="seed of the official loader's DistributedSampler, which "
                        "otherwise shuffles with its default seed 0 whatever --seed is: every official run then trains "
                        "on the same batches in the same order")
    parser.add_argument("--record", type=Path, help="write each update's start clock, real tokens and logged losses here")
    args = parser.parse_args(argv)
    if args.vocab == "bert" and args.bert_vocab is None:
        parser.error("--vocab bert needs --bert-vocab vocab.txt (nothing can be downloaded here)")
    if args.version == "v1" and (args.learned_mean_embed or args.denoise_rate):
        parser.error("--learned-mean-embed and --denoise-rate are DiffuSeq-v2 options")
    return args


def official_argv(args, config_dir: Path):
    """The official train.py's command line for these settings."""
    vocab = "bert" if args.vocab == "bert" else str(Path(args.vocab).resolve())
    argv = [
        "train.py", "--checkpoint_path", str(args.out), "--dataset", "tiny", "--data_dir", str(args.data_dir),
        "--vocab", vocab, "--config_name", str(config_dir), "--use_plm_init", "no",
        "--seq_len", str(args.seq_len), "--hidden_dim", str(args.latent), "--hidden_t_dim", str(args.time_dim or args.latent),
        "--diffusion_steps", str(args.diffusion_steps), "--noise_schedule", "sqrt", "--schedule_sampler", "lossaware",
        "--lr", str(args.lr), "--batch_size", str(args.batch_size), "--microbatch", str(args.batch_size),
        "--learning_steps", str(args.steps), "--save_interval", str(args.steps), "--log_interval", "1",
        "--eval_interval", str(max(args.steps, 1)), "--seed", str(args.seed), "--dropout", str(args.dropout),
        "--ema_rate", str(args.ema_rate),
    ]
    if args.version == "v2":
        argv += ["--learned_mean_embed", str(args.learned_mean_embed), "--denoise", str(args.denoise_rate > 0),
                 "--denoise_rate", str(args.denoise_rate), "--reg_rate", "0.0"]
    return argv


def recorded_run_step(run_step, path: Path, pad_id: int):
    """``TrainLoop.run_step`` that records its update (see the module docstring), the file rewritten
    after every update."""
    import torch
    from diffuseq.utils import logger

    updates = []

    def recorded(loop, batch, cond):
        start, computed, training_losses = time.perf_counter(), [], loop.diffusion.training_losses

        def kept(*args, **kwargs):
            computed.append(training_losses(*args, **kwargs))
            return computed[-1]

        loop.diffusion.training_losses = kept
        try:
            run_step(loop, batch, cond)
        finally:
            del loop.diffusion.training_losses
        terms = {key: float(torch.cat([c[key].detach() for c in computed]).mean()) for key in ("loss", "mse", "nll")}
        terms["weighted_loss"] = float(logger.getkvs()["loss"])
        updates.append({"start": start, "tokens": int((cond["input_ids"] != pad_id).sum()), "terms": terms})
        path.write_text(json.dumps({"updates": updates}) + "\n")

    return recorded


def main(argv=None):
    args = parse_args(argv)
    args.out = args.out.resolve()
    args.data_dir = args.data_dir.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    config_dir = write_bert_config(args.out / "bert-config", args.layers, args.hidden, args.heads, args.ffn,
                                   dropout=args.dropout, bert_vocab=args.bert_vocab.resolve() if args.vocab == "bert" else None)
    os.environ["OPENAI_LOGDIR"] = str(args.out / "log")
    use_official(args.version)
    import train
    from torch.nn.parallel.distributed import DistributedDataParallel

    class CpuDDPTrainLoop(train.TrainLoop):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.ddp_model = DistributedDataParallel(self.model, broadcast_buffers=False)
            self.use_ddp = True

    if args.record is not None:
        CpuDDPTrainLoop.run_step = recorded_run_step(CpuDDPTrainLoop.run_step, args.record, pad_id=0 if args.vocab == "bert" else 3)
    train.TrainLoop = CpuDDPTrainLoop
    if args.sampler_seed is not None:
        from diffuseq import text_datasets
        text_datasets.DistributedSampler = functools.partial(text_datasets.DistributedSampler, seed=args.sampler_seed)
    os.environ["WANDB_MODE"] = "disabled"  # train.py sets "offline" at import, which writes ./wandb
    sys.argv = official_argv(args, config_dir)
    train.main()
    written = sorted(p.name for p in args.out.glob("ema_*.pt"))
    print(f"official {args.version} training wrote {', '.join(written)} in {args.out}")


if __name__ == "__main__":
    main()
