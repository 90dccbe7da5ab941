"""diffuseq-export-ema never destroys the training checkpoint: an output that is the input (same
path, a symbolic or a hard link) is refused with exit status 1 and the input unchanged, and an
interrupted export leaves no partial output (issue #30)."""
import os

import pytest
import torch

from diffuseq_fairseq import export_ema


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "ck" / "checkpoint_last.pt"
    path.parent.mkdir()
    torch.save({"model": {"w": torch.ones(3)}, "cfg": None, "optimizer_history": [{"num_updates": 7}],
                "extra_state": {"ema": {"w": torch.full((3,), 0.5)}, "train_iterator": {"epoch": 1}}}, path)
    return path


def _export(capsys, *args):
    with pytest.raises(SystemExit) as exit_status:
        export_ema.main([str(a) for a in args])
    return exit_status.value.code, capsys.readouterr().err


def test_exports_the_ema_weights(checkpoint, tmp_path, capsys):
    export_ema.main([str(checkpoint), str(tmp_path / "ema.pt")])
    assert "wrote" in capsys.readouterr().out
    exported = torch.load(tmp_path / "ema.pt")
    assert torch.equal(exported["model"]["w"], torch.full((3,), 0.5)) and "ema" not in exported["extra_state"]
    assert sorted(os.listdir(tmp_path)) == ["ck", "ema.pt"]


@pytest.mark.parametrize("link", ["same path", "relative path", "symlink", "hard link"])
def test_output_equal_to_the_input_is_refused(checkpoint, tmp_path, capsys, monkeypatch, link):
    before = checkpoint.read_bytes()
    output = tmp_path / "out.pt"
    if link == "same path":
        output = checkpoint
    elif link == "relative path":
        monkeypatch.chdir(tmp_path)
        output = "ck/../ck/checkpoint_last.pt"
    elif link == "symlink":
        output.symlink_to(checkpoint)
    else:
        os.link(checkpoint, output)
    status, err = _export(capsys, checkpoint, output)
    assert status == 1
    assert f"error: the output {output} is the input checkpoint {checkpoint} (the same file)" in err
    assert checkpoint.read_bytes() == before
    assert not list(checkpoint.parent.glob("*.tmp"))


def test_input_named_like_the_outputs_temporary_file_is_refused(checkpoint, tmp_path, capsys):
    source = tmp_path / "ema.pt.tmp"
    os.replace(checkpoint, source)
    status, err = _export(capsys, source, tmp_path / "ema.pt")
    assert status == 1 and "the output's temporary file" in err and source.exists()


def test_missing_output_directory_is_reported(checkpoint, tmp_path, capsys):
    status, err = _export(capsys, checkpoint, tmp_path / "absent" / "ema.pt")
    assert status == 1 and f"output directory {tmp_path / 'absent'} does not exist" in err


def test_interrupted_export_leaves_the_previous_output(checkpoint, tmp_path, monkeypatch):
    output = tmp_path / "ema.pt"
    output.write_bytes(b"previous export")

    def save_half(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", save_half)
    with pytest.raises(KeyboardInterrupt):
        export_ema.export_ema(checkpoint, output)
    assert output.read_bytes() == b"previous export"
    assert sorted(os.listdir(tmp_path)) == ["ck", "ema.pt"]
