"""Where two diffuseq checkpoints' losses differ: the validation loss split by position kind and by step.

    .venv/bin/python benchmarks/official/loss_by_position.py data-bin/multi30k_de_en \\
        official=runs/x/official_converted/checkpoint.pt plugin=runs/x/plugin_padded/checkpoint_ema.pt

Each checkpoint (a plugin checkpoint, or an official one after diffuseq-convert-official) is scored with
its own saved task and loss options on the same sentences and the same draws: fairseq-validate's, t and
every noise from a generator seeded by the sentence id. The mse (x̂0 against z0, per position, averaged
over the latent dimensions) is reported for the source positions, the target's words and the target
canvas's padding, then the x̂0 NLL of the target words and of the padding, over all steps and over
quarters of the steps t.
"""
import argparse
from pathlib import Path

import torch
from fairseq import checkpoint_utils, tasks, utils

KINDS = ("source mse", "word mse", "pad mse", "word NLL", "pad NLL")


def load(path: Path, data_bin: Path, langs: tuple):
    """The model in eval mode, its saved task (on ``data_bin`` with its languages: a converted official
    checkpoint names its own, src and tgt) and its saved config."""
    overrides = {"data": str(data_bin), "source_lang": langs[0], "target_lang": langs[1]}
    models, cfg = checkpoint_utils.load_model_ensemble([str(path)], arg_overrides=overrides)
    return models[0].eval(), tasks.setup_task(cfg.task), cfg


@torch.no_grad()
def position_losses(model, task, criterion, split: str, sentences: int, batch_size: int) -> dict:
    """{kind: (per-position values [N], their steps t [N])} over the first ``sentences`` of ``split``, on the
    canvas and the seeded validation draws of ``criterion`` (the checkpoint's, in eval mode)."""
    network, dataset = model.network, task.datasets[split]
    pad = task.target_dictionary.pad()
    values = {kind: ([], []) for kind in KINDS}
    count = min(sentences, len(dataset))
    for start in range(0, count, batch_size):
        sample = dataset.collater([dataset[i] for i in range(start, min(start + batch_size, count))])
        src_tokens, src_lengths = sample["net_input"]["src_tokens"], sample["net_input"]["src_lengths"]
        target, canvas, target_mask = criterion.canvas(model, sample)
        t, _, noise, _ = criterion.draws(model, sample, canvas, target.size(1))
        corruption = network.corrupt(src_tokens, src_lengths, target, t, noise, target_mask)
        src_pred, tgt_pred = network.predict(corruption, t, 0.0, noise.self_condition)
        at_zero = (t == 0).view(-1, 1, 1)
        src_goal = torch.where(at_zero, network.embed(src_tokens), corruption.source.embeddings)
        tgt_goal = torch.where(at_zero, corruption.clean, corruption.z0)
        src_mse = (src_pred.float() - src_goal.float()).pow(2).mean(-1)
        tgt_mse = (tgt_pred.float() - tgt_goal.float()).pow(2).mean(-1)
        nll = network.token_losses(tgt_pred, target)[0]
        words, pads = target.ne(pad) & target_mask, target.eq(pad) & target_mask
        steps_src, steps_tgt = t.view(-1, 1).expand_as(src_tokens), t.view(-1, 1).expand_as(target)
        for kind, value, mask, steps in (("source mse", src_mse, src_tokens.ne(pad), steps_src),
                                         ("word mse", tgt_mse, words, steps_tgt), ("pad mse", tgt_mse, pads, steps_tgt),
                                         ("word NLL", nll, words, steps_tgt), ("pad NLL", nll, pads, steps_tgt)):
            values[kind][0].append(value[mask].float())
            values[kind][1].append(steps[mask])
    return {kind: (torch.cat(v), torch.cat(s)) for kind, (v, s) in values.items()}


def table(results: dict, steps: int) -> str:
    bounds = [(0, steps)] + [(q * steps // 4, (q + 1) * steps // 4) for q in range(4)]
    lines = ["| checkpoint | steps t | " + " | ".join(KINDS) + " |", "|---" * (len(KINDS) + 2) + "|"]
    for (low, high) in bounds:
        for name, losses in results.items():
            cells = []
            for kind in KINDS:
                value, t = losses[kind]
                chosen = value[(t >= low) & (t < high)]
                cells.append(f"{chosen.mean():.4f}" if chosen.numel() else "-")
            lines.append(f"| {name} | {low}–{high - 1} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_bin", type=Path)
    parser.add_argument("checkpoints", nargs="+", metavar="NAME=CHECKPOINT")
    parser.add_argument("--split", default="valid")
    parser.add_argument("--sentences", type=int, default=1014, help="the first N of the split")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--source-lang", default="de")
    parser.add_argument("--target-lang", default="en")
    parser.add_argument("--user-dir", type=Path, default=Path(__file__).resolve().parents[2] / "diffuseq_fairseq")
    args = parser.parse_args(argv)
    utils.import_user_module(argparse.Namespace(user_dir=str(args.user_dir)))
    results, steps = {}, None
    for item in args.checkpoints:
        name, sep, path = item.partition("=")
        if not sep:
            parser.error(f"{item!r}: give NAME=CHECKPOINT")
        model, task, cfg = load(Path(path), args.data_bin, (args.source_lang, args.target_lang))
        task.load_dataset(args.split)
        steps = model.network.cfg.num_timesteps
        results[name] = position_losses(model, task, task.build_criterion(cfg.criterion), args.split,
                                        args.sentences, args.batch_size)
    print(f"# {args.data_bin} {args.split}, first {args.sentences} sentences; mean per position\n")
    print(table(results, steps))


if __name__ == "__main__":
    main()
