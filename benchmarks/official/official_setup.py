"""Run the official DiffuSeq code (read-only, in ../shared/peers) inside the official venv.

Imported by the runners of this folder, which run with the interpreter that
``scripts/official_env.sh`` builds (``.official-venv/bin/python``); the plugin's venv never
imports this. The official modules are imported from the peers folder at run time, never copied.
What this module changes is only their environment: sys.path, the working directory (the official
code reads ``diffuseq/config.json`` relative to it), offline Hugging Face and disabled wandb, and
``numpy.int`` (removed in numpy 1.24, used by v1's ``step_sample.py``).
"""
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VERSIONS = {"v1": "DiffuSeq-v1", "v2": "DiffuSeq-v2"}
OFFLINE_ENV = {
    "WANDB_MODE": "disabled",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def peers_dir() -> Path:
    """The folder holding DiffuSeq-v1/ and DiffuSeq-v2/ (env DIFFUSEQ_PEERS, default ../shared/peers)."""
    return Path(os.environ.get("DIFFUSEQ_PEERS", REPO.parent / "shared" / "peers")).resolve()


def use_official(version: str) -> Path:
    """Make ``import train, basic_utils, diffuseq...`` load the official ``version`` (v1 or v2)."""
    if version not in VERSIONS:
        raise SystemExit(f"unknown official version {version!r}; choose {' or '.join(VERSIONS)}")
    code = peers_dir() / VERSIONS[version]
    if not (code / "train.py").is_file():
        raise SystemExit(f"{code}/train.py not found: set DIFFUSEQ_PEERS to the folder holding {VERSIONS[version]}/")
    import numpy

    numpy.int = int
    os.environ.update(OFFLINE_ENV)
    sys.path.insert(0, str(code))
    os.chdir(code)
    return code


def launcher_environment() -> None:
    """The variables ``torch.distributed.launch --use_env`` gives a single process (the official
    scripts are started that way; v2's sampler reads LOCAL_RANK before setting anything up)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for key, value in (("LOCAL_RANK", "0"), ("RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1"),
                       ("MASTER_PORT", str(port))):
        os.environ.setdefault(key, value)


def write_bert_config(folder: Path, layers: int, hidden: int, heads: int, ffn: int, dropout: float = 0.1,
                      bert_vocab: Path = None) -> Path:
    """A local folder for ``--config_name``: a BERT ``config.json`` of the given size and, for
    ``--vocab bert``, the WordPiece ``vocab.txt`` the tokenizer is built from."""
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": "bert", "architectures": ["BertModel"], "hidden_size": hidden,
        "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": ffn,
        "hidden_act": "gelu", "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout,
        "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "vocab_size": 30522, "pad_token_id": 0,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if bert_vocab is not None:
        (folder / "vocab.txt").write_text(Path(bert_vocab).read_text(encoding="utf-8"), encoding="utf-8")
        (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}) + "\n")
    return folder


class ModuleHolder:
    """Stands in for the DistributedDataParallel wrapper that ``training_losses_seq2seq`` expects
    (it reads ``model.model.module``), without a process group; records the model's last call."""

    def __init__(self, module):
        self.module = module
        self.mean_embed = getattr(module, "mean_embed", None)  # v2's _WrappedModel reads it
        self.calls = []

    def __call__(self, x, timesteps, **kwargs):
        out = self.module(x, timesteps, **kwargs)
        self.calls.append((x.detach().clone(), timesteps.detach().clone(), out.detach().clone()))
        return out

    def parameters(self):
        return self.module.parameters()
