"""Train the official DiffuSeq code with its randomness handed in, for the plugin to follow update by update; official venv.

    .official-venv/bin/python benchmarks/official/lockstep_official.py --data-dir DIR --vocab VOCAB.txt \\
        --out runs/lockstep/official --steps 60 --snapshots 0,1,2,5,10,20,40,60 --dropout 0 [train_tiny.py options]

The official train.py runs as in train_tiny.py, except that each update's random draws come from
here: update k draws, from a generator seeded with --draw-seed + k, its steps t (uniform over
[0, T): what the loss-aware sampler draws while it warms up, with importance weights 1), then the z0
noise and the q_sample ε ([batch, seq_len, hidden_dim] each). t goes to the TrainLoop's schedule
sampler, the z0 noise through ``_get_x_start`` and ε through ``training_losses``' noise argument.
With --dropout 0 nothing else is random, so lockstep_plugin.py can replay the same updates.
--schedule-steps N decays the learning rate over N updates (the official --learning_steps) and stops after
--steps of them, so that the first updates of a longer run can be replayed. With --dropout above 0 the
official dropout draws its masks from torch's global generator, which --seed leaves in the same state after
the initialisation in every run; --dropout-seed reseeds it before the first update, so that runs from one
initialisation draw different masks.

Writes OUT/lockstep.pt (per update: the batch's input_ids and input_mask, t, a checksum of the
noises, the per-sentence loss terms averaged over the batch, the learning rate the update used) and
OUT/model<K>.pt, the model's weights after update K for each K of --snapshots (0: the
initialisation), beside the run's training_args.json and vocab.json, so that
diffuseq-convert-official maps them onto the plugin's parameters.
"""
import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_tiny import official_argv, parse_args  # noqa: E402
from official_setup import use_official, write_bert_config  # noqa: E402


def draws(seed: int, batch: int, seq_len: int, latent: int, steps: int):
    """(t, z0 noise, ε) of one update; lockstep_plugin.py draws the same with the same torch."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    t = torch.randint(0, steps, (batch,), generator=generator)
    z0_noise = torch.randn(batch, seq_len, latent, generator=generator)
    epsilon = torch.randn(batch, seq_len, latent, generator=generator)
    return t, z0_noise, epsilon


class Recorded(Exception):
    """Raised after the last recorded update of a run whose schedule is longer (--schedule-steps)."""


def lockstep_run_step(run_step, out: Path, draw_seed: int, snapshots: set, learning_steps: int, stop: int,
                      dropout_seed: int = None):
    """TrainLoop.run_step with the draws handed in; records each update (module docstring) and stops
    after ``stop`` of the ``learning_steps``; ``dropout_seed`` reseeds torch's global generator (the dropout
    masks' only source here) before the first update."""
    import torch

    updates = []

    def save_weights(loop, update: int):
        torch.save(loop.model.state_dict(), out / f"model{update:06d}.pt")

    def replayed(loop, batch, cond):
        update = len(updates)
        if update == 0 and 0 in snapshots:
            save_weights(loop, 0)
        if update == 0 and dropout_seed is not None:
            torch.manual_seed(dropout_seed)
        ids = cond["input_ids"]
        t, z0_noise, epsilon = draws(draw_seed + update, ids.shape[0], ids.shape[1], loop.model.word_embedding.weight.shape[1],
                                     loop.diffusion.num_timesteps)
        diffusion, sampler, computed = loop.diffusion, loop.schedule_sampler, []
        training_losses = diffusion.training_losses

        def with_noise(*args, **kwargs):
            computed.append(training_losses(*args, noise=epsilon, **kwargs))
            return computed[-1]

        diffusion.training_losses = with_noise
        diffusion._get_x_start = lambda mean, std: mean + std * z0_noise
        sampler.sample = lambda size, device: (t.to(device), torch.ones(size, device=device))
        try:
            run_step(loop, batch, cond)
        finally:
            for name in ("training_losses", "_get_x_start"):
                delattr(diffusion, name)
            del sampler.sample
        if len(computed) != 1:
            raise SystemExit(f"update {update}: expected one training_losses call, got {len(computed)} "
                             "(set --batch-size equal to the microbatch)")
        terms = {key: float(computed[0][key].detach().mean()) for key in ("loss", "mse", "nll")}
        updates.append({"input_ids": ids.clone(), "input_mask": cond["input_mask"].clone(), "t": t,
                        "noise_checksum": float(z0_noise.double().sum() + epsilon.double().sum()),
                        "terms": terms, "lr": loop.opt.param_groups[0]["lr"]})
        if update + 1 in snapshots:
            save_weights(loop, update + 1)
        torch.save({"draw_seed": draw_seed, "learning_steps": learning_steps, "dropout_seed": dropout_seed,
                    "updates": updates}, out / "lockstep.pt")
        if len(updates) == stop < learning_steps:
            raise Recorded

    return replayed


def main(argv=None):
    # This script's options; the rest are train_tiny.py's. No prefixes: --dropout is theirs, not --dropout-seed.
    lockstep = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    lockstep.add_argument("--snapshots", default="0,1,2,5,10,20,40,60", help="updates whose weights are kept")
    lockstep.add_argument("--draw-seed", type=int, default=1000, help="update k draws from seed DRAW_SEED + k")
    lockstep.add_argument("--schedule-steps", type=int, help="the learning-rate decay's length (default --steps)")
    lockstep.add_argument("--dropout-seed", type=int, help="with --dropout: reseed torch's global generator, whence "
                          "the dropout masks, before the first update (default: as --seed left it)")
    own, rest = lockstep.parse_known_args(argv)
    args = parse_args(rest)
    if args.version != "v1":
        raise SystemExit("lockstep runs the paper's code: --version v1")
    snapshots = {int(k) for k in own.snapshots.split(",")}
    args.out, args.data_dir = args.out.resolve(), args.data_dir.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    config_dir = write_bert_config(args.out / "bert-config", args.layers, args.hidden, args.heads, args.ffn,
                                   dropout=args.dropout)
    os.environ["OPENAI_LOGDIR"] = str(args.out / "log")
    use_official("v1")
    import train
    from torch.nn.parallel.distributed import DistributedDataParallel

    class CpuDDPTrainLoop(train.TrainLoop):  # as train_tiny.py: the official loss needs the DDP wrapper
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.ddp_model = DistributedDataParallel(self.model, broadcast_buffers=False)
            self.use_ddp = True

    learning_steps = own.schedule_steps or args.steps
    if learning_steps < args.steps:
        raise SystemExit("--schedule-steps must be at least --steps")
    CpuDDPTrainLoop.run_step = lockstep_run_step(CpuDDPTrainLoop.run_step, args.out, own.draw_seed, snapshots,
                                                 learning_steps, args.steps, own.dropout_seed)
    train.TrainLoop = CpuDDPTrainLoop
    os.environ["WANDB_MODE"] = "disabled"
    sys.argv = official_argv(args, config_dir)
    sys.argv[sys.argv.index("--learning_steps") + 1] = str(learning_steps)  # training_args.json keeps it too
    try:
        train.main()
    except Recorded:
        pass
    print(f"official lockstep run: {args.steps} updates recorded in {args.out / 'lockstep.pt'}")


if __name__ == "__main__":
    main()
