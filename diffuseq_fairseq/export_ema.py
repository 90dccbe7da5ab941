"""``diffuseq-export-ema``: turn the EMA weights that fairseq stored (``--store-ema``) into a checkpoint.

fairseq keeps the exponential moving average in the checkpoint's ``extra_state["ema"]`` and has no
generation option to decode with it. This writes a copy of the checkpoint whose ``model`` is the
EMA (everything else, config included, unchanged; the now redundant EMA copy dropped), which
``fairseq-generate``, ``fairseq-interactive`` and ``fairseq-validate`` load as usual.
"""
import argparse
from pathlib import Path
from typing import Optional, Sequence

import torch

from diffuseq_fairseq.checkpoints import CheckpointError, load_state


def export_ema(source: Path, destination: Path) -> int:
    """Write ``destination``; returns how many tensors the EMA replaced. (fairseq's
    ``checkpoint_utils.load_ema_from_checkpoint`` reads the same entry, but reports a checkpoint
    without EMA as a bare KeyError, indistinguishable from a damaged file.)"""
    state = load_state(source)
    extra = state.get("extra_state") or {}
    ema = extra.get("ema")
    if not ema:
        raise CheckpointError(f"{source} holds no EMA weights: train with --store-ema --ema-decay D to keep them")
    if set(ema) != set(state["model"]):
        differ = sorted(set(ema) ^ set(state["model"]))
        raise CheckpointError(f"{source}: the EMA and the model have different entries ({', '.join(differ[:5])})")
    state["model"] = ema
    extra.pop("ema")
    extra.pop("ema_fp32_params", None)
    torch.save(state, destination)
    return len(ema)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="diffuseq-export-ema", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a checkpoint trained with --store-ema")
    parser.add_argument("output", type=Path, help="where to write the checkpoint with the EMA weights")
    args = parser.parse_args(argv)

    try:
        count = export_ema(args.checkpoint, args.output)
    except (CheckpointError, FileNotFoundError) as error:
        parser.exit(1, f"diffuseq-export-ema: error: {error}\n")
    print(f"wrote {args.output}: {count} EMA tensors from {args.checkpoint}")


if __name__ == "__main__":
    main()
