"""Recompute an official dump (dump_tensors.py) with the converted checkpoint; run in the plugin's venv.

    .venv/bin/python benchmarks/official/compare_dump.py --dump runs/official_v1/dump.pt \\
        --checkpoint runs/official_v1_converted/checkpoint.pt

For every example of the dump, the converted model (loaded by fairseq from the checkpoint that
diffuseq-convert-official wrote) is given the official tokens (through the converted dictionary),
step t and x_t, and, for the loss, the official noise (``TrainingNoise``: the z0 noise of the
source and target spans, the q_sample ε and v2's discrete-noise draws), in eval mode, with the paper's options: loss over all
positions, the full seq_len sequence, the official token layout. Prints, per quantity, the largest
absolute difference from the official value, and exits 1 if one exceeds --tolerance.
"""
import argparse
import sys
from pathlib import Path

import torch

from diffuseq_fairseq.network import TrainingNoise

# Official term -> the plugin's training_terms key.
LOSS_TERMS = {"mse": "mse", "decoder_nll": "rounding_nll", "tT": "tT", "nll": "anchor_nll"}
SPECIALS = {False: ("[START]", "[PAD]", "[END]", "[UNK]"), True: ("[CLS]", "[PAD]", "[SEP]", "[UNK]")}


def load_converted(checkpoint: Path, dropout: float = None):
    """(network in eval mode, dictionary) as fairseq-generate loads the converted checkpoint;
    ``dropout`` sets its hidden and attention dropout."""
    from fairseq import checkpoint_utils

    rates = {} if dropout is None else {"dropout": dropout, "attention_dropout": dropout}
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(checkpoint)], arg_overrides={"data": str(checkpoint.parent), **rates})
    return models[0].network.eval(), task.target_dictionary


def fairseq_ids(tokens, bert: bool, dictionary) -> torch.Tensor:
    """lookup[official id] = fairseq id, from the official tokens and the converted dictionary."""
    specials = dict(zip(SPECIALS[bert], (dictionary.bos(), dictionary.pad(), dictionary.eos(), dictionary.unk())))
    lookup = []
    for token in tokens:
        index = specials.get(token, dictionary.index(token))
        if index == dictionary.unk() and token not in specials:
            raise SystemExit(f"official token {token!r} is not in the converted dictionary")
        lookup.append(index)
    return torch.tensor(lookup)


def denoise_sequence(network, source_tokens, x_t, t):
    """x̂0 of the whole official sequence ([L, d]): source span conditioned on x_t's source part."""
    length = source_tokens.numel()
    source = network.encode_source(source_tokens[None], torch.tensor([length]))._replace(embeddings=x_t[None, :length])
    source_x0, target_x0 = network.denoise(x_t[None, length:], t.view(1), source, with_source=True)
    return torch.cat([source_x0, target_x0], dim=1)[0]


def compare(dump: dict, network, dictionary) -> dict:
    """Largest |official - plugin| of each quantity over the dump's examples, and max |official|."""
    if network.cfg.absorb_rate != dump["absorb_rate"]:
        raise SystemExit(f"the converted model's absorb rate {network.cfg.absorb_rate} is not the official "
                         f"denoise_rate {dump['absorb_rate']}")
    lookup = fairseq_ids(dump["tokens"], dump["bert_vocab"], dictionary)
    plugin_alphas = network.diffusion.alphas_cumprod
    gaps = {"alphas_cumprod": ((plugin_alphas - dump["alphas_cumprod"]).abs().max(), dump["alphas_cumprod"].abs().max())}

    def record(name, official, ours):
        gap, scale = (official.double() - ours.double()).abs().max(), official.abs().max()
        old_gap, old_scale = gaps.get(name, (gap, scale))
        gaps[name] = (max(gap, old_gap), max(scale, old_scale))

    for row in range(dump["input_ids"].shape[0]):
        tokens = lookup[dump["input_ids"][row]]
        length = int((dump["input_mask"][row] == 0).sum())
        source, target, t = tokens[:length], tokens[length:], dump["t"][row]
        record("x0_hat, x_t of the loss", dump["x0_hat"][row], denoise_sequence(network, source, dump["x_t"][row], t))
        record("x0_hat, sampler start at T-1", dump["start_x0_hat"][row],
               denoise_sequence(network, source, dump["start_x_t"][row], dump["start_t"][row]))
        noise = TrainingNoise(dump["z0_noise"][row, None, :length], dump["z0_noise"][row, None, length:],
                              dump["epsilon"][row, None, length:], absorb=dump["absorb_draws"][row, None, length:])
        terms = network.training_terms(source[None], torch.tensor([length]), target[None], t.view(1),
                                       loss_positions="all", noise=noise)
        for official, ours in LOSS_TERMS.items():
            record(official, dump[official][row], terms[ours][0])
        ours = terms["mse"] + terms["rounding_nll"] + terms["tT"] + dump["mean_embed_regulariser"]
        record("loss = mse + decoder_nll + tT", dump["loss"][row], ours)
    return {name: (float(gap), float(scale)) for name, (gap, scale) in gaps.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dump", required=True, type=Path, help="written by dump_tensors.py (official venv)")
    parser.add_argument("--checkpoint", required=True, type=Path, help="written by diffuseq-convert-official")
    parser.add_argument("--tolerance", type=float, default=1e-5)
    args = parser.parse_args(argv)
    dump = torch.load(args.dump, weights_only=True)
    network, dictionary = load_converted(args.checkpoint)
    with torch.no_grad():
        gaps = compare(dump, network, dictionary)
    print(f"official {dump['version']} ({dump['checkpoint']}) against {args.checkpoint}: "
          f"{dump['input_ids'].shape[0]} examples, seq_len {dump['input_ids'].shape[1]}, t {dump['t'].tolist()}")
    print(f"{'quantity':<32} {'max |official - plugin|':>24} {'max |official|':>15}")
    for name, (gap, scale) in gaps.items():
        print(f"{name:<32} {gap:>24.3e} {scale:>15.4g}")
    if dump["mean_embed_regulariser"]:
        print(f"(the official v2 loss also holds reg_rate·‖mean_embed‖ = {dump['mean_embed_regulariser']:.4g}, which "
              "the plugin has no term for; added to the plugin's sum above)")
    worst = max(gap for gap, _ in gaps.values())
    print(f"largest difference {worst:.3e} ({'within' if worst <= args.tolerance else 'ABOVE'} {args.tolerance:g})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
