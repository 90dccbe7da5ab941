"""``diffuseq-export-ema``: turn the EMA weights that fairseq stored (``--store-ema``) into a checkpoint.

fairseq keeps the exponential moving average in the checkpoint's ``extra_state["ema"]`` and has no
generation option to decode with it. This writes a copy of the checkpoint whose ``model`` is the
    EMA (everything else, config included, unchanged; the now redundant EMA copy dropped), which
``fairseq-generate``, ``fairseq-interactive`` and ``fairseq-validate`` load as usual. The output
must be another file than the input (the training checkpoint keeps the trained weights and the
EMA state that resuming needs); it is written atomically, so an interrupted export leaves no
partial checkpoint.
"""
import argparse
import os
from pathlib import Path
from typing import Optional, Sequence

import torch

from diffuseq_fairseq import atomic_files
from diffuseq_fairseq.checkpoints import CheckpointError, load_state


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (also through symbolic or hard links)."""
    try:
        return os.path.samefile(a, b)
    except FileNotFoundError:
        return False


def check_destination(source: Path, destination: Path) -> None:
    """Refuse to overwrite the training checkpoint, also as the temporary file of the atomic write."""
    temporary = Path(atomic_files.temporary_path(destination))
    for written, what in ((destination, "the output"), (temporary, "the output's temporary file")):
        if _same_file(source, written):
            raise CheckpointError(
                f"{what} {written} is the input checkpoint {source} (the same file): exporting would replace "
                "its trained weights and the EMA state that resuming needs; give another output path"
            )
    if not destination.parent.is_dir():
        raise CheckpointError(f"output directory {destination.parent} does not exist")


def export_ema(source: Path, destination: Path) -> int:
    """Write ``destination``; returns how many tensors the EMA replaced. (fairseq's
    ``checkpoint_utils.load_ema_from_checkpoint`` reads the same entry, but reports a checkpoint
    without EMA as a bare KeyError, indistinguishable from a damaged file.)"""
    check_destination(source, destination)
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
    with atomic_files.replacing(destination) as temporary, open(temporary, "wb") as f:
        torch.save(state, f)
    return len(ema)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="diffuseq-export-ema", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="a checkpoint trained with --store-ema")
    parser.add_argument("output", type=Path,
                        help="where to write the checkpoint with the EMA weights (not the input checkpoint)")
    args = parser.parse_args(argv)

    try:
        count = export_ema(args.checkpoint, args.output)
    except (CheckpointError, FileNotFoundError) as error:
        parser.exit(1, f"diffuseq-export-ema: error: {error}\n")
    print(f"wrote {args.output}: {count} EMA tensors from {args.checkpoint}")


if __name__ == "__main__":
    main()
