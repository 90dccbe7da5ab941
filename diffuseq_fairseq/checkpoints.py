"""Safe checkpoint loading on torch ≥ 2.6 without switching ``weights_only`` off.

fairseq 0.12 calls ``torch.load(f, map_location=cpu)``, which torch ≥ 2.6 runs with
``weights_only=True``. Its checkpoints hold tensors, containers and plain values plus a few
objects that this allowlist names exactly (found by loading real DiffuSeq and Levenshtein
Transformer checkpoints). Anything else, e.g. a pickle that would call ``os.system``, is refused.

``install()`` also wraps fairseq's ``load_checkpoint_to_cpu`` so that a truncated, corrupted or
refused checkpoint is reported with its path and the reason instead of a deep torch traceback.
"""
import argparse
import collections
import contextlib
import functools
import logging
import pickle
import typing
import zipfile

import numpy
import omegaconf
import torch

logger = logging.getLogger(__name__)

# The non-tensor, non-container objects found in fairseq checkpoints: legacy ``args``
# Namespaces (LevT), and numpy arrays of --eval-bleu n-gram counts in the saved metrics state.
SAFE_GLOBALS = [
    argparse.Namespace,
    numpy.ndarray,
    numpy.dtype,
    numpy._core.multiarray._reconstruct,
    numpy.dtypes.Int64DType,
    numpy.dtypes.Int32DType,
    numpy.dtypes.Float64DType,
    numpy.dtypes.Float32DType,
    # After loading, fairseq turns the config into an omegaconf DictConfig and broadcasts the
    # state to the other ranks, which unpickle it with torch.load (weights_only) again.
    omegaconf.DictConfig,
    omegaconf.ListConfig,
    omegaconf.base.Metadata,
    omegaconf.base.ContainerMetadata,
    omegaconf.nodes.AnyNode,
    omegaconf.nodes.StringNode,
    omegaconf.nodes.IntegerNode,
    omegaconf.nodes.FloatNode,
    omegaconf.nodes.BooleanNode,
    typing.Any,
    collections.defaultdict,
    dict,
    list,
    int,
    float,
    str,
    bool,
]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded safely; the message names the file and the reason."""


def _explain(path, error: Exception) -> str:
    text = str(error)
    # Only a pickle that names a global (class or function) outside the allowlist is a refusal;
    # every other failure of the safe unpickler means damaged bytes.
    refused = [line.strip() for line in text.splitlines()
               if "unsupported global" in line.lower() or "but got <class" in line]
    if refused:
        return (f"refusing to load checkpoint {path}: it contains an object outside the allowlist of "
                f"diffuseq_fairseq.checkpoints ({refused[0]}). Only load checkpoints from sources you trust.")
    first_line = text.splitlines()[0] if text else ""
    return f"checkpoint {path} is truncated or corrupted and cannot be read ({type(error).__name__}: {first_line})"


@contextlib.contextmanager
def reported_load_failures(path):
    """Turn what a damaged, truncated or refused checkpoint raises while being read into a
    CheckpointError naming the file and the reason (a missing file stays FileNotFoundError)."""
    try:
        yield
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, RuntimeError, ValueError, OSError, KeyError) as error:
        raise CheckpointError(_explain(path, error)) from error


def load_state(path) -> dict:
    """A checkpoint's saved state as stored (no fairseq upgrades), read under the allowlist."""
    with reported_load_failures(path), open(path, "rb") as f:
        return torch.load(f, map_location="cpu")


def install() -> None:
    """Allowlist fairseq's checkpoint globals and give checkpoint failures clear messages."""
    from fairseq import checkpoint_utils
    from fairseq.distributed.utils import _TensorPlaceholder

    # The broadcast replaces tensors by index placeholders before pickling the rest.
    torch.serialization.add_safe_globals(SAFE_GLOBALS + [_TensorPlaceholder])

    original = checkpoint_utils.load_checkpoint_to_cpu
    if getattr(original, "_diffuseq_wrapped", False):
        return

    @functools.wraps(original)
    def load_checkpoint_to_cpu(path, *args, **kwargs):
        with reported_load_failures(path):
            return original(path, *args, **kwargs)

    load_checkpoint_to_cpu._diffuseq_wrapped = True
    checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu
