"""Checkpoints that load safely, fail clearly and survive a killed save.

* Loading: fairseq 0.12 calls ``torch.load(f, map_location=cpu)``, which torch >= 2.6 runs with
  ``weights_only=True``. Its checkpoints hold tensors, containers and plain values plus a few
  objects that this allowlist names exactly (found by loading real DiffuSeq and Levenshtein
  Transformer checkpoints). Anything else, e.g. a pickle that would call ``os.system``, is refused.
* Failures: a truncated, corrupted or refused checkpoint is reported with its path and the reason
  (for ``checkpoint_last.pt``, with the newest intact checkpoint to resume from instead), and a
  checkpoint loaded under a task that cannot use its model is named with the task it needs,
  instead of a deep torch or omegaconf traceback.
* Saving: fairseq writes a checkpoint once, then copies it to ``checkpoint_last.pt`` (and
  ``checkpoint_best.pt``) with a plain copy that truncates the destination first; a kill during
  that copy destroyed the previous good file. Both writes now go through a temporary file and an
  atomic rename (:mod:`diffuseq_fairseq.atomic_files`).

``install()`` puts all of this into fairseq; importing the plugin calls it.
"""
import argparse
import collections
import contextlib
import contextvars
import functools
import inspect
import logging
import os
import pickle
import re
import typing
import zipfile
from typing import Optional, Tuple

import numpy
import omegaconf
import torch

from diffuseq_fairseq import atomic_files

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


class CheckpointTaskError(CheckpointError):
    """A checkpoint whose model the task in use cannot build or decode."""


# What the safe unpickler and the zip reader raise on damaged or refused bytes.
_LOAD_ERRORS = (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, RuntimeError, ValueError, OSError, KeyError)
# The file fairseq-train resumes from by itself (with --checkpoint-suffix: checkpoint_lastSUFFIX.pt).
_AUTO_RESUMED = re.compile(r"checkpoint_last.*\.pt")


def _progress(state: dict) -> str:
    """``epoch E @ U updates`` as fairseq logs it, from a checkpoint's saved state."""
    extra = state.get("extra_state") or {}
    epoch = (extra.get("train_iterator") or {}).get("epoch")
    history = state.get("optimizer_history") or [{}]
    updates = history[-1].get("num_updates")
    return f"epoch {epoch} @ {updates} updates"


def newest_intact_checkpoint(damaged) -> Optional[Tuple[str, dict]]:
    """The most recently written ``checkpoint*.pt`` beside ``damaged`` that loads, and its state.

    Only runs after a failed load, so reading whole files to prove them intact is affordable.
    """
    damaged = os.path.abspath(damaged)
    directory = os.path.dirname(damaged)
    candidates = [os.path.join(directory, name) for name in os.listdir(directory)
                  if name.startswith("checkpoint") and name.endswith(".pt")]
    candidates = [path for path in candidates if path != damaged and os.path.isfile(path)]
    for path in sorted(candidates, key=os.path.getmtime, reverse=True):
        try:
            with open(path, "rb") as f:
                return path, torch.load(f, map_location="cpu")
        except _LOAD_ERRORS:
            continue
    return None


def _resume_advice(path) -> str:
    """For the checkpoint fairseq-train resumes from on its own: which one to resume from instead."""
    if not _AUTO_RESUMED.fullmatch(os.path.basename(path)):
        return ""
    found = newest_intact_checkpoint(path)
    if found is None:
        return f"; no other intact checkpoint*.pt in {os.path.dirname(os.path.abspath(path))}"
    intact, state = found
    return (f"; the newest intact checkpoint beside it is {intact} ({_progress(state)}): "
            f"resume from it with --restore-file {intact}")


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
    return (f"checkpoint {path} is truncated or corrupted and cannot be read ({type(error).__name__}: {first_line})"
            + _resume_advice(path))


@contextlib.contextmanager
def reported_load_failures(path):
    """Turn what a damaged, truncated or refused checkpoint raises while being read into a
    CheckpointError naming the file and the reason (a missing file stays FileNotFoundError)."""
    try:
        yield
    except (FileNotFoundError, CheckpointError):
        raise
    except _LOAD_ERRORS as error:
        raise CheckpointError(_explain(path, error)) from error


def load_state(path) -> dict:
    """A checkpoint's saved state as stored (no fairseq upgrades), read under the allowlist."""
    with reported_load_failures(path), open(path, "rb") as f:
        return torch.load(f, map_location="cpu")


def _field(node, name: str):
    """A field of a saved config node: an omegaconf/dict node, or a legacy argparse Namespace."""
    if node is None:
        return None
    if isinstance(node, argparse.Namespace):
        return getattr(node, name, None)
    return node.get(name)


def saved_task_and_arch(state: dict) -> Tuple[Optional[str], Optional[str]]:
    """The task name and model architecture a checkpoint was trained with (legacy ``args`` first,
    as fairseq's own loader reads them)."""
    if state.get("args") is not None:
        return _field(state["args"], "task"), _field(state["args"], "arch")
    cfg = state.get("cfg")
    if cfg is None:
        return None, None
    model = cfg.get("model")
    return _field(cfg.get("task"), "_name"), _field(model, "arch") or _field(model, "_name")


def check_task_matches(path, state: dict, task) -> None:
    """Refuse a DiffuSeq model under a task other than ``diffuseq``, and any other model under
    ``diffuseq``: either fails later deep inside the model or the generator."""
    from fairseq.models import ARCH_MODEL_REGISTRY, MODEL_REGISTRY
    from fairseq.tasks import TASK_REGISTRY

    saved_task, arch = saved_task_and_arch(state)
    model_class = ARCH_MODEL_REGISTRY.get(arch) or MODEL_REGISTRY.get(arch)
    diffuseq_model, diffuseq_task = MODEL_REGISTRY.get("diffuseq"), TASK_REGISTRY.get("diffuseq")
    if model_class is None or diffuseq_model is None or diffuseq_task is None:
        return  # an architecture this process does not know: fairseq reports it itself
    model_is_diffuseq = issubclass(model_class, diffuseq_model)
    if model_is_diffuseq == isinstance(task, diffuseq_task):
        return
    in_use = next((name for name, cls in TASK_REGISTRY.items() if cls is type(task)), type(task).__name__)
    needed = saved_task or ("diffuseq" if model_is_diffuseq else "the task it was trained with")
    model = f"a DiffuSeq model (--arch {arch}" if model_is_diffuseq else f"a {arch} model (not DiffuSeq"
    raise CheckpointTaskError(
        f"checkpoint {path} holds {model}, trained with --task {saved_task}), which --task {in_use} "
        f"cannot load: run with --task {needed}"
    )


# The task fairseq loads an ensemble's checkpoints for, and those checkpoints' file names.
_ENSEMBLE_LOAD: contextvars.ContextVar = contextvars.ContextVar("diffuseq_ensemble_load", default=None)


def _wrap_loaders(checkpoint_utils) -> None:
    """Loading: failures reported with the file and reason; an ensemble's checkpoints checked
    against the task they are loaded for (fairseq-generate, -interactive, -validate)."""
    original_load = checkpoint_utils.load_checkpoint_to_cpu
    original_ensemble = checkpoint_utils.load_model_ensemble_and_task
    ensemble_signature = inspect.signature(original_ensemble)

    @functools.wraps(original_load)
    def load_checkpoint_to_cpu(path, *args, **kwargs):
        with reported_load_failures(path):
            state = original_load(path, *args, **kwargs)
        ensemble = _ENSEMBLE_LOAD.get()
        if ensemble is not None and path in ensemble[1]:
            check_task_matches(path, state, ensemble[0])
        return state

    @functools.wraps(original_ensemble)
    def load_model_ensemble_and_task(*args, **kwargs):
        call = ensemble_signature.bind(*args, **kwargs)
        call.apply_defaults()
        task, filenames = call.arguments["task"], call.arguments["filenames"]
        if task is None:  # fairseq builds the checkpoint's own task: nothing to mismatch
            return original_ensemble(*args, **kwargs)
        if call.arguments["state"] is not None:
            check_task_matches(filenames[0], call.arguments["state"], task)
        suffix, shards = call.arguments["suffix"], call.arguments["num_shards"]
        names = {checkpoint_utils.get_maybe_sharded_checkpoint_filename(name, suffix, shard, shards)
                 for name in filenames for shard in range(shards)}
        token = _ENSEMBLE_LOAD.set((task, names))
        try:
            return original_ensemble(*args, **kwargs)
        finally:
            _ENSEMBLE_LOAD.reset(token)

    checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu
    checkpoint_utils.load_model_ensemble_and_task = load_model_ensemble_and_task


def _make_saves_atomic(checkpoint_utils) -> None:
    """Saving: the write of a new checkpoint and its copies to checkpoint_last.pt / _best.pt go
    through a temporary file and a rename. Remote paths (fairseq's PathManager handlers) and
    asynchronous writes keep fairseq's own code."""
    from fairseq.file_io import PathManager

    original_save = checkpoint_utils.torch_persistent_save
    original_copy = PathManager.copy

    @functools.wraps(original_save)
    def torch_persistent_save(obj, filename, async_write: bool = False):
        if async_write or not PathManager.supports_rename(filename):
            return original_save(obj, filename, async_write)
        with atomic_files.replacing(filename) as temporary, open(temporary, "wb") as f:
            torch.save(obj, f)

    @functools.wraps(original_copy)
    def copy(src_path: str, dst_path: str, overwrite: bool = False) -> bool:
        local = PathManager.supports_rename(src_path) and PathManager.supports_rename(dst_path)
        if not local or (not overwrite and os.path.exists(dst_path)):
            return original_copy(src_path, dst_path, overwrite)
        atomic_files.copy_atomically(src_path, dst_path)
        return True

    checkpoint_utils.torch_persistent_save = torch_persistent_save
    PathManager.copy = staticmethod(copy)


def install() -> None:
    """Allowlist fairseq's checkpoint globals, give checkpoint failures clear messages and make
    checkpoint saves atomic (once per process, however often the plugin is imported)."""
    from fairseq import checkpoint_utils
    from fairseq.distributed.utils import _TensorPlaceholder

    # The broadcast replaces tensors by index placeholders before pickling the rest.
    torch.serialization.add_safe_globals(SAFE_GLOBALS + [_TensorPlaceholder])
    if getattr(checkpoint_utils, "_diffuseq_installed", False):
        return
    _wrap_loaders(checkpoint_utils)
    _make_saves_atomic(checkpoint_utils)
    checkpoint_utils._diffuseq_installed = True
