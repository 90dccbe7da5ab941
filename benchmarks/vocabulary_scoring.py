"""What scoring the vocabulary costs a decode, new (block-wise on a CPU) vs old (one [rows, V] matrix).

Every step rounds x̂0 to its nearest word embedding, and the last step takes argmax lm_head(x̂0)
with its log-probability. Both score every row against the whole vocabulary: at MBR 10 over 100
Multi30k sentences that is 16,000 rows × 7,868 words, a 480 MiB float matrix per call. The
generator scores CPU rows in blocks of 2**21 entries instead (``vocabulary_block_rows``). This
times both ways on the same random data in one run, checks that they pick the same words, and
prints the ratio.

    python benchmarks/vocabulary_scoring.py [--rows 16000] [--vocab 7868] [--repeats 3]
"""
import argparse
import time

import torch

from diffuseq_fairseq.diffusion import most_likely_words, nearest_embedding_ids, vocabulary_block_rows


def seconds(fn, repeats: int) -> float:
    fn()  # warm-up: allocator and thread pool
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=16000, help="B·S·canvas: 100 sentences × 10 candidates × 16")
    parser.add_argument("--vocab", type=int, default=7868, help="the Multi30k joined dictionary")
    parser.add_argument("--latent", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    x, table, bias = torch.randn(args.rows, args.latent), torch.randn(args.vocab, args.latent), torch.randn(args.vocab)
    blocks = vocabulary_block_rows(torch.device("cpu"), args.vocab)
    print(f"{args.rows:,} rows × {args.vocab:,} words, latent {args.latent}, {torch.get_num_threads()} thread(s); "
          f"blocks of {blocks} rows; best of {args.repeats}")
    squared_norms = table.pow(2).sum(-1)
    cases = {  # name: (the code before blocks, as it was; the generator's code now)
        "rounding (nearest embedding)": (
            lambda: torch.addmm(squared_norms, x, table.t(), alpha=-2).argmin(-1),
            lambda: nearest_embedding_ids(x, table, blocks)),
        "lm_head argmax + log-prob": (
            lambda: tuple(reversed(torch.log_softmax((x @ table.t() + bias).float(), dim=-1).max(-1))),
            lambda: most_likely_words(x, table, bias, blocks)),
    }
    for name, (old, new) in cases.items():
        words = lambda result: result[0] if isinstance(result, tuple) else result  # noqa: E731
        same = torch.equal(words(old()), words(new()))
        whole, blockwise = seconds(old, args.repeats), seconds(new, args.repeats)
        print(f"  {name:30s} before {whole:6.2f} s ({args.rows * args.vocab * 4 / 2**20:,.0f} MiB matrix), "
              f"blocks {blockwise:6.2f} s ({blocks * args.vocab * 4 / 2**20:,.0f} MiB): "
              f"{whole / blockwise:.2f}x faster, same words: {same}")


if __name__ == "__main__":
    main()
