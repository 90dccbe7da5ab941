"""Where along the chain a DiffuSeq model has learned something: x̂0 word accuracy by step t.

For the first N pairs of a split, noises each target to x_t at several steps t and prints, per t:
- the model's accuracy: nearest word embedding of x̂0 = denoise(x_t) equals the target word;
- the noisy input's own accuracy: the nearest word embedding of x_t itself, no model at all;
- the unigram baseline: always the most frequent target word.
Over the target's words only (the canvas padding is left out). Where the input alone is already
right, the step teaches the model nothing about the source; where both are near the unigram
baseline, the model has not yet learned to translate (at t = T it must, from the source alone).

    python benchmarks/denoise_by_step.py --data-bin data-bin/multi30k_de_en --source-lang de \\
        --target-lang en --path runs/compare_multi30k_v2/ckpt_diffuseq/checkpoint_last.pt
"""
import argparse
from collections import Counter

import torch

import diffuseq_fairseq  # noqa: F401  (registers the task and model, allowlists checkpoint globals)
from diffuseq_fairseq.diffusion import nearest_embedding_ids
from fairseq import checkpoint_utils


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-bin", required=True)
    parser.add_argument("--source-lang", required=True)
    parser.add_argument("--target-lang", required=True)
    parser.add_argument("--path", required=True, help="DiffuSeq checkpoint")
    parser.add_argument("--subset", default="valid")
    parser.add_argument("--sentences", type=int, default=200, help="first N pairs of the subset")
    parser.add_argument("--fractions", default="0,0.1,0.3,0.5,0.7,0.8,0.9,0.95,1",
                        help="steps as fractions of T (1 = the last step, T-1)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    overrides = {"data": args.data_bin, "source_lang": args.source_lang, "target_lang": args.target_lang}
    models, _, task = checkpoint_utils.load_model_ensemble_and_task([args.path], arg_overrides=overrides)
    network = models[0].network.eval()
    task.load_dataset(args.subset)
    dataset = task.dataset(args.subset)
    count = min(args.sentences, len(dataset))
    batch = dataset.collater([dataset[i] for i in range(count)])
    src, lengths, target = batch["net_input"]["src_tokens"], batch["net_input"]["src_lengths"], batch["target"]
    pad = task.target_dictionary.pad()
    canvas = task.canvas_length(lengths, target.ne(pad).sum(1))
    target = torch.nn.functional.pad(target, (0, canvas - target.size(1)), value=pad)
    words = target.ne(pad)
    most_frequent, _ = Counter(target[words].tolist()).most_common(1)[0]

    def accuracy(ids):
        return float((ids.eq(target) & words).sum() / words.sum())

    total = network.cfg.num_timesteps
    steps = sorted({min(int(float(f) * total), total - 1) for f in args.fractions.split(",")})
    generator = torch.Generator().manual_seed(args.seed)
    print(f"{count} {args.subset} pairs, {int(words.sum())} target words, T = {total}; "
          f"unigram baseline ('{task.target_dictionary[most_frequent]}' everywhere): "
          f"{100 * accuracy(torch.full_like(target, most_frequent)):.1f} %")
    print(f"{'t':>5s} {'t/T':>5s}  {'model x0':>8s}  {'noisy input alone':>17s}")
    embeddings = network.word_embeddings()
    with torch.no_grad():
        source = network.encode_source(src, lengths)
        clean = network.embed(target)
        for t in steps:
            at = torch.full((target.size(0),), t)
            noise = torch.randn(clean.shape, generator=generator)
            x_t = network.diffusion.q_sample(clean, at, noise, mean=network.mean_embed)
            x0_hat = network.denoise(x_t, at, source)
            model_acc = accuracy(nearest_embedding_ids(x0_hat, embeddings))
            input_acc = accuracy(nearest_embedding_ids(x_t, embeddings))
            print(f"{t:5d} {t / total:5.2f}  {100 * model_acc:7.1f}%  {100 * input_acc:16.1f}%")


if __name__ == "__main__":
    main()
