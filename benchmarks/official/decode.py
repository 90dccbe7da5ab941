"""Decode with the official DiffuSeq sampler (``sample_seq2seq.py``), one file per seed; official venv.

    .official-venv/bin/python benchmarks/official/decode.py --checkpoint runs/official_v1/ema_0.9999_000006.pt \\
        --seeds 101 102 103 --out runs/official_v1/decoded

Runs the official ``main()`` once per seed with the options of ``scripts/run_decode.py`` (ancestral
sampling over all T steps unless --step S < T, which takes the official DDIM path; rounding at every
step; the run's split, default test) and gathers its ``seed{S}_step0*.json`` files in OUT, the
folder layout ``scripts/eval_seq2seq.py --folder`` reads. v1 runs unchanged. v2's sampler was
written for CUDA only; three stand-ins make it run on a CPU, with no change to its arithmetic:
its schedule tensors go to the CPU instead of ``cuda:LOCAL_RANK``, ``dist.barrier`` is called
without the CUDA ``device_ids``, and ``dist_util.load_state_dict`` accepts the extra positional
arguments the script passes (a TypeError as shipped).
"""
import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from official_setup import launcher_environment, use_official  # noqa: E402


def cpu_stand_ins(module):
    """Let v2's sample_seq2seq run without CUDA (see the module docstring)."""
    import torch.distributed as dist
    from diffuseq.utils import dist_util

    load_state_dict, build, barrier = dist_util.load_state_dict, module.create_model_and_diffusion, dist.barrier
    dist_util.load_state_dict = lambda path, *extra, **kwargs: load_state_dict(path, **kwargs)
    module.create_model_and_diffusion = lambda **kwargs: build(**{**kwargs, "device": "cpu"})
    dist.barrier = lambda *args, device_ids=None, **kwargs: barrier(*args, **kwargs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", choices=("v1", "v2"), default="v1")
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[101])
    parser.add_argument("--step", type=int, help="sampling steps (default: T, the ancestral sampler)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    checkpoint, out = args.checkpoint.resolve(), args.out.resolve()
    steps = args.step or json.loads((checkpoint.parent / "training_args.json").read_text())["diffusion_steps"]
    use_official(args.version)
    launcher_environment()
    import sample_seq2seq

    if args.version == "v2":
        cpu_stand_ins(sample_seq2seq)
    out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as scratch:  # the script appends to its output file
            sys.argv = ["sample_seq2seq.py", "--model_path", str(checkpoint), "--step", str(steps),
                        "--batch_size", str(args.batch_size), "--seed2", str(seed), "--split", args.split,
                        "--out_dir", scratch, "--top_p", "-1", "--clamp_step", "0"]
            sample_seq2seq.main()
            for written in Path(scratch).glob("*/*.samples/*.json"):
                shutil.copy(written, out / written.name)
    print(f"official {args.version} decoding ({steps} steps) wrote {', '.join(sorted(p.name for p in out.glob('*.json')))}"
          f" in {out}")


if __name__ == "__main__":
    main()
