"""Where decoding and training time goes, measured in one run on this machine (weights are random:
cost does not depend on them). Prints ratios new vs old:

* canvas: the target canvas a·|x|+b (this plugin) vs DiffuSeq's fixed 128-token sequence;
* layout: --encode-source-once (source keys/values computed once, reused by every step and MBR
  candidate) vs the paper's single stack that re-encodes the source at every step;
* MBR: wall time of 10 candidates vs 1 (candidates batched into one forward per step);
* length mixes: time per 1,000 sentences for short and long sentences, for training and decoding.

    python benchmarks/cost_model.py [--sentences 200] [--steps 20] [--json out.json]
"""
import argparse
import json
import random
import time

import torch

from diffuseq_fairseq.generator import DecodingOptions, DiffuSeqGenerator
from diffuseq_fairseq.network import DiffuSeqNetwork, NetworkConfig

PAD, BOS, EOS, VOCAB = 1, 0, 2, 8000
TINY = dict(encoder_layers=4, encoder_embed_dim=256, encoder_attention_heads=4, encoder_ffn_embed_dim=1024)


def sources(count: int, low: int, high: int, rng: random.Random):
    lengths = [rng.randint(low, high) for _ in range(count)]
    tokens = torch.full((count, max(lengths) + 1), PAD)
    for i, n in enumerate(lengths):
        tokens[i, :n] = torch.tensor([rng.randrange(4, VOCAB) for _ in range(n)])
        tokens[i, n] = EOS
    return tokens, torch.tensor(lengths) + 1


def canvas_rule(paper: bool):
    if paper:  # DiffuSeq: x and y share a fixed 128-token sequence
        return lambda src_lengths: int((128 - src_lengths).max())
    return lambda src_lengths: int(torch.ceil(1.5 * src_lengths.double() + 5).max())


def decode_seconds(network, tokens, lengths, candidates, steps, paper_canvas, batch=100):
    generator = DiffuSeqGenerator(DecodingOptions(
        special_ids=(PAD, BOS, EOS), sampler="dpm-solver++", num_steps=steps, total_steps=network.cfg.num_timesteps,
        num_candidates=candidates, base_seed=1,
        canvas_length=lambda lengths: torch.tensor([canvas_rule(paper_canvas)(n.view(1)) for n in lengths]),
    ))
    start = time.perf_counter()
    for i in range(0, tokens.size(0), batch):
        src, src_len = tokens[i : i + batch], lengths[i : i + batch]
        src = src[:, : int(src_len.max())]
        generator.generate([network], {"id": torch.arange(i, i + src.size(0)), "net_input": {"src_tokens": src, "src_lengths": src_len}})
    return time.perf_counter() - start


def train_seconds(network, tokens, lengths, batch=100):
    """Forward + backward time of the training loss over all sentences (target = source)."""
    network.train()
    start = time.perf_counter()
    for i in range(0, tokens.size(0), batch):
        src_len = lengths[i : i + batch]
        src = tokens[i : i + batch, : int(src_len.max())]
        t = torch.randint(0, network.cfg.num_timesteps, (src.size(0),))
        canvas = int(torch.ceil(1.5 * src_len.double() + 5).max())
        target = torch.nn.functional.pad(src, (0, canvas - src.size(1)), value=PAD)
        terms = network.training_terms(src, src_len, target, t)
        (terms["mse"] + terms["rounding_nll"]).sum().backward()
    network.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.manual_seed(0)
    rng = random.Random(0)
    mixes = {"short (5-10 tokens)": sources(args.sentences, 5, 10, rng), "long (25-35 tokens)": sources(args.sentences, 25, 35, rng)}
    paper_net = DiffuSeqNetwork(NetworkConfig(**TINY), VOCAB, PAD)
    cached_net = DiffuSeqNetwork(NetworkConfig(**TINY, encode_source_once=True), VOCAB, PAD)
    cached_net.load_state_dict(paper_net.state_dict())
    per_1000 = lambda seconds: 1000 * seconds / args.sentences  # noqa: E731
    report = {"threads": torch.get_num_threads(), "sentences": args.sentences, "steps": args.steps, "decode": {}, "train": {}}
    for mix, (tokens, lengths) in mixes.items():
        with torch.no_grad():
            row = {
                "paper canvas 128, paper layout, S=1": per_1000(decode_seconds(paper_net, tokens, lengths, 1, args.steps, True)),
                "a|x|+b canvas, paper layout, S=1": per_1000(decode_seconds(paper_net, tokens, lengths, 1, args.steps, False)),
                "a|x|+b canvas, encode-source-once, S=1": per_1000(decode_seconds(cached_net, tokens, lengths, 1, args.steps, False)),
                "a|x|+b canvas, paper layout, S=10": per_1000(decode_seconds(paper_net, tokens, lengths, 10, args.steps, False)),
                "a|x|+b canvas, encode-source-once, S=10": per_1000(decode_seconds(cached_net, tokens, lengths, 10, args.steps, False)),
            }
        report["decode"][mix] = row
        report["train"][mix] = {"paper layout": per_1000(train_seconds(paper_net, tokens, lengths)),
                                "encode-source-once": per_1000(train_seconds(cached_net, tokens, lengths))}
        print(f"\n{mix}: seconds per 1,000 sentences ({args.steps} DPM-Solver++ steps, {torch.get_num_threads()} threads)")
        for name, seconds in row.items():
            print(f"  decode {name:42s} {seconds:8.1f}")
        for name, seconds in report["train"][mix].items():
            print(f"  train fwd+bwd {name:35s} {seconds:8.1f}")
        print(f"  ratio canvas old/new: {row['paper canvas 128, paper layout, S=1'] / row['a|x|+b canvas, paper layout, S=1']:.2f}x")
        print(f"  ratio layout paper/encode-source-once (S=1): {row['a|x|+b canvas, paper layout, S=1'] / row['a|x|+b canvas, encode-source-once, S=1']:.2f}x, "
              f"(S=10): {row['a|x|+b canvas, paper layout, S=10'] / row['a|x|+b canvas, encode-source-once, S=10']:.2f}x")
        print(f"  ratio MBR S=10 / S=1: paper layout {row['a|x|+b canvas, paper layout, S=10'] / row['a|x|+b canvas, paper layout, S=1']:.2f}x, "
              f"encode-source-once {row['a|x|+b canvas, encode-source-once, S=10'] / row['a|x|+b canvas, encode-source-once, S=1']:.2f}x")
    short, long = (report["decode"][m]["a|x|+b canvas, paper layout, S=1"] for m in mixes)
    print(f"\nlength proportionality: decode long/short = {long / short:.2f}x, train long/short = "
          f"{report['train']['long (25-35 tokens)']['paper layout'] / report['train']['short (5-10 tokens)']['paper layout']:.2f}x "
          f"(mean lengths {float(mixes['long (25-35 tokens)'][1].float().mean()):.1f} vs {float(mixes['short (5-10 tokens)'][1].float().mean()):.1f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
