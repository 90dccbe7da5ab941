"""Decode with DiffuSeq-v2's DPM-Solver script (``sample_seq2seq_dpmSolver.py``), one file per seed; official venv.

    .official-venv/bin/python benchmarks/official/decode_dpm.py --checkpoint runs/official_v1/ema_0.9999_000006.pt \\
        --step 10 --seeds 101 --out runs/official_v1/decoded_dpm

Runs the script's ``main()`` once per seed (its settings: dpmsolver++, multistep, order 2,
time_uniform, no rounding; ``--step`` solver steps) and gathers its ``seed{S}_solverstep{N}_*.json``
files in OUT. A v1 checkpoint without --learned_mean_embed loads into v2's model class unchanged.
The script was written for CUDA only; on a CPU it runs with decode.py's three stand-ins and a fourth:
``Tensor.cuda`` returns the tensor itself (the script moves the solver's output to CUDA before
lm_head). Its ``torch.cuda.amp.autocast()`` does nothing without CUDA, so it runs in float32.
Each seed's "### Total takes" line (the script's own clock, from after data loading to the file
written) is printed as the script prints it.
"""
import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from decode import cpu_stand_ins  # noqa: E402
from official_setup import launcher_environment, use_official  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[101])
    parser.add_argument("--step", type=int, default=10, help="DPM-Solver steps")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)
    checkpoint, out = args.checkpoint.resolve(), args.out.resolve()
    use_official("v2")
    launcher_environment()
    import torch

    import sample_seq2seq_dpmSolver as script

    cpu_stand_ins(script)
    torch.Tensor.cuda = lambda tensor, *args, **kwargs: tensor
    out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as scratch:  # the script appends to its output file
            sys.argv = ["sample_seq2seq_dpmSolver.py", "--model_path", str(checkpoint), "--step", str(args.step),
                        "--batch_size", str(args.batch_size), "--seed2", str(seed), "--split", args.split,
                        "--out_dir", scratch, "--note", "dpm"]
            script.main()
            for written in Path(scratch).glob("*/*.samples/*.json"):
                shutil.copy(written, out / written.name)
    print(f"official v2 DPM-Solver decoding ({args.step} steps) wrote "
          f"{', '.join(sorted(p.name for p in out.glob('*.json')))} in {out}")


if __name__ == "__main__":
    main()
