"""Do the plugin's own training draws give the official rule's gradient, in distribution? Plugin venv.

    .venv/bin/python benchmarks/official/draw_gradients.py --official runs/ls300/official --update 20 --draws 64

A lockstep run (lockstep_official.py) hands the official code its steps t and noises from a seeded rule
(lockstep_official.draws: t uniform by torch.randint, z0 noise and ε of the whole official sequence); in
free training the plugin's criterion draws them itself (its importance sampler's uniform warm-up, then the
network's own Gaussian draws, after fairseq's per-update reseed). Trained on the same batches, the two
should be the same random variables. This takes the official weights after ``--update`` updates
(converted) and that update's batch, and computes the training loss's gradient under ``--draws`` draws of
each kind, in train mode as the run trained (its dropout; 0 in a lockstep run). As compare_gradients.py
does for dropout, it prints per parameter

    r = |mean_rule - mean_own|² / ((|a - b|²_rule + |a - b|²_own) / 4)

(a, b: the means over the even and the odd draws of a kind), about 1 if the draws agree in distribution,
and the noise ratio |a - b|²_own / |a - b|²_rule, about 1 if they shake the gradient alike; then the mean
loss of each kind, the mean and spread of t, and the Kolmogorov-Smirnov distance between the per-draw
losses of the two kinds. The gradient statistics need large batches: with a few pairs a batch, rare steps
near t = 0 dominate the half means and r and the noise ratio swing by 2× between seeds; the per-draw
losses stay comparable.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_dump import fairseq_ids, load_converted  # noqa: E402
from compare_gradients import fairseq_sample, gradient_step, split_noise  # noqa: E402
from gradient_halves import half_means, half_noise, noise_ratio, noisy_names  # noqa: E402
from lockstep_official import draws  # noqa: E402

from diffuseq_fairseq.convert_official import convert  # noqa: E402
from diffuseq_fairseq.network import TrainingNoise  # noqa: E402


def own_draws(sampler, batch: int, seed: int):
    """t as the criterion draws it in training, after fairseq's reseed and the task's; the noises are
    left to the network (None)."""
    from fairseq import utils

    from diffuseq_fairseq.tasks.diffuseq import reseed_training_draws

    utils.set_torch_seed(seed)
    reseed_training_draws()
    t, _ = sampler.sample(batch, "cpu")
    return t, None


def rule_draws(network, sample, seq_len: int, seed: int):
    """The lockstep rule's t and noises from ``seed``, split at each row's source length."""
    lengths = sample["net_input"]["src_lengths"]
    t, z0_noise, epsilon = draws(seed, lengths.numel(), seq_len, network.cfg.latent_dim, network.cfg.num_timesteps)
    source_z0, target_z0 = split_noise(z0_noise, lengths)
    return t, TrainingNoise(source_z0, target_z0, split_noise(epsilon, lengths)[1])


def compare(official: Path, update: int, count: int, seed: int) -> dict:
    """{"dropout", "batch", "losses": {kind: [...]}, "steps": {kind: t}, "halves": {kind: [a, b]}} over ``count``
    draws of each kind, with the official weights after ``update`` updates and that update's batch."""
    record = torch.load(official / "lockstep.pt", weights_only=False)
    next_update = record["updates"][update]  # the batch the run trained on next
    with tempfile.TemporaryDirectory() as work:
        checkpoint = convert(official / f"model{update:06d}.pt", Path(work))["checkpoint"]
        network, dictionary = load_converted(Path(checkpoint))
    network.train()
    tokens = [token for token, _ in sorted(json.loads((official / "vocab.json").read_text()).items(),
                                           key=lambda item: item[1])]
    sample, _ = fairseq_sample(next_update["input_ids"], next_update["input_mask"],
                               fairseq_ids(tokens, False, dictionary), dictionary.pad())
    batch, seq_len = next_update["input_ids"].shape
    sampler = network.importance_sampler(0.001)
    kinds = {"rule": lambda k: rule_draws(network, sample, seq_len, seed + k),
             "own": lambda k: own_draws(sampler, batch, seed + k)}
    result = {"dropout": network.cfg.dropout, "batch": batch, "losses": {}, "steps": {}, "halves": {}}
    for kind, draw in kinds.items():
        steps = []

        def drawn_step(k):
            t, noise = draw(k)
            steps.append(t)
            loss, gradients = gradient_step(network, sample, seq_len, t, noise)
            return loss, {name: gradient.double() for name, gradient in gradients.items()}

        result["losses"][kind], result["halves"][kind] = half_means(drawn_step, count)
        result["steps"][kind] = torch.cat(steps)
    return result


def step_marginals(updates: int, batch: int = 64, steps: int = 2000) -> dict:
    """{kind: t drawn over ``updates`` updates of ``batch``}: the lockstep rule's (a generator seeded per
    update) and the criterion's (the importance sampler's uniform warm-up after fairseq's reseed)."""
    from diffuseq_fairseq.step_sampler import LossSecondMomentSampler

    sampler = LossSecondMomentSampler(torch.zeros(steps, 10), torch.zeros(steps))
    return {"rule": torch.cat([draws(5000 + k, batch, 1, 1, steps)[0] for k in range(updates)]),
            "own": torch.cat([own_draws(sampler, batch, 102 + k)[0] for k in range(updates)])}


def ks_distance(first, second) -> float:
    """Two-sample Kolmogorov-Smirnov distance: the largest gap between the two empirical distributions."""
    first, second = torch.sort(torch.as_tensor(first, dtype=torch.float64))[0], \
        torch.sort(torch.as_tensor(second, dtype=torch.float64))[0]
    points = torch.cat([first, second])
    cdf = [torch.searchsorted(side, points, right=True) / side.numel() for side in (first, second)]
    return float((cdf[0] - cdf[1]).abs().max())


def noisy_parameters(result: dict) -> list:
    """The parameters whose gradient the draws move (all but those of terms without noise)."""
    return noisy_names(result["halves"]["rule"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, help="folder written by lockstep_official.py")
    parser.add_argument("--update", type=int, default=20, help="a snapshot of the run (its model<K>.pt)")
    parser.add_argument("--draws", type=int, default=64, help="draws of each kind (even)")
    parser.add_argument("--seed", type=int, default=5000)
    parser.add_argument("--step-marginals", type=int, metavar="UPDATES",
                        help="only print the marginal distribution of t of both kinds over this many updates of 64")
    args = parser.parse_args(argv)
    if not args.step_marginals and args.official is None:
        parser.error("--official is required (unless --step-marginals)")
    if args.step_marginals:
        for kind, t in step_marginals(args.step_marginals).items():
            t = t.double()
            print(f"{kind:<5} {t.numel()} steps: mean {float(t.mean()):.1f} (uniform 999.5 ± {577.35 / t.numel() ** 0.5:.1f}), "
                  f"share < 20 {float((t < 20).double().mean()):.5f} (0.01), < 100 {float((t < 100).double().mean()):.4f} (0.05), "
                  f">= 1900 {float((t >= 1900).double().mean()):.4f} (0.05)")
        return
    if args.draws < 2 or args.draws % 2:
        parser.error("--draws must be even and at least 2")
    result = compare(args.official, args.update, args.draws, args.seed)
    print(f"{args.official} after update {args.update}: its next batch of {result['batch']} pairs, {args.draws} "
          f"draws of each kind, dropout {result['dropout']}")
    for kind in ("rule", "own"):
        values, t = torch.tensor(result["losses"][kind], dtype=torch.float64), result["steps"][kind].double()
        print(f"{kind:<5} loss {float(values.mean()):.5f} ± {float(values.std() / len(values) ** 0.5):.5f}; "
              f"t mean {float(t.mean()):.0f}, sd {float(t.std()):.0f}, share < 100 {float((t < 100).double().mean()):.3f}")
    distance = ks_distance(result["losses"]["rule"], result["losses"]["own"])
    print(f"per-draw losses: Kolmogorov-Smirnov distance {distance:.3f} (the 0.1 % critical value "
          f"{1.95 * (2 / args.draws) ** 0.5:.3f})")
    rule, own = result["halves"]["rule"], result["halves"]["own"]
    names = noisy_parameters(result)
    print(f"{'parameter':<44} {'r':>8} {'noise own/rule':>15}")
    for name in names:
        print(f"{name:<44} {noise_ratio(own, rule, [name]):>8.2f} "
              f"{half_noise(own, [name]) / half_noise(rule, [name]):>15.2f}")
    print(f"all parameters: r {noise_ratio(own, rule, names):.3f}, noise own/rule "
          f"{half_noise(own, names) / half_noise(rule, names):.3f}")


if __name__ == "__main__":
    main()
