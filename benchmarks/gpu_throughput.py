"""GPU check for diffuseq_base: training tokens/s and model-FLOPs utilisation at sequence length 128,
mixed-precision sanity (bf16 autocast, fp16 with loss scaling and a pure-half model), and decoding
sentences/s. Needs only torch (not fairseq), so it runs on a bare GPU machine:

    PYTHONPATH=. python3 benchmarks/gpu_throughput.py [--batch 64] [--steps 20] [--json out.json]

FLOPs are counted by torch.utils.flop_counter on one real training step (forward + backward), so
MFU = counted FLOPs per second / the chip's dense bf16 peak.
"""
import argparse
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from diffuseq_fairseq.generator import DecodingOptions, DiffuSeqGenerator
from diffuseq_fairseq.network import DiffuSeqNetwork, NetworkConfig

DENSE_BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12}
VOCAB, PAD, BOS, EOS = 30522, 1, 0, 2




def batch_of(batch: int, src_len: int, tgt_len: int, device):
    src = torch.randint(4, VOCAB, (batch, src_len), device=device)
    src[:, -1] = EOS
    tgt = torch.randint(4, VOCAB, (batch, tgt_len), device=device)
    tgt[:, -1] = EOS
    return src, torch.full((batch,), src_len, device=device), tgt


def train_step(net, optimizer, src, lengths, tgt, dtype, scaler=None):
    sampler = net.importance_sampler(0.001)
    t, weights = sampler.sample(src.size(0), src.device)
    with torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        terms = net.training_terms(src, lengths, tgt, t)
    per_sentence = terms["mse"] + terms["rounding_nll"] + terms["tT"]
    loss = (per_sentence * weights).mean()
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return loss


def measure_training(net, batch, steps, dtype, device):
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=True)
    src, lengths, tgt = batch_of(batch, 64, 64, device)
    for _ in range(3):
        train_step(net, optimizer, src, lengths, tgt, dtype)
    torch.cuda.synchronize()
    with FlopCounterMode(display=False) as counter:
        train_step(net, optimizer, src, lengths, tgt, dtype)
    flops_per_step = counter.get_total_flops()
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        loss = train_step(net, optimizer, src, lengths, tgt, dtype)
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    return {
        "tokens_per_s": batch * 128 * steps / elapsed,
        "step_ms": 1000 * elapsed / steps,
        "flops_per_step": flops_per_step,
        "achieved_tflops": flops_per_step * steps / elapsed / 1e12,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
        "final_loss": float(loss),
    }


def mixed_precision_checks(device):
    """fp16 with loss scaling, and a pure .half() network at the noisiest step, stay finite."""
    cfg = NetworkConfig(encoder_layers=2)
    net = DiffuSeqNetwork(cfg, VOCAB, PAD).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda")
    src, lengths, tgt = batch_of(16, 32, 32, device)
    fp16_losses = [float(train_step(net, optimizer, src, lengths, tgt, torch.float16, scaler)) for _ in range(5)]
    half = DiffuSeqNetwork(cfg, VOCAB, PAD).to(device).half()
    t = torch.full((16,), cfg.num_timesteps - 1, device=device)
    terms = half.training_terms(src, lengths, tgt, t)
    return {"fp16_autocast_losses": fp16_losses,
            "pure_half_terms_at_T-1": {k: float(v.float().mean()) for k, v in terms.items()}}


def measure_decoding(net, batch, device, steps=20):
    src, lengths, _ = batch_of(batch, 24, 2, device)
    sample = {"id": torch.arange(batch), "net_input": {"src_tokens": src, "src_lengths": lengths}}
    results = {}
    for candidates in (1, 10):
        generator = DiffuSeqGenerator(DecodingOptions(
            special_ids=(PAD, BOS, EOS), sampler="dpm-solver++", num_steps=steps, total_steps=net.cfg.num_timesteps,
            num_candidates=candidates, base_seed=1, canvas_length=lambda lengths: torch.full_like(lengths, 32),
        ))
        with torch.autocast("cuda", dtype=torch.bfloat16):
            generator.generate([net], sample)
            torch.cuda.synchronize()
            start = time.perf_counter()
            generator.generate([net], sample)
            torch.cuda.synchronize()
        results[f"sentences_per_s_S{candidates}"] = batch / (time.perf_counter() - start)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--layers", type=int, default=12, help="fewer only for a smoke test")
    parser.add_argument("--json")
    args = parser.parse_args()
    device = torch.device("cuda")
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in DENSE_BF16_PEAK.items() if k in name), None)
    torch.backends.cuda.matmul.allow_tf32 = True
    report = {"device": name, "torch": torch.__version__}
    for source_once in (False, True):
        torch.manual_seed(0)
        net = DiffuSeqNetwork(NetworkConfig(encoder_layers=args.layers, encode_source_once=source_once), VOCAB, PAD).to(device)
        key = "encode_source_once" if source_once else "paper_layout"
        report[key] = {"parameters": sum(p.numel() for p in net.parameters())}
        report[key]["train_bf16"] = measure_training(net, args.batch, args.steps, torch.bfloat16, device)
        if peak:
            report[key]["train_bf16"]["mfu"] = report[key]["train_bf16"]["achieved_tflops"] * 1e12 / peak
        report[key]["decode_bf16_dpm20_batch256"] = measure_decoding(net, 256, device)
        del net
        torch.cuda.empty_cache()
    report["mixed_precision"] = mixed_precision_checks(device)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
