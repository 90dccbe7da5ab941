"""The official model and test batch that dump_tensors.py and reverse_dump.py start from; official venv.

Both load a checkpoint as the official decoder (``sample_seq2seq.py``) does, read the first
``--examples`` pairs of the run's test split through the official data pipeline (tokenizer,
``merge_and_mask``, padding to seq_len), and write the same header into their dumps, so that the
plugin side (compare_dump.py, compare_reverse.py) reads the tokens and ids of both the same way.
"""
import argparse
import tempfile
from pathlib import Path
from typing import NamedTuple

from official_setup import launcher_environment, use_official


class OfficialBatch(NamedTuple):
    model: object  # the official model, in eval mode, without gradients
    diffusion: object
    run: argparse.Namespace  # the run's training_args.json over the official defaults
    tokenizer: object
    placeholder: object  # what load_data_text yields beside the batch (the loss reads only its shape)
    ids: object  # [B, seq_len] official ids
    mask: object  # [B, seq_len], 1 on the target span


def add_batch_options(parser: argparse.ArgumentParser, seed: int) -> None:
    """The options both dumps share (besides --version, which each explains)."""
    parser.add_argument("--checkpoint", required=True, type=Path)
    parser.add_argument("--data-dir", type=Path, help="jsonl folder (default: the run's data_dir)")
    parser.add_argument("--examples", type=int, default=6)
    parser.add_argument("--seed", type=int, default=seed)
    parser.add_argument("--out", required=True, type=Path)


def load_official(checkpoint: Path, data_dir):
    """(model in eval mode, diffusion, run arguments, tokenizer) as the official decoder builds them."""
    import json
    import torch
    from basic_utils import args_to_dict, create_model_and_diffusion, load_defaults_config, load_tokenizer

    saved = json.loads((checkpoint.parent / "training_args.json").read_text())
    run = argparse.Namespace(**{**load_defaults_config(), **saved})
    run.device = "cpu"  # v2 builds its schedule tensors on this device
    if data_dir is not None:
        run.data_dir = str(data_dir.resolve())
    model, diffusion = create_model_and_diffusion(**args_to_dict(run, load_defaults_config().keys()))
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    model.eval().requires_grad_(False)
    launcher_environment()  # the custom-vocabulary tokenizer reads LOCAL_RANK
    run.checkpoint_path = tempfile.mkdtemp(prefix="official-tokenizer-")  # the tokenizer saves itself there
    return model, diffusion, run, load_tokenizer(run)


def official_tokens(tokenizer, size: int):
    """The token of each official id."""
    if isinstance(tokenizer.tokenizer, dict):
        return [tokenizer.rev_tokenizer[i] for i in range(size)]
    return tokenizer.tokenizer.convert_ids_to_tokens(list(range(size)))


def first_batch(run, tokenizer, model, examples: int):
    import torch
    from diffuseq.text_datasets import load_data_text

    embedding = torch.nn.Embedding(tokenizer.vocab_size, run.hidden_dim, _weight=model.word_embedding.weight.clone())
    data = load_data_text(batch_size=examples, seq_len=run.seq_len, deterministic=True, data_args=run, split="test",
                          loaded_vocab=tokenizer, model_emb=embedding, loop=False)
    placeholder, cond = next(data)
    return placeholder, cond["input_ids"], cond["input_mask"]


def load_batch(args, version: str) -> OfficialBatch:
    """The official ``version``'s modules made importable, then its model and first test batch;
    ``args.checkpoint`` and ``args.out`` resolved first (use_official changes the directory)."""
    args.checkpoint, args.out = args.checkpoint.resolve(), args.out.resolve()
    data_dir = args.data_dir.resolve() if args.data_dir else None
    use_official(version)
    model, diffusion, run, tokenizer = load_official(args.checkpoint, data_dir)
    return OfficialBatch(model, diffusion, run, tokenizer, *first_batch(run, tokenizer, model, args.examples))


def dump_header(args, batch: OfficialBatch) -> dict:
    """What every dump holds: its origin, the official vocabulary by id, the batch and the schedule."""
    import numpy
    import torch

    return {
        "version": args.version, "checkpoint": str(args.checkpoint), "bert_vocab": batch.run.vocab == "bert",
        "tokens": official_tokens(batch.tokenizer, batch.tokenizer.vocab_size),
        "input_ids": batch.ids, "input_mask": batch.mask,
        "alphas_cumprod": torch.from_numpy(numpy.asarray(batch.diffusion.alphas_cumprod, dtype=numpy.float64)),
    }
