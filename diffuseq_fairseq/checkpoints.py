"""Safe checkpoint loading on torch ≥ 2.6 without switching ``weights_only`` off.

fairseq 0.12 calls ``torch.load(f, map_location=cpu)``, which torch ≥ 2.6 runs with
``weights_only=True``. Its checkpoints hold tensors, containers and plain values plus a few
objects that this allowlist names exactly (found by loading real DiffuSeq and Levenshtein
Transformer checkpoints). Anything else, e.g. a pickle that would call ``os.system``, is refused.

``install()`` also wraps fairseq's ``load_checkpoint_to_cpu`` so that a truncated, corrupted or
refused checkpoint is reported with its path and the reason instead of a deep torch traceback.
"""
import argparse
import functools
import logging
import pickle
import zipfile

import torch

logger = logging.getLogger(__name__)

# The non-tensor, non-container objects found in fairseq checkpoints.
SAFE_GLOBALS = [argparse.Namespace]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded safely; the message names the file and the reason."""


def _explain(path, error: Exception) -> str:
    text = str(error)
    if "Unsupported global" in text or "Weights only load failed" in text:
        detail = next((line.strip() for line in text.splitlines() if "Unsupported global" in line), text.splitlines()[0])
        return (f"refusing to load checkpoint {path}: it contains an object outside the allowlist of "
                f"diffuseq_fairseq.checkpoints ({detail}). Only load checkpoints from sources you trust.")
    return f"checkpoint {path} is truncated or corrupted and cannot be read ({type(error).__name__}: {text.splitlines()[0] if text else ''})"


def install() -> None:
    """Allowlist fairseq's checkpoint globals and give checkpoint failures clear messages."""
    torch.serialization.add_safe_globals(SAFE_GLOBALS)
    from fairseq import checkpoint_utils

    original = checkpoint_utils.load_checkpoint_to_cpu
    if getattr(original, "_diffuseq_wrapped", False):
        return

    @functools.wraps(original)
    def load_checkpoint_to_cpu(path, *args, **kwargs):
        try:
            return original(path, *args, **kwargs)
        except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, RuntimeError, ValueError) as error:
            raise CheckpointError(_explain(path, error)) from error

    load_checkpoint_to_cpu._diffuseq_wrapped = True
    checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu
