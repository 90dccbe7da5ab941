"""Per-parameter statistics of the plugin's own initialisation against official ones (issue #26).

For each converted official initialisation (an official ``model000000.pt`` after ``diffuseq-convert-official``)
the plugin builds its own model under a fairseq seed, as fairseq-train draws it; the table gives, per parameter and
averaged over the pairs, the mean, standard deviation, largest |value| and spectral norm (matrices) of both, and
marks with ``<`` a standard deviation 10 % or a largest |value| 20 % apart. Run in the plugin's venv:

    .venv/bin/python benchmarks/official/init_statistics.py --inits runs/inits/official_{1,2,3,4}/converted/checkpoint.pt --seeds 103-106
"""
import argparse
import statistics
from pathlib import Path

import torch

import lockstep_plugin
from free_runs import seed_list

COLUMNS = ("mean", "std", "max|x|", "spectral")


def parameter_statistics(model) -> dict:
    rows = {}
    for name, weight in model.named_parameters():
        values = weight.detach().float()
        flat = values.flatten()
        spectral = torch.linalg.matrix_norm(values, ord=2).item() if values.dim() == 2 else float("nan")
        rows[name] = (flat.mean().item(), flat.std().item() if flat.numel() > 1 else 0.0, flat.abs().max().item(), spectral)
    return rows


def table(official: list, plugin: list) -> str:
    def mean_of(runs, name, column):
        return statistics.fmean(run[name][column] for run in runs)

    lines = [f"{'parameter':<48} " + " ".join(f"{c + ' official/plugin':>24}" for c in COLUMNS)]
    for name in official[0]:
        pairs = [(mean_of(official, name, c), mean_of(plugin, name, c)) for c in range(len(COLUMNS))]
        (std_o, std_p), (max_o, max_p) = pairs[1], pairs[2]
        apart = abs(std_o - std_p) > 0.1 * max(std_o, 1e-8) or abs(max_o - max_p) > 0.2 * max(max_o, 1e-8)
        lines.append(f"{name:<48} " + " ".join(f"{o:>11.4f}/{p:<12.4f}" for o, p in pairs) + (" <" if apart else ""))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inits", type=Path, nargs="+", required=True, help="converted official initialisations")
    parser.add_argument("--seeds", required=True, help="fairseq seeds of the plugin's own initialisations, e.g. 103-106")
    args = parser.parse_args(argv)
    seeds = seed_list(args.seeds)
    if len(seeds) != len(args.inits):
        parser.error(f"{len(args.inits)} initialisations but {len(seeds)} seeds")
    official, plugin = [], []
    for checkpoint, seed in zip(args.inits, seeds):
        trainer, _ = lockstep_plugin.build_trainer(checkpoint)
        official.append(parameter_statistics(trainer.model))
        trainer, _ = lockstep_plugin.build_trainer(checkpoint, own_init=True, seed=seed)
        plugin.append(parameter_statistics(trainer.model))
    print(table(official, plugin))


if __name__ == "__main__":
    main()
