"""Replay an official lockstep run (lockstep_official.py) through fairseq's Trainer; plugin venv.

    .venv/bin/python benchmarks/official/lockstep_plugin.py --official runs/lockstep/official \\
        --out runs/lockstep/plugin [--optimizer adam]

The official initial weights (model000000.pt) are converted by diffuseq-convert-official, whose
checkpoint config is the plugin's equivalent of the official run (optimizer, learning-rate decay,
loss over all positions, the full seq_len canvas). fairseq's own Trainer then takes, update by
update, the official batch (its tokens through the converted dictionary, split and padded as the
criterion trains on them) with the official draws (t, z0 noise and ε, drawn again from the same
seeds) handed to the criterion. Whatever differs between the two training loops (gradient
normalisation, Adam, the learning-rate schedule, the tied embedding, clipping) shows as weights
that part.

Per update it records the loss terms of both sides and the learning rate each used; at each
official snapshot, the largest and the relative distance between the plugin's weights and the
official ones, against how far the official weights moved since the initialisation. Options change
one random input at a time (the initialisation, the draws, the batches; see ``replay``).
"""
import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_gradients import fairseq_sample, split_noise  # noqa: E402
from compare_dump import fairseq_ids  # noqa: E402
from lockstep_official import draws  # noqa: E402

from diffuseq_fairseq.convert_official import convert  # noqa: E402
from diffuseq_fairseq.network import TrainingNoise  # noqa: E402


def build_trainer(checkpoint: Path, optimizer: str = None, own_init: bool = False, seed: int = None,
                  dropout: float = None, schedule_updates: int = None):
    """(trainer, dictionary) from the converted checkpoint's own training config, on the CPU;
    ``optimizer`` "adam" swaps its optimizer for fairseq's Adam with the same settings; ``own_init``
    keeps the plugin's initialisation (as fairseq-train draws it under the config's seed) instead of
    loading the checkpoint's weights; ``dropout`` sets its hidden and attention dropout; ``schedule_updates``
    the length of its learning-rate decay (the official run's number of updates otherwise)."""
    from fairseq import checkpoint_utils, tasks, utils
    from fairseq.trainer import Trainer
    from omegaconf import OmegaConf, open_dict

    state = checkpoint_utils.load_checkpoint_to_cpu(str(checkpoint))
    cfg = state["cfg"]
    if optimizer == "adam":
        with open_dict(cfg):
            cfg.optimizer = OmegaConf.create({**OmegaConf.to_container(cfg.optimizer), "_name": "adam",
                                              "use_old_adam": False, "fp16_adam_stats": False, "tpu": False})
    cfg.common.cpu = True
    if dropout is not None:
        cfg.model.dropout = cfg.model.attention_dropout = dropout
    if schedule_updates is not None:
        cfg.lr_scheduler.total_num_update = cfg.optimization.max_update = schedule_updates
    if seed is not None:
        cfg.common.seed = seed
    cfg.task.data = str(checkpoint.parent)
    cfg.dataset.num_workers = 0
    task = tasks.setup_task(cfg.task)
    utils.set_torch_seed(cfg.common.seed)  # as fairseq-train, before it builds the model
    model = task.build_model(cfg.model)
    if not own_init:
        model.load_state_dict(state["model"], strict=True)
    criterion = task.build_criterion(cfg.criterion)
    return Trainer(cfg, task, model, criterion), task.target_dictionary


def fairseq_batches(trainer, data_bin: Path, source_lang: str, target_lang: str, batch_size: int, seed: int):
    """The training batches fairseq-train draws from ``data_bin`` under --batch-order random and --seed ``seed``
    (the converted config's task on the data-bin, whose dictionary must be the converted one)."""
    import copy

    from fairseq import tasks
    from omegaconf import open_dict

    cfg = copy.deepcopy(trainer.cfg.task)
    with open_dict(cfg):
        cfg.data, cfg.source_lang, cfg.target_lang, cfg.batch_order = str(data_bin), source_lang, target_lang, "random"
    task = tasks.setup_task(cfg)
    if [task.source_dictionary[i] for i in range(len(task.source_dictionary))] != \
            [trainer.task.source_dictionary[i] for i in range(len(trainer.task.source_dictionary))]:
        raise SystemExit(f"{data_bin}: its dictionary is not the converted one")
    task.load_dataset("train")
    iterator = task.get_batch_iterator(dataset=task.dataset("train"), max_sentences=batch_size, seed=seed, epoch=1,
                                       max_positions=None, ignore_invalid_inputs=True, num_workers=0)
    return iter(iterator.next_epoch_itr(shuffle=True))


def hand_draws(criterion, t, noise):
    """Make the criterion take the given draws (importance weights 1) on its next training call."""
    criterion.draws = lambda model, sample, canvas, width: (
        t, torch.ones_like(t, dtype=torch.float), noise, criterion._sampler(model.network, model.training))


def hand_official_draws(criterion, seed: int, official_update: dict, lengths: torch.Tensor, latent: int, steps: int,
                        check: bool = True):
    """Draw the official update's t and noises again from its seed (checked against the record unless
    ``check`` is False: another seed or batch) and hand them to the criterion, split at each row's source length."""
    t, z0_noise, epsilon = draws(seed, lengths.numel(), official_update["input_ids"].shape[1], latent, steps)
    if check and (not torch.equal(t, official_update["t"]) or not math.isclose(
            float(z0_noise.double().sum() + epsilon.double().sum()), official_update["noise_checksum"], rel_tol=1e-12)):
        raise SystemExit("the draws differ from the official run's (another torch?)")
    source_z0, target_z0 = split_noise(z0_noise, lengths)
    hand_draws(criterion, t, TrainingNoise(source_z0, target_z0, split_noise(epsilon, lengths)[1]))


def capture_terms(criterion, captured: list):
    forward = criterion.forward

    def recorded(model, sample, reduce=True):
        loss, size, logging = forward(model, sample, reduce)
        captured.append({key: float(logging[key]) / size for key in ("loss", "mse", "rounding_nll", "tT", "anchor_nll")})
        return loss, size, logging

    criterion.forward = recorded


def weights_of(official: Path, update: int, work: Path) -> dict:
    converted = convert(official / f"model{update:06d}.pt", work / f"converted_{update}")["checkpoint"]
    return torch.load(converted, weights_only=False)["model"]


def distance(plugin: dict, official: dict, start: dict) -> dict:
    """How far the plugin's parameters are from the official ones, against how far those moved."""
    gap = moved = 0.0
    worst = (0.0, "")
    for name, mine in plugin.items():
        value = official[name]
        diff = (mine.detach().double() - value.double())
        step = (value.double() - start[name].double())
        gap, moved = gap + float(diff.pow(2).sum()), moved + float(step.pow(2).sum())
        scale = float(step.abs().max())
        ratio = float(diff.abs().max()) / scale if scale else float(diff.abs().max())
        if ratio > worst[0]:
            worst = (ratio, name)
    return {"relative_l2": math.sqrt(gap) / math.sqrt(moved) if moved else math.sqrt(gap),
            "moved_l2": math.sqrt(moved), "worst_max_ratio": worst[0], "worst_parameter": worst[1]}


def replay(official: Path, out: Path, optimizer: str = "adamw", own_init: bool = False, own_draws: bool = False, draw_seed: int = None, seed: int = None,
           init_from: Path = None, batches_from: Path = None, batch_seed: int = None, langs=("de", "en"),
           dropout: float = None, schedule_updates: int = None) -> list:
    """Replay the official lockstep run in ``official``; one row per update (see the module docstring).
    ``own_init``: from the plugin's own initialisation; ``own_draws``: t and the noises drawn by the
    criterion itself (fairseq's RNG), only the batches replayed. ``draw_seed``: the official rule's draws from
    another seed; ``seed``: fairseq's --seed (its RNG, and the plugin's initialisation under ``own_init``);
    ``init_from``: another official initialisation (an official state dict with the run's training_args.json and
    vocab.json beside it); ``batches_from``: a data-bin (with the converted dictionary), whose training batches
    fairseq-train would draw under --batch-order random and --seed ``batch_seed`` replace the official ones (the
    draws then follow the official rule for their shapes); ``dropout``: train with dropout at this rate (the
    official run has none); ``schedule_updates``: decay the learning rate over this many updates instead of
    the official run's. Any of these leaves the weights uncompared."""
    out.mkdir(parents=True, exist_ok=True)
    exact = not (own_init or own_draws or draw_seed is not None or seed is not None or init_from is not None
                 or batches_from is not None or bool(dropout) or schedule_updates is not None)
    record = torch.load(official / "lockstep.pt", weights_only=False)
    snapshots = sorted(int(p.stem[5:]) for p in official.glob("model*.pt"))
    rows = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        start = weights_of(official, 0, work)
        init = convert(init_from or official / "model000000.pt", out / "converted_init")["checkpoint"]
        trainer, dictionary = build_trainer(Path(init), optimizer, own_init, seed, dropout, schedule_updates)
        official_tokens = json.loads((official / "vocab.json").read_text())
        tokens = [token for token, _ in sorted(official_tokens.items(), key=lambda item: item[1])]
        lookup = fairseq_ids(tokens, False, dictionary)
        criterion, captured = trainer.criterion, []
        capture_terms(criterion, captured)
        latent = trainer.model.network.cfg.latent_dim
        steps = trainer.model.network.cfg.num_timesteps
        batches = None
        if batches_from is not None:
            batches = fairseq_batches(trainer, batches_from, *langs,
                                      record["updates"][0]["input_ids"].shape[0], batch_seed)
        for update, official_update in enumerate(record["updates"]):
            ids, mask = official_update["input_ids"], official_update["input_mask"]
            sample, lengths = fairseq_sample(ids, mask, lookup, dictionary.pad())
            if batches is not None:
                sample = next(batches)
                lengths = sample["net_input"]["src_lengths"]
            if not own_draws:
                base = record["draw_seed"] if draw_seed is None else draw_seed
                hand_official_draws(criterion, base + update, official_update, lengths, latent, steps,
                                    check=draw_seed is None and batches is None)
            lr = trainer.get_lr()
            trainer.train_step([sample])
            row = {"update": update + 1, "official": official_update["terms"], "plugin": captured[-1],
                   "lr_official": official_update["lr"], "lr_plugin": lr}
            if exact and update + 1 in snapshots:
                row["weights"] = distance(dict(trainer.model.named_parameters()), weights_of(official, update + 1, work), start)
            rows.append(row)
            print(json.dumps(row), flush=True)
    (out / "lockstep.json").write_text(json.dumps({"optimizer": optimizer, "own_init": own_init,
                                                   "own_draws": own_draws, "draw_seed": draw_seed, "seed": seed,
                                                   "init_from": None if init_from is None else str(init_from),
                                                   "batches_from": None if batches_from is None else str(batches_from),
                                                   "batch_seed": batch_seed, "dropout": dropout,
                                                   "schedule_updates": schedule_updates,
                                                   "updates": rows}, indent=1) + "\n")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", required=True, type=Path, help="folder written by lockstep_official.py")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--optimizer", choices=("adamw", "adam"), default="adamw", help="adamw: the converted "
                        "config's (torch's AdamW, as the official code); adam: fairseq's Adam with the same settings")
    parser.add_argument("--own-init", action="store_true", help="start from the plugin's own initialisation")
    parser.add_argument("--own-draws", action="store_true", help="let the criterion draw t and the noises itself")
    parser.add_argument("--draw-seed", type=int, help="hand in the official rule's draws from this seed instead")
    parser.add_argument("--seed", type=int, help="fairseq's --seed instead of the official run's")
    parser.add_argument("--init-from", type=Path, help="start from this official initialisation instead")
    parser.add_argument("--batches-from", type=Path, help="a data-bin: train on fairseq's own batches of it instead")
    parser.add_argument("--batch-seed", type=int, default=102, help="fairseq's --seed for --batches-from")
    parser.add_argument("--langs", nargs=2, default=("de", "en"), help="source and target language of --batches-from")
    parser.add_argument("--dropout", type=float, help="train with hidden and attention dropout at this rate")
    parser.add_argument("--schedule-updates", type=int, help="decay the learning rate over this many updates")
    args = parser.parse_args(argv)
    replay(args.official, args.out, args.optimizer, args.own_init, args.own_draws,
           args.draw_seed, args.seed, args.init_from, args.batches_from, args.batch_seed, tuple(args.langs), args.dropout,
           args.schedule_updates)


if __name__ == "__main__":
    main()
