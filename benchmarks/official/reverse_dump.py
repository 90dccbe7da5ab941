"""Run the official DiffuSeq samplers with given noise and dump every step; official venv.

    .official-venv/bin/python benchmarks/official/reverse_dump.py --version v1 \\
        --checkpoint runs/official_v1/ema_0.9999_000006.pt --out runs/official_v1/reverse_v1.pt

Loads the official model as ``sample_seq2seq.py`` does (official_batch.load_batch) and the first
``--examples`` pairs of the run's test split through the official data pipeline. The start state is
the official one, ``x_T = where(mask == 0, Emb(ids), ε)``, with ε drawn here from ``--seed``;
``compare_reverse.py`` (plugin venv) gives the plugin the same draws.

* ``--version v1``: ancestral DDPM over all T steps (``p_sample_loop``, rounding at every step,
  ``clamp_step=0``, ``clamp_first=True``, ``clip_denoised=False``, no top-p: the options
  ``sample_seq2seq.py`` passes) and the DDIM path ``--step S`` takes (``ddim_sample_loop``,
  ``gap = T // S``). Their only random call is ``torch.randn_like`` once per step; it is replaced,
  for the call only, by a function handing out the per-step noise drawn here (``step_noise[i]``
  at the i-th step, t = T-1-i).
* ``--version v2``: ``sample_seq2seq_dpmSolver.py``'s solver (``DPM_Solver`` of
  ``dpm_solver_pytorch.py``, dpmsolver++, multistep, order 2, time_uniform, x_start model, no
  rounding), run on the checkpoint through v2's model class (a v1 checkpoint without
  ``--learned_mean_embed`` loads unchanged). Its only randomness is the start noise. The script
  wraps the call in ``torch.cuda.amp.autocast()``, which does nothing without CUDA; here the solver
  runs in float32, as that script does on a CPU.

For each sampler the dump holds every model call (input x, the model's time input, output x̂0), the
final state and the output ids (argmax ``get_logits`` over the whole sequence; the official output
is its part after the source).
"""
import argparse
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_batch import add_batch_options, dump_header, load_batch  # noqa: E402
from official_setup import ModuleHolder  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", choices=("v1", "v2"), default="v1",
                        help="v1: DDPM and DDIM of the paper's code; v2: DiffuSeq-v2's DPM-Solver")
    add_batch_options(parser, seed=11)
    parser.add_argument("--ddim-steps", type=int, default=10, help="v1: the official --step S < T (DDIM path)")
    parser.add_argument("--solver-steps", type=int, default=10, help="v2: DPM-Solver steps")
    return parser.parse_args(argv)


class NoiseQueue:
    """Stands in for ``torch.randn_like`` during one official sampler call: hands out the given
    per-step draws in order and counts the calls."""

    def __init__(self, draws):
        self.draws, self.calls = list(draws), 0

    def __call__(self, like, *args, **kwargs):
        draw = self.draws[self.calls]
        if draw.shape != like.shape:
            raise AssertionError(f"randn_like call {self.calls} of shape {tuple(like.shape)}, expected {tuple(draw.shape)}")
        self.calls += 1
        return draw.clone()


def with_noise(draws, run):
    """run() with torch.randn_like handing out ``draws``; returns (its result, randn_like calls)."""
    import torch

    queue, randn_like = NoiseQueue(draws), torch.randn_like
    torch.randn_like = queue
    try:
        return run(), queue.calls
    finally:
        torch.randn_like = randn_like


def record(holder: ModuleHolder, final, logits, randn_calls: int) -> dict:
    import torch

    x, t, out = (torch.stack(column) for column in zip(*holder.calls))
    return {"x": x, "model_time": t, "x0_hat": out, "final": final, "output_ids": logits.argmax(-1),
            "randn_calls": randn_calls}


def v1_samplers(model, diffusion, run, x_start, x_noised, mask3, step_noise, ddim_steps: int) -> dict:
    """DDPM (every step) and DDIM (gap T // ddim_steps) as sample_seq2seq.py calls them."""
    import torch
    from diffuseq.rounding import denoised_fn_round

    model_emb = torch.nn.Embedding(model.word_embedding.weight.shape[0], run.hidden_dim,
                                   _weight=model.word_embedding.weight.clone()).eval().requires_grad_(False)
    common = dict(noise=x_noised, clip_denoised=False, denoised_fn=partial(denoised_fn_round, run, model_emb),
                  model_kwargs={}, top_p=-1, clamp_step=0, clamp_first=True, mask=mask3, x_start=x_start)
    steps = diffusion.num_timesteps
    results = {}
    for name, loop, gap in (("ddpm", diffusion.p_sample_loop, 1),
                            ("ddim", diffusion.ddim_sample_loop, steps // ddim_steps)):
        holder = ModuleHolder(model)
        samples, calls = with_noise(step_noise, lambda: loop(holder, tuple(x_start.shape), gap=gap, **common))
        results[name] = {**record(holder, samples[-1], model.get_logits(samples[-1]), calls), "gap": gap}
    return results


def v2_solver(model, diffusion, x_start, x_noised, mask3, solver_steps: int) -> dict:
    """sample_seq2seq_dpmSolver.py's solver and settings."""
    import torch
    from dpm_solver_pytorch import DPM_Solver, NoiseScheduleVP, model_wrapper

    if getattr(model, "mean_embed", None) is not None:
        raise SystemExit("the official DPM-Solver script ignores --learned_mean_embed: compare a model without it")
    schedule = NoiseScheduleVP(schedule="discrete", betas=torch.from_numpy(diffusion.betas))
    holder = ModuleHolder(model)
    model_fn = model_wrapper(holder, schedule, model_type="x_start", model_kwargs={}, guidance_type="uncond")
    solver = DPM_Solver(model_fn, schedule, algorithm_type="dpmsolver++")
    final = solver.sample(x_noised, steps=solver_steps, order=2, skip_type="time_uniform", method="multistep",
                          input_ids_mask=mask3, x_start=x_start)
    return {"dpm-solver++": {**record(holder, final, model.get_logits(final), 0), "steps": solver_steps}}


def main(argv=None):
    args = parse_args(argv)
    batch = load_batch(args, args.version)
    import numpy
    import torch

    model, diffusion, ids = batch.model, batch.diffusion, batch.ids
    generator = torch.Generator().manual_seed(args.seed)
    steps = diffusion.num_timesteps
    with torch.no_grad():
        x_start = model.get_embeds(ids)
        start_noise = torch.randn(x_start.shape, generator=generator)
        step_noise = torch.randn((steps, *x_start.shape), generator=generator)
        mask3 = torch.broadcast_to(batch.mask.unsqueeze(-1), x_start.shape)
        x_noised = torch.where(mask3 == 0, x_start, start_noise)
        if args.version == "v1":
            samplers = v1_samplers(model, diffusion, batch.run, x_start, x_noised, mask3, step_noise, args.ddim_steps)
        else:
            samplers = v2_solver(model, diffusion, x_start, x_noised, mask3, args.solver_steps)
    dump = {
        **dump_header(args, batch),
        "betas": torch.from_numpy(numpy.asarray(diffusion.betas, dtype=numpy.float64)),
        "start_noise": start_noise, "step_noise": step_noise if args.version == "v1" else None,
        "samplers": samplers,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(dump, args.out)
    calls = ", ".join(f"{name}: {len(result['x'])} model calls" for name, result in samplers.items())
    print(f"official {args.version} samplers on {ids.shape[0]} examples (seq_len {ids.shape[1]}, T {steps}): {calls}; "
          f"dumped to {args.out}")


if __name__ == "__main__":
    main()
