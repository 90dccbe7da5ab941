"""--batch-order: fairseq's batches of pairs of similar length (default), or batches drawn at random
as the official DiffuSeq loader draws them (the paper's padded canvas), reproducible under --seed."""
import numpy as np
import pytest
from fairseq import options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

from fairseq_harness import USER_DIR, create_dummy_data, preprocess_data


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    create_dummy_data(root / "raw", num_train=200, num_valid=8)
    preprocess_data(root / "raw", root / "bin")
    return root / "bin"


def task_of(data_bin, *flags):
    args = options.parse_args_and_arch(options.get_training_parser(), [
        str(data_bin), "--user-dir", USER_DIR, "--task", "diffuseq", "--arch", "diffuseq_tiny",
        "--criterion", "diffuseq_loss", *flags])
    return tasks.setup_task(convert_namespace_to_omegaconf(args).task)


def training_batches(data_bin, *flags, seed=1):
    """The first epoch's batches (lists of pair ids) as fairseq-train builds them, in the order trained."""
    task = task_of(data_bin, *flags)
    task.load_dataset("train")
    iterator = task.get_batch_iterator(task.dataset("train"), max_sentences=16, seed=seed, epoch=1)
    return task.dataset("train"), [batch["id"].tolist() for batch in iterator.next_epoch_itr(shuffle=True)]


def spread(dataset, batch):
    sizes = dataset.src_sizes[batch]
    return int(sizes.max() - sizes.min())


def test_by_default_a_batch_holds_pairs_of_similar_length(data_bin):
    dataset, batches = training_batches(data_bin)
    assert sorted(i for batch in batches for i in batch) == list(range(len(dataset)))
    assert max(spread(dataset, batch) for batch in batches) <= 1  # 200 pairs over 10 source lengths


def test_random_batches_mix_lengths_and_still_cover_the_split_once(data_bin):
    dataset, batches = training_batches(data_bin, "--batch-order", "random")
    assert sorted(i for batch in batches for i in batch) == list(range(len(dataset)))
    assert np.mean([spread(dataset, batch) for batch in batches]) >= 5  # lengths 3..12 drawn at random


def test_random_batches_follow_the_seed(data_bin):
    assert training_batches(data_bin, "--batch-order", "random", seed=1)[1] == \
        training_batches(data_bin, "--batch-order", "random", seed=1)[1]
    assert training_batches(data_bin, "--batch-order", "random", seed=1)[1] != \
        training_batches(data_bin, "--batch-order", "random", seed=2)[1]


def test_only_the_training_split_is_reordered(data_bin):
    task = task_of(data_bin, "--batch-order", "random")
    task.load_dataset("valid")
    order = task.dataset("valid").ordered_indices()
    assert list(task.dataset("valid").src_sizes[order]) == sorted(task.dataset("valid").src_sizes)
