"""Recompute one official training step's gradients (dump_gradients.py) with the converted model; plugin venv.

    .venv/bin/python benchmarks/official/compare_gradients.py --gradients runs/official_v1/gradients \\
        --checkpoint runs/official_v1_converted/checkpoint.pt

The loss-term comparison (compare_dump.py) takes one example at a time and no gradient; this one
takes the examples as one padded batch, as the plugin's criterion trains on them: the sources
right-padded to the longest, each row's target canvas the official positions after its source
(``target_mask``), the official noise, loss over all positions, the mean over the batch of
mse + rounding NLL + tT, in eval mode. The official gradients are mapped onto the plugin's
parameters by diffuseq-convert-official itself (the mapping of the weights: fused q/k/v, word
rows in fairseq order). Prints the loss of both and, per parameter, the largest absolute
difference against the largest official gradient; exits 1 if a relative difference exceeds
--tolerance.

A folder dumped with ``--dropout P --masks K`` is compared in distribution instead: the plugin, in
train mode at the same rate, takes the step under K dropout draws of its own, and per parameter

    r = |mean_official - mean_plugin|² / ((|a - b|²_official + |a - b|²_plugin) / 4)

where a and b are the means over the even and the odd draws of a side. If dropout acts alike, the
two means differ only by dropout noise and r is about 1; a dropout placed or scaled differently
shows as r well above 1 in the parameters it touches. The noise column, |a - b|² of the plugin over
the official one, is about 1 where dropout is as strong on both sides. A gradient dropout does not
reach (the output bias, which only the rounding term on clean embeddings trains) has no noise; its
largest relative difference stands in for r. Exits 1 if the r of all parameters together exceeds
--max-ratio.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_dump import fairseq_ids, load_converted  # noqa: E402
from gradient_halves import half_means, half_noise, noise_ratio, noisy_names  # noqa: E402,F401

from diffuseq_fairseq.convert_official import convert  # noqa: E402
from diffuseq_fairseq.network import TrainingNoise  # noqa: E402


def padded(rows, width: int, value=0.0) -> torch.Tensor:
    return torch.stack([torch.nn.functional.pad(row, (0, 0) * (row.dim() - 1) + (0, width - row.size(0)), value=value)
                        for row in rows])


def fairseq_sample(ids: torch.Tensor, mask: torch.Tensor, lookup: torch.Tensor, pad: int):
    """The official rows as a fairseq sample (source, then the rest of the row as the target canvas)
    and the row lengths the official noises are split at."""
    tokens = lookup[ids]
    lengths = (mask == 0).sum(1)
    rows = range(tokens.size(0))
    src = padded([tokens[r, :lengths[r]] for r in rows], int(lengths.max()), pad)
    target = padded([tokens[r, lengths[r]:] for r in rows], int((tokens.size(1) - lengths).max()), pad)
    sample = {"id": torch.arange(tokens.size(0)), "nsentences": tokens.size(0), "ntokens": int(target.ne(pad).sum()),
              "net_input": {"src_tokens": src, "src_lengths": lengths}, "target": target}
    return sample, lengths


def split_noise(noise: torch.Tensor, lengths: torch.Tensor):
    """[B, L, ...] official noise as (source part, target part), right-padded as the sample."""
    rows = range(noise.size(0))
    return (padded([noise[r, :lengths[r]] for r in rows], int(lengths.max())),
            padded([noise[r, lengths[r]:] for r in rows], int((noise.size(1) - lengths).max())))


def gradient_step(network, sample: dict, seq_len: int, t, noise):
    """(loss, {parameter: gradient}) of one training step on ``sample`` (each row's canvas: the rest of
    the seq_len positions after its source), as the criterion trains: the mean over the batch of
    mse + rounding NLL + tT over all positions; ``noise`` None lets the network draw it."""
    network.zero_grad(set_to_none=True)
    target, lengths = sample["target"], sample["net_input"]["src_lengths"]
    target_mask = torch.arange(target.size(1)) < (seq_len - lengths).unsqueeze(1)
    terms = network.training_terms(sample["net_input"]["src_tokens"], lengths, target, t, loss_positions="all",
                                   noise=noise, target_mask=target_mask)
    loss = (terms["mse"] + terms["rounding_nll"] + terms["tT"]).mean()  # the criterion's sum / sample_size
    loss.backward()
    return loss.detach(), {f"network.{name}": p.grad for name, p in network.named_parameters() if p.grad is not None}


def plugin_step(network, dictionary, batch: dict):
    """(loss, {parameter: gradient}) of the plugin on the official batch, padded as in training."""
    lookup = fairseq_ids(batch["tokens"], batch["bert_vocab"], dictionary)
    sample, lengths = fairseq_sample(batch["input_ids"], batch["input_mask"], lookup, dictionary.pad())
    source_z0, target_z0 = split_noise(batch["z0_noise"], lengths)
    noise = TrainingNoise(source_z0, target_z0, split_noise(batch["epsilon"], lengths)[1],
                          absorb=split_noise(batch["absorb_draws"], lengths)[1])
    return gradient_step(network, sample, batch["input_ids"].size(1), batch["t"], noise)


def official_gradients(folder: Path, name: str = "gradients.pt") -> dict:
    """The official gradients under the plugin's parameter names, mapped by the converter."""
    with tempfile.TemporaryDirectory() as out:
        convert(folder / name, Path(out))
        return torch.load(Path(out) / "checkpoint.pt", weights_only=False)["model"]


def dropout_halves(folder: Path, checkpoint: Path):
    """(batch, plugin per-draw losses, plugin halves, official halves): the plugin in train mode at the
    dump's dropout rate over as many draws as the official dump took, each half a mean gradient."""
    batch = torch.load(folder / "batch.pt", weights_only=True)
    network, dictionary = load_converted(checkpoint, dropout=batch["dropout"])
    network.train()

    def masked_step(k):
        torch.manual_seed(1_000_003 + k)
        loss, gradients = plugin_step(network, dictionary, batch)
        return loss, {name: gradient.double() for name, gradient in gradients.items()}

    losses, halves = half_means(masked_step, len(batch["mask_losses"]))
    official = [{name: gradient.double() for name, gradient in official_gradients(folder, file).items()
                 if name in halves[0]} for file in ("gradients_a.pt", "gradients_b.pt")]
    return batch, losses, halves, official


def compare_dropout(folder: Path, checkpoint: Path, max_ratio: float) -> int:
    batch, losses, plugin, official = dropout_halves(folder, checkpoint)
    official_losses = batch["mask_losses"].double()
    ours = torch.tensor(losses, dtype=torch.float64)
    print(f"official {batch['version']} ({batch['checkpoint']}): one batch of {batch['input_ids'].shape[0]} examples, "
          f"dropout {batch['dropout']}, {len(losses)} dropout draws a side")
    for side, values in (("official", official_losses), ("plugin", ours)):
        print(f"loss {side:<8} {float(values.mean()):.6f} ± {float(values.std() / len(values) ** 0.5):.6f} "
              f"(sd over draws {float(values.std()):.6f})")
    print(f"{'parameter':<44} {'r':>8} {'noise plugin/official':>22}")
    noisy = noisy_names(official)
    for name in plugin[0]:
        if name not in noisy:
            mean = [(side[0][name] + side[1][name]) / 2 for side in (official, plugin)]
            relative = float((mean[0] - mean[1]).abs().max() / mean[0].abs().max())
            print(f"{name:<44} {'-':>8} {'no dropout noise':>22}   max relative difference {relative:.1e}")
            continue
        print(f"{name:<44} {noise_ratio(plugin, official, [name]):>8.2f} "
              f"{half_noise(plugin, [name]) / half_noise(official, [name]):>22.2f}")
    overall = noise_ratio(plugin, official, noisy)
    print(f"all parameters with dropout noise: r {overall:.3f} ({'within' if overall <= max_ratio else 'ABOVE'} "
          f"{max_ratio:g}), noise plugin/official {half_noise(plugin, noisy) / half_noise(official, noisy):.3f}")
    return 0 if overall <= max_ratio else 1


def compare(folder: Path, checkpoint: Path):
    """(batch, plugin loss, {parameter: (max |official - plugin|, max |official|)})."""
    batch = torch.load(folder / "batch.pt", weights_only=True)
    network, dictionary = load_converted(checkpoint)
    loss, ours = plugin_step(network, dictionary, batch)
    official = official_gradients(folder)
    missing = sorted(set(ours) - set(official))
    if missing:
        raise SystemExit(f"no official gradient for {missing}")
    gaps = {name: (float((official[name].double() - grad.double()).abs().max()), float(official[name].abs().max()))
            for name, grad in ours.items()}
    return batch, float(loss), gaps


def worst_relative(batch, loss: float, gaps: dict) -> float:
    """The largest relative difference: of the loss, and of each gradient against its largest official entry."""
    official_loss = float(batch["loss"])
    return max([abs(official_loss - loss) / abs(official_loss)] + [gap / scale if scale else gap
                                                                   for gap, scale in gaps.values()])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gradients", required=True, type=Path, help="folder written by dump_gradients.py")
    parser.add_argument("--checkpoint", required=True, type=Path, help="the official weights, converted")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest |difference| / largest |official|")
    parser.add_argument("--max-ratio", type=float, default=1.5, help="largest r of a dropout dump (see above)")
    args = parser.parse_args(argv)
    if "dropout" in torch.load(args.gradients / "batch.pt", weights_only=True):
        return compare_dropout(args.gradients, args.checkpoint, args.max_ratio)
    batch, loss, gaps = compare(args.gradients, args.checkpoint)
    print(f"official {batch['version']} ({batch['checkpoint']}): one batch of {batch['input_ids'].shape[0]} examples, "
          f"t {batch['t'].tolist()}; loss official {float(batch['loss']):.7f}, plugin {loss:.7f}")
    print(f"{'parameter':<44} {'max |official - plugin|':>24} {'max |official|':>15} {'relative':>10}")
    for name, (gap, scale) in gaps.items():
        print(f"{name:<44} {gap:>24.3e} {scale:>15.4g} {gap / scale if scale else gap:>10.2e}")
    worst = worst_relative(batch, loss, gaps)
    print(f"largest relative difference {worst:.3e} ({'within' if worst <= args.tolerance else 'ABOVE'} {args.tolerance:g})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
