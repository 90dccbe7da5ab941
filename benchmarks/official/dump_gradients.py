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

``--dropout P --masks K`` asks whether dropout acts alike on both sides, which no single step can
show: in train mode with every official dropout (embedding, attention probabilities, both hidden
dropouts of each BERT layer) at rate P, the same step is taken under K dropout draws, and
``gradients_a.pt`` / ``gradients_b.pt`` hold the mean gradient over the even / odd draws
(gradient_halves.py); compare_gradients.py does the same on the plugin side and sets the gap between
the two sides' means against their noise.
"""
import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dump_tensors import batch_draws, recorded_losses  # noqa: E402
from gradient_halves import half_means  # noqa: E402
from official_batch import add_batch_options, dump_header, load_batch  # noqa: E402


def set_dropout(model, rate: float) -> int:
    """Every dropout of the official model at ``rate`` (nn.Dropout modules, and the attention
    probabilities' rate of transformers' SDPA attention); returns how many were set."""
    import torch

    count = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p, count = rate, count + 1
        elif hasattr(module, "dropout_prob"):
            module.dropout_prob, count = rate, count + 1
    return count


def step_gradients(model, batch, draws) -> tuple:
    """(loss, {official key: gradient}) of one TrainLoop step on the batch with the given draws."""
    t, z0_noise, epsilon, _, absorb_draws = draws
    model.zero_grad(set_to_none=True)
    losses = recorded_losses(batch.diffusion, model, batch.placeholder, batch.ids, batch.mask, t, z0_noise, epsilon,
                             absorb_draws)
    loss = losses["loss"].mean()  # TrainLoop: (losses["loss"] * weights).mean(), weights 1 while uniform
    loss.backward()
    gradients = {name: param.grad.detach().clone() for name, param in model.named_parameters()}
    if model.lm_head.weight is model.word_embedding.weight:  # tied: one gradient, two keys
        gradients["lm_head.weight"] = gradients["word_embedding.weight"]
    return loss.detach(), gradients


def convertible(model, gradients: dict) -> dict:
    """The gradients with the model's other state entries, as diffuseq-convert-official reads a state dict."""
    state = model.state_dict()
    missing = [key for key in state if key not in gradients and not key.endswith("position_ids")]
    if missing:
        raise SystemExit(f"no gradient for {missing}")
    return {**gradients, **{key: value for key, value in state.items() if key not in gradients}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", choices=("v1", "v2"), default="v1")
    parser.add_argument("--dropout", type=float, help="train mode with every dropout at this rate (see above)")
    parser.add_argument("--masks", type=int, default=16, help="dropout draws under --dropout (even: two halves)")
    add_batch_options(parser, seed=7)
    args = parser.parse_args(argv)
    if args.dropout is not None and (args.masks < 2 or args.masks % 2):
        parser.error("--masks must be even and at least 2")
    batch = load_batch(args, args.version)
    import torch

    model = batch.model
    model.requires_grad_(True)
    draws = batch_draws(batch, args.seed)
    header = {**dump_header(args, batch), "t": draws[0], "z0_noise": draws[1], "epsilon": draws[2],
              "absorb_draws": draws[4]}
    args.out.mkdir(parents=True, exist_ok=True)
    if args.dropout is None:
        loss, gradients = step_gradients(model, batch, draws)
        torch.save(convertible(model, gradients), args.out / "gradients.pt")
    else:
        if set_dropout(model, args.dropout) == 0:
            raise SystemExit("the official model has no dropout to set")
        model.train()

        def masked_step(k):
            torch.manual_seed(args.seed * 100_003 + k)  # the dropout masks: the only draws not handed in
            return step_gradients(model, batch, draws)

        mask_losses, halves = half_means(masked_step, args.masks)
        for half, name in zip(halves, ("gradients_a.pt", "gradients_b.pt")):
            torch.save(convertible(model, half), args.out / name)
        loss = torch.tensor(mask_losses).mean()
        header.update(dropout=args.dropout, mask_losses=torch.tensor(mask_losses))
    for name in ("training_args.json", "vocab.json", "vocab.txt"):
        if (args.checkpoint.parent / name).exists():
            shutil.copy(args.checkpoint.parent / name, args.out / name)
    torch.save({**header, "loss": loss}, args.out / "batch.pt")
    masks = "" if args.dropout is None else f", mean over {args.masks} dropout draws at rate {args.dropout}"
    print(f"official {args.version}: loss {float(loss):.6f} over {batch.ids.shape[0]} examples (t {draws[0].tolist()}"
          f"{masks}); gradients in {args.out}")


if __name__ == "__main__":
    main()
