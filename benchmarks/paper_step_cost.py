"""Cost of one training step in the paper's configuration, with the logged-only anchor CE computed
without gradient (now) against with it (before), on this machine, in one run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/paper_step_cost.py --data-bin data-bin/multi30k_de_en \\
        --source-lang de --target-lang en --batch-size 16 --repeats 10

The paper's loss (mse + rounding NLL + tT over all 128 positions of the official sequence) only
logs the anchor CE −log p(w | lm_head(x̂0)); computed with gradient, backward runs its
full-vocabulary softmax and matmul only to multiply them by 0. The model and criterion are those of
benchmarks/official_parity.py's padded plugin run (4 layers, d=256, embedding 128, T 2000,
--token-layout diffuseq, the 128-position canvas, --loss-positions all); one batch of the first
training pairs, both ways alternately, --repeats times each after one warm-up step; prints the
median seconds per step of each and the ratio.
"""
import argparse
import statistics
import time

import torch
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf


def build(args):
    flags = [args.data_bin, "--user-dir", "diffuseq_fairseq", "--task", "diffuseq", "--source-lang", args.source_lang,
             "--target-lang", args.target_lang, "--token-layout", "diffuseq", "--max-total-len", "128",
             "--canvas-len-a", "0", "--canvas-len-b", "128", "--arch", "diffuseq_base", "--encoder-layers", "4",
             "--encoder-embed-dim", "256", "--encoder-attention-heads", "4", "--encoder-ffn-embed-dim", "1024",
             "--latent-dim", "128", "--dropout", "0.1", "--attention-dropout", "0.1", "--num-timesteps", "2000",
             "--noise-schedule", "sqrt", "--criterion", "diffuseq_loss", "--loss-positions", "all", "--cpu"]
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(options.get_training_parser(), flags))
    torch.manual_seed(1)
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    dataset = task.dataset("train")
    sample = dataset.collater([dataset[i] for i in range(args.batch_size)])
    return task.build_model(cfg.model).train(), task.build_criterion(cfg.criterion), sample


def timed_step(model, criterion, sample, anchor_with_gradient: bool) -> float:
    forward = model.forward
    if anchor_with_gradient:  # as before: the anchor CE in the backward graph, multiplied by 0
        model.forward = lambda *args, **kwargs: forward(*args, **{**kwargs, "anchor_trained": True})
    try:
        model.zero_grad()
        start = time.perf_counter()
        loss, _, _ = criterion(model, sample)
        loss.backward()
        return time.perf_counter() - start
    finally:
        model.forward = forward


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-bin", default="data-bin/multi30k_de_en")
    parser.add_argument("--source-lang", default="de")
    parser.add_argument("--target-lang", default="en")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    model, criterion, sample = build(args)
    if criterion.anchor_loss_weight != 0:
        raise SystemExit("the paper's configuration has no anchor loss weight")
    seconds = {True: [], False: []}
    for with_gradient in (True, False):
        timed_step(model, criterion, sample, with_gradient)  # warm-up
    for _ in range(args.repeats):
        for with_gradient in (True, False):
            seconds[with_gradient].append(timed_step(model, criterion, sample, with_gradient))
    before, now = statistics.median(seconds[True]), statistics.median(seconds[False])
    print(f"paper configuration, {args.batch_size} pairs x 128 positions, {torch.get_num_threads()} thread(s), "
          f"median of {args.repeats}")
    print(f"anchor CE with gradient (before)    {before:.3f} s/step")
    print(f"anchor CE without gradient (now)    {now:.3f} s/step")
    print(f"ratio before / now                  {before / now:.3f}x")


if __name__ == "__main__":
    main()
