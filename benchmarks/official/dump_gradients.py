"""One official training step's gradients, for the plugin to recompute; official venv.

    .official-venv/bin/python benchmarks/official/dump_gradients.py --version v1 \\
        --checkpoint runs/official_v1/ema_0.9999_000006.pt --out runs/official_v1/gradients

The loss of the official TrainLoop on the first ``--examples`` test pairs as one batch, with
noise drawn here (the same draws as dump_tensors.py for the same --seed) and uniform importance
weights: ``training_losses_seq2seq(...)["loss"].mean()``, in eval mode (dropout off, the only
randomness that cannot be handed over). Writes, into --out, ``gradients.pt``: the gradient of every
parameter under the official state-dict key (the tied lm_head/word_embedding gradient under both),
with the checkpoint's ``training_args.json`` and vocabulary beside it, so that
``diffuseq-convert-official`` maps the gradients exactly as it maps the weights; and ``batch.pt``
(dump_tensors.py's header, t and noise) for compare_gradients.py.
"""
import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dump_tensors import batch_draws, recorded_losses  # noqa: E402
from official_batch import add_batch_options, dump_header, load_batch  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", choices=("v1", "v2"), default="v1")
    add_batch_options(parser, seed=7)
    args = parser.parse_args(argv)
    batch = load_batch(args, args.version)
    import torch

    model, diffusion, ids, mask = batch.model, batch.diffusion, batch.ids, batch.mask
    model.requires_grad_(True)
    size = ids.shape[0]
    t, z0_noise, epsilon, _, absorb_draws = batch_draws(batch, args.seed)
    losses = recorded_losses(diffusion, model, batch.placeholder, ids, mask, t, z0_noise, epsilon, absorb_draws)
    loss = losses["loss"].mean()  # TrainLoop: (losses["loss"] * weights).mean(), weights 1 while uniform
    loss.backward()
    state = model.state_dict()
    gradients = {name: param.grad.detach().clone() for name, param in model.named_parameters()}
    if model.lm_head.weight is model.word_embedding.weight:  # tied: one gradient, two keys
        gradients["lm_head.weight"] = gradients["word_embedding.weight"]
    missing = [key for key in state if key not in gradients and not key.endswith("position_ids")]
    if missing:
        raise SystemExit(f"no gradient for {missing}")
    gradients.update({key: value for key, value in state.items() if key not in gradients})
    args.out.mkdir(parents=True, exist_ok=True)
    torch.save(gradients, args.out / "gradients.pt")
    for name in ("training_args.json", "vocab.json", "vocab.txt"):
        if (args.checkpoint.parent / name).exists():
            shutil.copy(args.checkpoint.parent / name, args.out / name)
    torch.save({**dump_header(args, batch), "t": t, "z0_noise": z0_noise, "epsilon": epsilon,
                "absorb_draws": absorb_draws, "loss": loss.detach()}, args.out / "batch.pt")
    print(f"official {args.version}: loss {loss.item():.6f} over {size} examples (t {t.tolist()}); "
          f"gradients of {len(gradients)} tensors in {args.out}")


if __name__ == "__main__":
    main()
