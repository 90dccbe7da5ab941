"""--output-vocab: the words the reverse process may output, read from the data dir's training targets."""
import pytest

from diffuseq_fairseq.tasks.diffuseq import DiffuSeqConfig, DiffuSeqTask
from fairseq_harness import preprocess_data


def write_pairs(raw, split, pairs):
    raw.mkdir(parents=True, exist_ok=True)
    (raw / f"{split}.in").write_text("".join(src + "\n" for src, _ in pairs))
    (raw / f"{split}.out").write_text("".join(tgt + "\n" for _, tgt in pairs))


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory):
    """Sources hold words ("ein", "junger") that no target holds."""
    root = tmp_path_factory.mktemp("vocab")
    write_pairs(root / "raw", "train", [("ein junger mann", "a young man"), ("ein hund", "a dog")])
    write_pairs(root / "raw", "valid", [("ein mann", "a man")])
    preprocess_data(root / "raw", root / "bin")
    return root / "bin"


def task_for(data_dir):
    return DiffuSeqTask.setup_task(DiffuSeqConfig(data=str(data_dir), source_lang="in", target_lang="out",
                                                  dataset_impl=None))


def test_target_words_are_the_specials_and_the_training_targets(data_bin):
    task = task_for(data_bin)
    words = [task.tgt_dict[i] for i in task.output_ids("target").tolist()]
    assert words == ["<s>", "<pad>", "</s>", "<unk>"] + sorted(["a", "young", "man", "dog"],
                                                               key=task.tgt_dict.index)
    assert task.output_ids("auto").tolist() == task.output_ids("target").tolist()
    assert task.output_ids("all") is None


def test_without_training_targets_auto_takes_all_words_and_target_is_an_error(data_bin, tmp_path):
    for name in ("dict.in.txt", "dict.out.txt", "valid.in-out.in.bin", "valid.in-out.in.idx"):
        (tmp_path / name).write_bytes((data_bin / name).read_bytes())
    task = task_for(tmp_path)
    assert task.output_ids("auto") is None
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} holds no train.in-out.out"):
        task.output_ids("target")
