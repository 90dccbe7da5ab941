"""Dump what the official DiffuSeq code computes on one batch, for the plugin to recompute; official venv.

    .official-venv/bin/python benchmarks/official/dump_tensors.py --version v1 \\
        --checkpoint runs/official_v1/ema_0.9999_000006.pt --out runs/official_v1/dump.pt

Builds the official model from the ``training_args.json`` beside the checkpoint, loads the
checkpoint as ``sample_seq2seq.py`` does, and reads the first ``--examples`` pairs of the run's
test split through the official data pipeline (tokenizer, ``merge_and_mask``, padding to seq_len).
In eval mode (no dropout), with noise drawn here from ``--seed`` and given to the official code:

* ``training_losses_seq2seq`` for steps t (0, T-1 and random ones): the z0 noise goes in through
  ``_get_x_start`` (replaced on this diffusion object), the q_sample ε through its ``noise``
  argument, and (v2 --denoise) uniform draws that decide its discrete noise; the dump holds each term (mse, decoder_nll, nll, tT, loss) and the model's input x_t
  and output x̂0 of that call (and, for v2, its reg_rate·‖m‖ term, which the plugin does not have);
* the denoiser on the sampler's start state (source: clean embeddings, target: noise) at T-1.

Plus the schedule (ᾱ) and the tokens of the official vocabulary by id.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_batch import add_batch_options, dump_header, load_batch  # noqa: E402
from official_setup import ModuleHolder  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", choices=("v1", "v2"), default="v1")
    add_batch_options(parser, seed=7)
    return parser.parse_args(argv)


def recorded_losses(diffusion, model, placeholder, ids, mask, t, z0_noise, epsilon, absorb_draws):
    """training_losses_seq2seq with the given noise; every term and the model call it made.
    ``absorb_draws`` ([B, L] uniform) decide v2's discrete noise: its ``mask_rate.bernoulli()``
    becomes ``draws < mask_rate``, the same Bernoulli variables."""
    import torch
    from diffuseq.utils.nn import mean_flat

    token_losses, prior_means = [], []
    token_loss, q_mean_variance = diffusion._token_discrete_loss, diffusion.q_mean_variance

    def record_token_loss(*args, **kwargs):
        token_losses.append(token_loss(*args, **kwargs))
        return token_losses[-1]

    def record_prior(x_start, steps):
        prior_means.append(q_mean_variance(x_start, steps)[0])
        return q_mean_variance(x_start, steps)

    diffusion._get_x_start = lambda mean, std: mean + std * z0_noise
    diffusion._token_discrete_loss, diffusion.q_mean_variance = record_token_loss, record_prior
    holder, bernoulli = ModuleHolder(model), torch.Tensor.bernoulli
    torch.Tensor.bernoulli = lambda rate, *args, **kwargs: (absorb_draws < rate).to(rate.dtype)
    try:
        terms = diffusion.training_losses(holder, placeholder, t, noise=epsilon,
                                          model_kwargs={"input_ids": ids.clone(), "input_mask": mask.clone()})
    finally:
        torch.Tensor.bernoulli = bernoulli
    for name in ("_get_x_start", "_token_discrete_loss", "q_mean_variance"):
        delattr(diffusion, name)
    (x_t, model_time, x0_hat), = holder.calls
    return {"mse": terms["mse"], "decoder_nll": token_losses[0], "nll": token_losses[1],
            "tT": mean_flat(prior_means[0] ** 2), "loss": terms["loss"],
            "x_t": x_t, "model_time": model_time, "x0_hat": x0_hat}


def batch_draws(batch, seed: int):
    """(t, z0 noise, q_sample ε, sampler start noise, v2's absorbing draws) for ``batch``, from ``seed``:
    t covers 0 and T-1 (first and last example) and random steps between."""
    import torch

    size, length, latent = batch.ids.shape[0], batch.ids.shape[1], batch.run.hidden_dim
    generator = torch.Generator().manual_seed(seed)
    steps = batch.diffusion.num_timesteps
    t = torch.randint(1, steps - 1, (size,), generator=generator)
    t[0], t[-1] = 0, steps - 1
    z0_noise, epsilon, start_noise = (torch.randn(size, length, latent, generator=generator) for _ in range(3))
    return t, z0_noise, epsilon, start_noise, torch.rand(size, length, generator=generator)


def mean_embed_regulariser(diffusion, model) -> float:
    """v2 adds reg_rate·‖m‖₂ to every example's loss; its reg_rate is GaussianDiffusion's default
    (0.01), since create_model_and_diffusion does not pass the --reg_rate option on."""
    if getattr(model, "mean_embed", None) is None:
        return 0.0
    return float(diffusion.reg_rate * model.mean_embed.norm(p=2))


def main(argv=None):
    args = parse_args(argv)
    batch = load_batch(args, args.version)
    import torch

    model, diffusion, ids, mask = batch.model, batch.diffusion, batch.ids, batch.mask
    size, steps = ids.shape[0], diffusion.num_timesteps
    t, z0_noise, epsilon, start_noise, absorb_draws = batch_draws(batch, args.seed)
    with torch.no_grad():
        losses = recorded_losses(diffusion, model, batch.placeholder, ids, mask, t, z0_noise, epsilon, absorb_draws)
        clean = model.get_embeds(ids)
        x_start_state = torch.where(mask.unsqueeze(-1) == 0, clean, start_noise)
        last = torch.full((size,), steps - 1, dtype=torch.long)
        start_x0_hat = diffusion._wrap_model(model)(x_start_state, last)
    dump = {
        **dump_header(args, batch), "t": t, "z0_noise": z0_noise, "epsilon": epsilon,
        "absorb_draws": absorb_draws, "absorb_rate": float(getattr(diffusion, "denoise_rate", 0.0))
        if getattr(diffusion, "denoise", False) else 0.0,
        "start_x_t": x_start_state, "start_t": last, "start_x0_hat": start_x0_hat, **losses,
        "mean_embed_regulariser": mean_embed_regulariser(diffusion, model),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dump, args.out)
    print(f"official {args.version}: dumped {size} examples (seq_len {ids.shape[1]}, t {t.tolist()}) to {args.out}")


if __name__ == "__main__":
    main()
