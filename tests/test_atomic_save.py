"""Atomic writes: a failure (or a kill) in the middle of writing a file leaves the previous version,
for diffuseq_fairseq.atomic_files and for the fairseq save and copy functions the plugin replaces."""
import os
import shutil

import pytest
import torch

import diffuseq_fairseq  # noqa: F401  (installs the atomic saves into fairseq)
from diffuseq_fairseq import atomic_files


class Interrupted(Exception):
    """Stands for the process dying in the middle of a write."""


def _write_half_then_fail(data: bytes):
    def write(_source, destination, *args, **kwargs):
        with open(destination, "wb") as f:
            f.write(data[: len(data) // 2])
        raise Interrupted

    return write


def test_replacing_moves_the_new_version_into_place(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"old")
    with atomic_files.replacing(path) as temporary:
        assert temporary == f"{path}.tmp" and path.read_bytes() == b"old"
        with open(temporary, "wb") as f:
            f.write(b"new")
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["file.bin"]


def test_replacing_keeps_the_old_version_when_the_write_fails(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"old")
    with pytest.raises(Interrupted):
        with atomic_files.replacing(path) as temporary:
            with open(temporary, "wb") as f:
                f.write(b"ne")
            raise Interrupted
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file.bin"]


def test_replacing_reuses_a_temporary_file_left_by_a_killed_writer(tmp_path):
    path = tmp_path / "file.bin"
    (tmp_path / "file.bin.tmp").write_bytes(b"half of a killed write, longer than the new file")
    with atomic_files.replacing(path) as temporary, open(temporary, "wb") as f:
        f.write(b"new")
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["file.bin"]


def test_copy_atomically_keeps_the_destination_when_the_copy_fails(tmp_path, monkeypatch):
    source, destination = tmp_path / "checkpoint_1_10.pt", tmp_path / "checkpoint_last.pt"
    source.write_bytes(b"new checkpoint" * 100)
    destination.write_bytes(b"previous checkpoint")
    monkeypatch.setattr(shutil, "copyfile", _write_half_then_fail(source.read_bytes()))
    with pytest.raises(Interrupted):
        atomic_files.copy_atomically(source, destination)
    assert destination.read_bytes() == b"previous checkpoint"
    monkeypatch.undo()
    atomic_files.copy_atomically(source, destination)
    assert destination.read_bytes() == source.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["checkpoint_1_10.pt", "checkpoint_last.pt"]


def test_fairseq_copy_to_checkpoint_last_is_atomic(tmp_path, monkeypatch):
    """fairseq's save_checkpoint copies the new checkpoint with PathManager.copy(..., overwrite=True);
    without the plugin that is shutil.copyfile straight onto checkpoint_last.pt."""
    from fairseq.file_io import PathManager

    source, destination = tmp_path / "checkpoint_1_10.pt", tmp_path / "checkpoint_last.pt"
    source.write_bytes(b"new checkpoint" * 100)
    destination.write_bytes(b"previous checkpoint")
    monkeypatch.setattr(shutil, "copyfile", _write_half_then_fail(source.read_bytes()))
    with pytest.raises(Interrupted):
        PathManager.copy(str(source), str(destination), overwrite=True)
    assert destination.read_bytes() == b"previous checkpoint"
    monkeypatch.undo()
    assert PathManager.copy(str(source), str(destination), overwrite=True) is True
    assert destination.read_bytes() == source.read_bytes()
    assert not list(tmp_path.glob("*.tmp"))


def test_fairseq_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    from fairseq import checkpoint_utils

    path = tmp_path / "checkpoint_last.pt"
    torch.save({"step": 1}, path)
    original_save = torch.save

    def save_half(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half")
        raise Interrupted

    monkeypatch.setattr(torch, "save", save_half)
    with pytest.raises(Interrupted):
        checkpoint_utils.torch_persistent_save({"step": 2}, str(path))
    assert torch.load(path) == {"step": 1}
    monkeypatch.setattr(torch, "save", original_save)
    checkpoint_utils.torch_persistent_save({"step": 2}, str(path))
    assert torch.load(path) == {"step": 2}
    assert os.listdir(tmp_path) == ["checkpoint_last.pt"]
