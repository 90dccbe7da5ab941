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
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_setup import ModuleHolder, launcher_environment, use_official  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", choices=("v1", "v2"), default="v1")
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--data-dir", type=Path, help="jsonl folder (default: the run's data_dir)")
    parser.add_argument("--examples", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", required=True, type=Path)
    return parser.parse_args(argv)


def load_official(checkpoint: Path, data_dir):
    """(model in eval mode, diffusion, run arguments, tokenizer) as the official decoder builds them."""
    import json
    import torch
    from basic_utils import args_to_dict, create_model_and_diffusion, load_defaults_config, load_tokenizer

    saved = json.loads((checkpoint.parent / "training_args.json").read_text())
    run = argparse.Namespace(**{**load_defaults_config(), **saved})
    run.device = "cpu"  # v2 builds its schedule tensors on this device
    if data_dir is not None:
        run.data_dir = str(data_dir.resolve())
    model, diffusion = create_model_and_diffusion(**args_to_dict(run, load_defaults_config().keys()))
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    model.eval().requires_grad_(False)
    launcher_environment()  # the custom-vocabulary tokenizer reads LOCAL_RANK
    run.checkpoint_path = tempfile.mkdtemp(prefix="official-tokenizer-")  # the tokenizer saves itself there
    return model, diffusion, run, load_tokenizer(run)


def official_tokens(tokenizer, size: int):
    """The token of each official id."""
    if isinstance(tokenizer.tokenizer, dict):
        return [tokenizer.rev_tokenizer[i] for i in range(size)]
    return tokenizer.tokenizer.convert_ids_to_tokens(list(range(size)))


def first_batch(run, tokenizer, model, examples: int):
    import torch
    from diffuseq.text_datasets import load_data_text

    embedding = torch.nn.Embedding(tokenizer.vocab_size, run.hidden_dim, _weight=model.word_embedding.weight.clone())
    data = load_data_text(batch_size=examples, seq_len=run.seq_len, deterministic=True, data_args=run, split="test",
                          loaded_vocab=tokenizer, model_emb=embedding, loop=False)
    placeholder, cond = next(data)
    return placeholder, cond["input_ids"], cond["input_mask"]


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


def mean_embed_regulariser(diffusion, model) -> float:
    """v2 adds reg_rate·‖m‖₂ to every example's loss; its reg_rate is GaussianDiffusion's default
    (0.01), since create_model_and_diffusion does not pass the --reg_rate option on."""
    if getattr(model, "mean_embed", None) is None:
        return 0.0
    return float(diffusion.reg_rate * model.mean_embed.norm(p=2))


def main(argv=None):
    args = parse_args(argv)
    args.checkpoint, args.out = args.checkpoint.resolve(), args.out.resolve()
    data_dir = args.data_dir.resolve() if args.data_dir else None
    use_official(args.version)
    import numpy
    import torch

    model, diffusion, run, tokenizer = load_official(args.checkpoint, data_dir)
    placeholder, ids, mask = first_batch(run, tokenizer, model, args.examples)
    batch, length, latent = ids.shape[0], ids.shape[1], run.hidden_dim
    generator = torch.Generator().manual_seed(args.seed)
    steps = diffusion.num_timesteps
    t = torch.randint(1, steps - 1, (batch,), generator=generator)
    t[0], t[-1] = 0, steps - 1
    z0_noise, epsilon, start_noise = (torch.randn(batch, length, latent, generator=generator) for _ in range(3))
    absorb_draws = torch.rand(batch, length, generator=generator)
    with torch.no_grad():
        losses = recorded_losses(diffusion, model, placeholder, ids, mask, t, z0_noise, epsilon, absorb_draws)
        clean = model.get_embeds(ids)
        x_start_state = torch.where(mask.unsqueeze(-1) == 0, clean, start_noise)
        last = torch.full((batch,), steps - 1, dtype=torch.long)
        start_x0_hat = diffusion._wrap_model(model)(x_start_state, last)
    dump = {
        "version": args.version, "checkpoint": str(args.checkpoint), "bert_vocab": run.vocab == "bert",
        "tokens": official_tokens(tokenizer, tokenizer.vocab_size),
        "input_ids": ids, "input_mask": mask, "t": t, "z0_noise": z0_noise, "epsilon": epsilon,
        "absorb_draws": absorb_draws, "absorb_rate": float(getattr(diffusion, "denoise_rate", 0.0))
        if getattr(diffusion, "denoise", False) else 0.0,
        "alphas_cumprod": torch.from_numpy(numpy.asarray(diffusion.alphas_cumprod, dtype=numpy.float64)),
        "start_x_t": x_start_state, "start_t": last, "start_x0_hat": start_x0_hat, **losses,
        "mean_embed_regulariser": mean_embed_regulariser(diffusion, model),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dump, args.out)
    print(f"official {args.version}: dumped {batch} examples (seq_len {length}, t {t.tolist()}) to {args.out}")


if __name__ == "__main__":
    main()
