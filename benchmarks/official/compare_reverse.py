"""The plugin's reverse process against the official samplers' dump (reverse_dump.py); plugin venv.

    .venv/bin/python benchmarks/official/compare_reverse.py --dump runs/x/reverse_v1.pt \\
        --checkpoint runs/x/converted/checkpoint.pt

The converted model decodes the dump's sources with the plugin's own generator (built by the task's
``build_generator`` as fairseq-generate builds it), each row on its official canvas (seq_len less the
source), fed the official draws from outside: its per-sentence start noise is the official ε of the
target span, and inside ``diffuseq_fairseq.generator`` ``torch.randn`` hands out the official per-step
noise. A recording wrapper around the network's ``denoise`` keeps every step's x_t and x̂0.

Rows of the report, per sampler of the dump:

* v1 DDPM (all T steps): ``--sampler ddpm --round-output`` against ``p_sample_loop``; expected equal.
* v1 DDIM (``--step S``): ``--sampler ddim --diffusion-steps S --round-output`` against
  ``ddim_sample_loop``, which differs on purpose: the official loop visits
  ``range(T)[::-1][::T//S]`` (never step 0), moves to ᾱ_{t-1} whatever the gap (not DDIM for a gap
  over 1), and outputs lm_head of that state instead of x̂0. A second row runs the plugin's network and
  its DDIMSampler on the official grid with the official ᾱ_{t-1} level and output: equal, so those are
  the only differences.
* v2 DPM-Solver (S steps): ``--sampler dpm-solver++ --diffusion-steps S --rounding none`` against
  ``sample_seq2seq_dpmSolver.py``'s solver, which differs on purpose (see :mod:`official_rules`); a
  second row runs the plugin's network under the official script's rule: equal.

Exit status 1 when a row expected equal is not (words differ, or a state by over --tolerance).
"""
import argparse
import sys
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import official_rules  # noqa: E402
from compare_dump import fairseq_ids  # noqa: E402

import diffuseq_fairseq.generator as generator_module  # noqa: E402


def load_converted(checkpoint: Path):
    """(fairseq model in eval mode, task) as fairseq-generate loads the converted checkpoint."""
    from fairseq import checkpoint_utils

    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(checkpoint)], arg_overrides={"data": str(checkpoint.parent)})
    return models[0].eval(), task


class Batch(SimpleNamespace):
    """The dump's sources in fairseq ids and each row's canvas: source = official positions [0, n),
    canvas = positions [n, L)."""

    @classmethod
    def from_dump(cls, dump: dict, dictionary) -> "Batch":
        lookup = fairseq_ids(dump["tokens"], dump["bert_vocab"], dictionary)
        tokens, mask = lookup[dump["input_ids"]], dump["input_mask"]
        lengths = (mask == 0).sum(1)
        seq_len = tokens.size(1)
        canvases = seq_len - lengths
        src_tokens = torch.full((len(tokens), int(lengths.max())), dictionary.pad(), dtype=torch.long)
        for row, n in enumerate(lengths.tolist()):
            src_tokens[row, :n] = tokens[row, :n]
        inside = torch.arange(int(canvases.max())) < canvases.unsqueeze(1)
        return cls(lookup=lookup, lengths=lengths, canvases=canvases, src_tokens=src_tokens, inside=inside,
                   seq_len=seq_len)

    def target_part(self, official: torch.Tensor) -> torch.Tensor:
        """[B, L, ...] official sequence -> [B, max canvas, ...] canvas blocks, zero beyond each canvas."""
        out = official.new_zeros((official.size(0), int(self.canvases.max()), *official.shape[2:]))
        for row, (n, canvas) in enumerate(zip(self.lengths.tolist(), self.canvases.tolist())):
            out[row, :canvas] = official[row, n:n + canvas]
        return out

    def sample(self) -> dict:
        return {"id": torch.arange(len(self.src_tokens)),
                "net_input": {"src_tokens": self.src_tokens, "src_lengths": self.lengths}}


class ScriptedTorch:
    """Stands in for the ``torch`` module inside diffuseq_fairseq.generator: ``torch.randn`` hands out
    the given draws in order; everything else is torch's."""

    def __init__(self, draws):
        self.draws, self.calls = list(draws), 0

    def __getattr__(self, name):
        return getattr(torch, name)

    def randn(self, shape, generator=None, device=None, dtype=None):
        draw = self.draws[self.calls]
        if tuple(draw.shape) != tuple(shape):
            raise AssertionError(f"generator noise call {self.calls}: shape {tuple(shape)}, given {tuple(draw.shape)}")
        self.calls += 1
        return draw.to(device=device, dtype=dtype)


def decode_with_plugin(model, task, batch: Batch, options: dict, start_noise, step_noise=()):
    """The plugin generator's decode of ``batch`` with the given draws: (recorded steps, full-canvas
    output ids, hypotheses)."""
    generator = task.build_generator([model], argparse.Namespace(**options))
    generator._initial_noise = lambda sample_ids, canvases, latent: start_noise.clone()
    network, steps, outputs = model.network, [], []
    denoise, most_likely_words = network.denoise, generator_module.most_likely_words

    def recording_denoise(x, t, source, **kwargs):
        out = denoise(x, t, source, **kwargs)
        steps.append((x.clone(), t.clone(), out.clone()))
        return out

    def recording_words(states, *args, **kwargs):
        outputs.append(most_likely_words(states, *args, **kwargs))
        return outputs[-1]

    scripted = ScriptedTorch(step_noise)
    with mock.patch.object(network, "denoise", recording_denoise), \
            mock.patch.object(generator_module, "most_likely_words", recording_words), \
            mock.patch.object(generator_module, "torch", scripted):
        hypotheses = generator.generate([model], batch.sample())
    if scripted.calls != len(scripted.draws) and scripted.calls:
        raise AssertionError(f"the generator drew {scripted.calls} step noises; {len(scripted.draws)} were given")
    return steps, outputs[-1][0], [hypos[0]["tokens"][:-1] for hypos in hypotheses]


def compact(ids: torch.Tensor, canvas: int, dictionary) -> torch.Tensor:
    """A row's output words as the generator reports them: up to the first </s> of its canvas,
    without <pad> and <s>."""
    words = ids[:canvas]
    ends = (words == dictionary.eos()).nonzero()
    words = words[: int(ends[0]) if len(ends) else canvas]
    return words[(words != dictionary.pad()) & (words != dictionary.bos())]


def agreement(batch: Batch, official_ids, plugin_ids, hypotheses, dictionary) -> dict:
    """Rows whose full-canvas output ids are equal, positions equal, and rows with equal words."""
    official = batch.target_part(batch.lookup[official_ids])
    same_rows = same_words = same_positions = 0
    for row, canvas in enumerate(batch.canvases.tolist()):
        equal = official[row, :canvas] == plugin_ids[row, :canvas]
        same_positions += int(equal.sum())
        same_rows += bool(equal.all())
        if hypotheses is not None:
            same_words += torch.equal(compact(official[row], canvas, dictionary), hypotheses[row])
    return {"rows": len(batch.canvases), "same_rows": same_rows, "same_words": same_words if hypotheses else None,
            "same_positions": same_positions, "positions": int(batch.canvases.sum())}


def state_gaps(batch: Batch, official: dict, steps) -> dict:
    """Largest |official - plugin| of the model's input x_t and output x̂0 over every step (inside the
    canvases), and at the last step."""
    if len(steps) != len(official["x"]):
        raise AssertionError(f"{len(steps)} plugin steps against {len(official['x'])} official ones")
    inside = batch.inside.unsqueeze(-1)
    gaps = {"x_t": 0.0, "x0_hat": 0.0}
    for i, (x, _, out) in enumerate(steps):
        for name, ours, theirs in (("x_t", x, official["x"][i]), ("x0_hat", out, official["x0_hat"][i])):
            gap = ((batch.target_part(theirs) - ours).abs() * inside).max()
            gaps[name] = max(gaps[name], float(gap))
            gaps[f"{name} last step"] = float(gap)
    return gaps


def compare_ddpm(model, task, dump, batch) -> list:
    official = dump["samplers"]["ddpm"]
    options = dict(sampler="ddpm", diffusion_steps=len(dump["alphas_cumprod"]), round_output=True, rounding="l2",
                   output_vocab="all", mbr_candidates=1, stop_when_stable=0)
    step_noise = [batch.target_part(draw) for draw in dump["step_noise"][: len(official["x"]) - 1]]
    steps, ids, hypotheses = decode_with_plugin(model, task, batch, options, batch.target_part(dump["start_noise"]),
                                                step_noise)
    gaps = state_gaps(batch, official, steps)
    network = model.network
    rounded = network.word_embeddings()[generator_module.nearest_embedding_ids(steps[-1][2], network.word_embeddings())]
    gaps["final x (rounded x̂0)"] = float(((batch.target_part(official["final"]) - rounded).abs()
                                           * batch.inside.unsqueeze(-1)).max())
    return [("DDPM, all steps: generator --sampler ddpm --round-output", "p_sample_loop", True,
             agreement(batch, official["output_ids"], ids, hypotheses, task.target_dictionary), gaps)]


def compare_ddim(model, task, dump, batch) -> list:
    official, dictionary = dump["samplers"]["ddim"], task.target_dictionary
    total, gap = len(dump["alphas_cumprod"]), official["gap"]
    options = dict(sampler="ddim", diffusion_steps=len(official["x"]), ddim_eta=0.0, round_output=True,
                   rounding="l2", output_vocab="all", mbr_candidates=1, stop_when_stable=0)
    _, ids, hypotheses = decode_with_plugin(model, task, batch, options, batch.target_part(dump["start_noise"]))
    rows = [(f"DDIM, {len(official['x'])} steps: generator --sampler ddim (exact DDIM, its grid)", "ddim_sample_loop",
             False, agreement(batch, official["output_ids"], ids, hypotheses, dictionary), {})]
    grid = list(range(total))[::-1][::gap]
    steps, final = official_rules.ddim_official_grid(model.network, batch, batch.target_part(dump["start_noise"]), grid)
    ids = generator_module.most_likely_words(final, model.network.word_embeddings(), model.network.output_bias)[0]
    rows.append((f"DDIM: plugin network + DDIMSampler on the official grid, ᾱ_(t-1), output", "ddim_sample_loop",
                 True, agreement(batch, official["output_ids"], ids, None, dictionary), state_gaps(batch, official, steps)))
    return rows


def compare_dpm_solver(model, task, dump, batch) -> list:
    official, dictionary = dump["samplers"]["dpm-solver++"], task.target_dictionary
    solver_steps = official["steps"]
    options = dict(sampler="dpm-solver++", diffusion_steps=solver_steps, rounding="none", round_output=False,
                   output_vocab="all", mbr_candidates=1, stop_when_stable=0)
    _, ids, hypotheses = decode_with_plugin(model, task, batch, options, batch.target_part(dump["start_noise"]))
    rows = [(f"DPM-Solver++, {solver_steps} steps: generator --sampler dpm-solver++", "DPM_Solver.sample", False,
             agreement(batch, official["output_ids"], ids, hypotheses, dictionary), {})]
    steps, final = official_rules.dpm_solver_official_rule(model.network, batch, batch.target_part(dump["start_noise"]),
                                                           dump["betas"], solver_steps)
    ids = generator_module.most_likely_words(final, model.network.word_embeddings(), model.network.output_bias)[0]
    rows.append(("DPM-Solver: plugin network + the official script's rule", "DPM_Solver.sample", True,
                 agreement(batch, official["output_ids"], ids, None, dictionary), state_gaps(batch, official, steps)))
    return rows


COMPARISONS = {"ddpm": compare_ddpm, "ddim": compare_ddim, "dpm-solver++": compare_dpm_solver}


def compare(dump: dict, model, task) -> list:
    """(plugin side, official side, expected equal, agreement, state gaps) rows for the dump's samplers."""
    batch = Batch.from_dump(dump, task.target_dictionary)
    with torch.no_grad():
        return [row for name in dump["samplers"] for row in COMPARISONS[name](model, task, dump, batch)]


def failures(rows, tolerance: float) -> list:
    """The rows expected equal that are not: words differ, or a state by over ``tolerance``."""
    return [plugin for plugin, _, exact, agree, gaps in rows
            if exact and (agree["same_rows"] < agree["rows"] or max(gaps.values(), default=0.0) > tolerance)]


def report(dump: dict, rows) -> str:
    lines = [f"official {dump['version']} samplers ({dump['checkpoint']}): {dump['input_ids'].shape[0]} sentences, "
             f"seq_len {dump['input_ids'].shape[1]}, T {len(dump['alphas_cumprod'])}"]
    for plugin, official, exact, agree, gaps in rows:
        words = "" if agree["same_words"] is None else f", hypotheses equal {agree['same_words']}/{agree['rows']}"
        lines.append(f"- {plugin} vs official {official} ({'expected equal' if exact else 'differs by design'}):")
        lines.append(f"    outputs equal {agree['same_rows']}/{agree['rows']} rows{words}, "
                     f"{agree['same_positions']}/{agree['positions']} positions "
                     f"({100 * agree['same_positions'] / agree['positions']:.1f} %)")
        if gaps:
            lines.append("    max |official - plugin|: " + ", ".join(f"{name} {gap:.2e}" for name, gap in gaps.items()))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dump", required=True, type=Path, help="written by reverse_dump.py (official venv)")
    parser.add_argument("--checkpoint", required=True, type=Path, help="written by diffuseq-convert-official")
    parser.add_argument("--tolerance", type=float, default=1e-3, help="largest state difference of an equal row (see the module docstring)")
    args = parser.parse_args(argv)
    dump = torch.load(args.dump, weights_only=True)
    model, task = load_converted(args.checkpoint)
    rows = compare(dump, model, task)
    print(report(dump, rows))
    failed = failures(rows, args.tolerance)
    for plugin in failed:
        print(f"NOT EQUAL: {plugin}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
