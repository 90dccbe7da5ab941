"""fairseq-train with every update recorded as train_tiny.py --record records the official loop's; plugin venv.

    .venv/bin/python benchmarks/official/fairseq_timed.py RECORD.json [--official-order BATCH] DATA_BIN --user-dir diffuseq_fairseq ...

Runs fairseq-train (its own ``cli_main``, the arguments after RECORD.json unchanged) with the
diffuseq task's ``train_step`` wrapped from outside: per update, the clock at its start
(``time.perf_counter``), its real tokens (source and target tokens of the batch, padding not
counted: the non-[PAD] positions of the official sequence ``[CLS] x [SEP] [SEP] [CLS] y [SEP]``
under --token-layout diffuseq) and the loss terms of the criterion's logging output per sentence:
its terms (unweighted), the official per-sentence loss mse + rounding_nll + tT (``loss``; the paper's
configuration: --rounding-loss-weight 1, no anchor loss) and the importance-weighted loss it trained
(``weighted_loss``).

With ``--official-order BATCH`` the training split is drawn in the official loader's order: its
DistributedSampler's permutation under its default seed 0 (the same for every official run), less the
first batch, which the official train.py draws and discards; give fairseq ``--curriculum 1`` and
``--batch-size BATCH`` so that it neither shuffles nor regroups those batches in the first epoch.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from diffuseq_fairseq.tasks.diffuseq import DiffuSeqTask

TERMS = ("loss", "mse", "rounding_nll", "tT", "anchor_nll")


def record_updates(path: Path) -> None:
    """Wrap DiffuSeqTask.train_step so that it appends each update to ``path`` (rewritten every time)."""
    train_step, updates = DiffuSeqTask.train_step, []

    def recorded(task, sample, model, criterion, optimizer, update_num, ignore_grad=False, **kwargs):
        start = time.perf_counter()
        loss, sample_size, logging_output = train_step(task, sample, model, criterion, optimizer, update_num,
                                                        ignore_grad, **kwargs)
        if not ignore_grad:  # fairseq's placeholder batches are no update
            pad = task.target_dictionary.pad()
            tokens = sample["net_input"]["src_lengths"].sum() + sample["target"].ne(pad).sum()
            terms = {key: float(logging_output[key]) / sample_size for key in TERMS if key in logging_output}
            # The criterion logs its terms unweighted and its loss weighted by the importance weights.
            terms["weighted_loss"] = terms.pop("loss")
            terms["loss"] = terms["mse"] + terms["rounding_nll"] + terms["tT"]
            updates.append({"start": start, "tokens": int(tokens), "terms": terms})
            path.write_text(json.dumps({"updates": updates}) + "\n")
        return loss, sample_size, logging_output

    DiffuSeqTask.train_step = recorded


def official_order(batch_size: int) -> None:
    """Make the training split's order the official loader's (see the module docstring)."""
    load_dataset = DiffuSeqTask.load_dataset

    def loaded(task, split, *args, **kwargs):
        result = load_dataset(task, split, *args, **kwargs)
        if split == task.cfg.train_subset:
            dataset = task.datasets[split]
            order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0)).numpy()
            order = np.roll(order, -batch_size)
            dataset.ordered_indices = lambda: order
        return result

    DiffuSeqTask.load_dataset = loaded


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit(__doc__)
    record_updates(Path(argv[0]))
    if len(argv) > 2 and argv[1] == "--official-order":
        official_order(int(argv[2]))
        argv = argv[:1] + argv[3:]
    from fairseq_cli import train

    sys.argv = ["fairseq-train", *argv[1:]]
    train.cli_main()


if __name__ == "__main__":
    main()
