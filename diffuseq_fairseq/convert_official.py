"""``diffuseq-convert-official``: an official DiffuSeq checkpoint as a fairseq checkpoint of this plugin.

    diffuseq-convert-official diffusion_models/RUN/ema_0.9999_050000.pt converted/

reads the checkpoint (``ema_*.pt`` or ``model*.pt`` of DiffuSeq v1 or v2) with the
``training_args.json`` and the vocabulary that the official code writes beside it, and writes
``converted/checkpoint.pt`` (the plugin's ``diffuseq`` model, its config carrying the official run's
T, schedule, sizes, ``seq_len`` canvas and token layout) and ``converted/dict.src.txt`` = ``dict.tgt.txt``.

Vocabulary. The official ids become fairseq's: the start, pad, end and unknown symbols
([START]/[CLS], [PAD], [END]/[SEP], [UNK]) become ``<s> <pad> </s> <unk>`` (ids 0-3), every other
token keeps its order after them; the embedding and lm_head bias rows are permuted to match.
With ``--vocab bert`` runs (the paper's), the dictionary is the WordPiece ``vocab.txt``: text must
be tokenized into its pieces (lowercased, ``##`` continuations, as the BERT tokenizer does) before
fairseq-preprocess or fairseq-interactive, and the output joined back (`` ##`` removed).

Embedding. The official EMA checkpoints hold the averaged ``word_embedding.weight`` and, under the
tied ``lm_head.weight``, the raw training weights; ``load_state_dict`` copies ``lm_head.weight``
last, so the official decoder runs with the raw embedding. The conversion takes the same tensor.
"""
import argparse
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from diffuseq_fairseq.official_vocabulary import (FAIRSEQ_SPECIALS, ConversionError, OfficialVocabulary, read_json,
                                                  read_vocabulary)

logger = logging.getLogger(__name__)

# What an official run with --config_name bert-base-uncased (the paper's) builds; other hub names
# cannot be read offline and need --bert-config.
BERT_BASE = {"num_hidden_layers": 12, "hidden_size": 768, "num_attention_heads": 12, "intermediate_size": 3072,
             "hidden_act": "gelu", "layer_norm_eps": 1e-12, "attention_probs_dropout_prob": 0.1,
             "max_position_embeddings": 512}
KNOWN_BERT_CONFIGS = {"bert-base-uncased": BERT_BASE, "bert-base-cased": BERT_BASE}
PLUGIN_LAYER_NORM_EPS = 1e-12  # transformer_stack.py and the input LayerNorm
PLUGIN_SCHEDULES = ("sqrt", "linear", "cosine")  # the same formulas as the official schedules of these names
LAYER_KEY = re.compile(r"input_transformers\.layer\.(\d+)\.(.+)$")
LAYER_PARTS = {  # official BertLayer parameter -> plugin EncoderLayer parameter
    "attention.output.dense": "out_proj", "attention.output.LayerNorm": "attn_norm",
    "intermediate.dense": "fc1", "output.dense": "fc2", "output.LayerNorm": "ffn_norm",
}
TOP_LEVEL = {  # official key -> plugin key (both without the parameter suffix)
    "time_embed.0": "network.time_embed.0", "time_embed.2": "network.time_embed.2",
    "input_up_proj.0": "network.input_up_proj.0", "input_up_proj.2": "network.input_up_proj.2",
    "output_down_proj.0": "network.output_down_proj.0", "output_down_proj.2": "network.output_down_proj.2",
    "position_embeddings": "network.embed_positions", "LayerNorm": "network.input_norm",
}


@dataclass
class OfficialRun:
    """What the conversion reads: the state dict, the run's arguments and its BERT config."""

    checkpoint: Path
    state: Dict[str, torch.Tensor]
    args_path: Path
    args: dict
    bert: dict


def read_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    """The official checkpoint: a plain state dict of tensors (loaded with weights_only)."""
    if not path.is_file():
        raise ConversionError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged or refused pickles
        raise ConversionError(f"{path}: cannot be read as a torch state dict ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConversionError(f"{path}: expected a state dict of tensors (the official ema_*.pt / model*.pt)")
    return {key: value.detach() for key, value in state.items()}


def read_bert_config(args: dict, args_path: Path, given: Optional[Path]) -> dict:
    """The BERT config the official model was built from (--config_name): given, the run's local
    folder, or a known hub name."""
    name = str(args.get("config_name", ""))
    if given is not None:
        path = given / "config.json" if given.is_dir() else given
    elif Path(name, "config.json").is_file():
        path = Path(name, "config.json")
    elif name in KNOWN_BERT_CONFIGS:
        return dict(KNOWN_BERT_CONFIGS[name])
    else:
        raise ConversionError(
            f"{args_path}: config_name {name!r} is neither a local folder with config.json nor a known name "
            f"({', '.join(KNOWN_BERT_CONFIGS)}): give its config.json with --bert-config (the number of attention "
            "heads cannot be read from the weights)"
        )
    config = read_json(path, "BERT config")
    absent = [key for key in ("num_attention_heads", "hidden_size") if key not in config]
    if absent:
        raise ConversionError(f"{path}: BERT config without {', '.join(absent)}")
    return {**BERT_BASE, **config, "_path": str(path)}


def _shape_error(run: OfficialRun, key: str, shape, expected, because: str) -> ConversionError:
    return ConversionError(f"{run.checkpoint}: key {key} has shape {tuple(shape)}, expected {tuple(expected)} "
                           f"({because})")


def projected(run: OfficialRun) -> bool:
    """The official model projects between its embedding space and the stack unless their sizes match."""
    return int(run.bert["hidden_size"]) != int(run.args["hidden_dim"])


def check_run(run: OfficialRun, vocab: OfficialVocabulary) -> None:
    """Shapes against training_args.json and the BERT config; settings the plugin cannot express."""
    args, bert, state, where = run.args, run.bert, run.state, run.args_path
    needed_keys = ["word_embedding.weight", "lm_head.weight", "lm_head.bias", "time_embed.0.weight",
                   "position_embeddings.weight"] + (["input_up_proj.0.weight"] if projected(run) else [])
    for key in needed_keys:
        if key not in state:
            raise ConversionError(f"{run.checkpoint}: missing key {key}")
    for key, needed in (("learn_sigma", False), ("predict_xstart", True), ("rescale_timesteps", True)):
        if args.get(key, needed) != needed:
            raise ConversionError(f"{where}: {key} = {args[key]!r}; the plugin's model needs {needed!r}")
    if args.get("timestep_respacing") not in ("", None):
        raise ConversionError(f"{where}: timestep_respacing = {args['timestep_respacing']!r}: a respaced training "
                              "chain is not supported")
    if args.get("noise_schedule") not in PLUGIN_SCHEDULES:
        raise ConversionError(f"{where}: noise_schedule = {args.get('noise_schedule')!r}; the plugin has "
                              f"{', '.join(PLUGIN_SCHEDULES)}")
    if bert.get("hidden_act") != "gelu" or float(bert.get("layer_norm_eps")) != PLUGIN_LAYER_NORM_EPS:
        raise ConversionError(f"{bert.get('_path', where)}: hidden_act {bert.get('hidden_act')!r}, layer_norm_eps "
                              f"{bert.get('layer_norm_eps')}: the plugin's network has exact GELU and eps "
                              f"{PLUGIN_LAYER_NORM_EPS}")
    rows, latent = state["word_embedding.weight"].shape
    hidden, time_dim = int(bert["hidden_size"]), args.get("hidden_t_dim", latent)
    expected = {
        "word_embedding.weight": ((args.get("vocab_size", rows), args.get("hidden_dim")), "vocab_size, hidden_dim"),
        "lm_head.weight": ((rows, latent), "tied to word_embedding.weight"),
        "lm_head.bias": ((rows,), "vocab_size"),
        "time_embed.0.weight": ((4 * time_dim, time_dim), "4 hidden_t_dim, hidden_t_dim"),
        "input_up_proj.0.weight": ((hidden, latent), "hidden_size of the BERT config, hidden_dim"),
        "mean_embed": ((latent,), "hidden_dim"),
    }
    for key, (shape, because) in expected.items():
        if key in state and tuple(state[key].shape) != tuple(shape):
            raise _shape_error(run, key, state[key].shape, shape, because)
    if bool(args.get("learned_mean_embed", False)) != ("mean_embed" in state):
        raise ConversionError(f"{run.checkpoint}: learned_mean_embed is {args.get('learned_mean_embed', False)} in "
                              f"{where} but the key mean_embed is {'present' if 'mean_embed' in state else 'missing'}")
    if int(args.get("seq_len", 0)) > state["position_embeddings.weight"].shape[0]:
        raise ConversionError(f"{where}: seq_len {args['seq_len']} exceeds the "
                              f"{state['position_embeddings.weight'].shape[0]} position embeddings")
    if len(vocab.tokens) != rows:
        raise ConversionError(f"{vocab.path}: {len(vocab.tokens)} tokens, but key word_embedding.weight of "
                              f"{run.checkpoint} has {rows} rows")


def _layer_count(run: OfficialRun) -> int:
    layers = {int(m.group(1)) for m in map(LAYER_KEY.match, run.state) if m}
    count = len(layers)
    if layers != set(range(count)) or count != int(run.bert["num_hidden_layers"]):
        raise ConversionError(f"{run.checkpoint}: transformer layers {sorted(layers)}, but the BERT config "
                              f"{run.bert.get('_path', run.args.get('config_name'))} has num_hidden_layers "
                              f"{run.bert['num_hidden_layers']}")
    return count


def map_weights(run: OfficialRun, order: List[int]):
    """The plugin's parameters from the official state dict (word rows in fairseq order), and for
    each the official key it comes from."""
    state, rows = run.state, torch.tensor(order)
    # The embedding is the tensor the official model ends up with (see the module docstring).
    sources = {"network.embed_tokens.weight": "lm_head.weight", "network.output_bias": "lm_head.bias"}
    if "mean_embed" in state:
        sources["network.mean_embed"] = "mean_embed"
    for old, new in TOP_LEVEL.items():
        if "_proj." in old and not projected(run):  # the plugin's --identity-projections
            continue
        suffixes = ("weight",) if old == "position_embeddings" else ("weight", "bias")
        sources.update({f"{new}.{suffix}": f"{old}.{suffix}" for suffix in suffixes})
    for layer in range(_layer_count(run)):
        prefix, target = f"input_transformers.layer.{layer}.", f"network.encoder.layers.{layer}."
        for suffix in ("weight", "bias"):
            sources[f"{target}qkv.{suffix}"] = tuple(f"{prefix}attention.self.{name}.{suffix}"
                                                    for name in ("query", "key", "value"))
            sources.update({f"{target}{new}.{suffix}": f"{prefix}{old}.{suffix}" for old, new in LAYER_PARTS.items()})
    needed = [key for keys in sources.values() for key in ((keys,) if isinstance(keys, str) else keys)]
    absent = [key for key in needed if key not in state]
    if absent:
        raise ConversionError(f"{run.checkpoint}: missing key {absent[0]}")
    unknown = sorted(set(state) - set(needed) - {"word_embedding.weight", "position_ids"})
    if unknown:
        raise ConversionError(f"{run.checkpoint}: unknown key {unknown[0]}" + (
            f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "") + ": not a DiffuSeq TransformerNetModel")
    mapped = {new: torch.cat([state[key] for key in old]) if isinstance(old, tuple) else state[old]
              for new, old in sources.items()}
    for key in ("network.embed_tokens.weight", "network.output_bias"):
        mapped[key] = mapped[key][rows]
    return mapped, sources


def fairseq_arguments(run: OfficialRun, out_dir: Path) -> List[str]:
    """fairseq-train options that rebuild the official run's model, task and training chain: the
    full ``seq_len`` canvas, the official token layout, loss over all positions, and its optimizer
    and linear decay."""
    args, bert, state = run.args, run.bert, run.state
    seq_len = str(args["seq_len"])
    sampler = args.get("schedule_sampler", "lossaware")
    if sampler not in ("lossaware", "uniform"):
        logger.warning("%s: schedule_sampler %r has no plugin equivalent; the converted config says lossaware "
                       "(it only matters to further training)", run.args_path, sampler)
        sampler = "lossaware"
    steps = str(max(int(args.get("learning_steps", 0)), 1))
    flags = [
        str(out_dir), "--task", "diffuseq", "--source-lang", "src", "--target-lang", "tgt",
        "--max-total-len", seq_len, "--canvas-len-a", "0", "--canvas-len-b", seq_len, "--token-layout", "diffuseq",
        "--arch", "diffuseq_base", "--encoder-layers", str(bert["num_hidden_layers"]),
        "--encoder-embed-dim", str(bert["hidden_size"]), "--encoder-attention-heads", str(bert["num_attention_heads"]),
        "--encoder-ffn-embed-dim", str(state["input_transformers.layer.0.intermediate.dense.weight"].shape[0]),
        "--latent-dim", str(args["hidden_dim"]), "--dropout", str(args.get("dropout", 0.1)),
        "--attention-dropout", str(bert.get("attention_probs_dropout_prob", 0.1)),
        "--max-positions", str(state["position_embeddings.weight"].shape[0]),
        "--num-timesteps", str(args["diffusion_steps"]), "--noise-schedule", args["noise_schedule"],
        "--criterion", "diffuseq_loss", "--loss-positions", "all", "--timestep-sampler", sampler,
        "--optimizer", "adamw", "--adam-betas", "(0.9, 0.999)", "--adam-eps", "1e-08",
        "--weight-decay", str(args.get("weight_decay", 0.0)), "--lr", str(args.get("lr", 1e-4)),
        "--lr-scheduler", "polynomial_decay", "--total-num-update", steps, "--max-update", steps,
        "--batch-size", str(args.get("batch_size", 64)), "--seed", str(args.get("seed", 1)),
    ]
    time_dim = state["time_embed.0.weight"].shape[1]
    if time_dim != int(args["hidden_dim"]):
        flags += ["--time-embed-dim", str(time_dim)]
    if not projected(run):
        flags.append("--identity-projections")
    if args.get("learned_mean_embed"):
        flags.append("--learned-mean-embed")
    if args.get("denoise"):  # v2's discrete noise, the same rule as the plugin's absorbing
        flags += ["--absorb-rate", str(args.get("denoise_rate", 0.2))]
    return flags


def build_checkpoint(run: OfficialRun, mapped: Dict[str, torch.Tensor], sources: dict, out_dir: Path) -> dict:
    """A fairseq checkpoint of the plugin's model holding the mapped weights, built and loaded
    through fairseq itself (so fairseq-generate can load it); needs the dictionaries in out_dir."""
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    namespace = options.parse_args_and_arch(options.get_training_parser(), fairseq_arguments(run, out_dir))
    with warnings.catch_warnings():  # hydra's deprecation notices about fairseq's own config code
        warnings.simplefilter("ignore", UserWarning)
        cfg = convert_namespace_to_omegaconf(namespace)
    model = tasks.setup_task(cfg.task).build_model(cfg.model)
    expected = model.state_dict()
    for key, tensor in mapped.items():
        if key not in expected or expected[key].shape != tensor.shape:
            shape = tuple(expected[key].shape) if key in expected else "nothing"
            raise ConversionError(f"{run.checkpoint}: key {sources[key]} has shape {tuple(tensor.shape)}; the "
                                  f"plugin's model built from {run.args_path} and the BERT config needs {shape}")
    unfilled = [key for key in expected if key not in mapped and not key.startswith("network.timestep_loss_")]
    if unfilled:
        raise ConversionError(f"{run.checkpoint}: no official weight for the plugin's {unfilled[0]}")
    model.load_state_dict({**expected, **mapped}, strict=True)  # sampler history stays empty, as on a new run
    return {
        "cfg": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "model": model.state_dict(),
        "criterion": {},
        "optimizer_history": [{"criterion_name": "DiffuSeqLoss", "optimizer_name": "FairseqAdam",
                               "lr_scheduler_state": {"best": None}, "num_updates": 0}],
        "task_state": {},
        "extra_state": {"train_iterator": {"epoch": 1}, "converted_from": str(run.checkpoint)},
        "last_optimizer_state": None,
    }


def _write_atomically(path: Path, write) -> None:
    temporary = path.with_name(path.name + ".tmp")
    write(temporary)
    os.replace(temporary, path)


def convert(checkpoint: Path, out_dir: Path, training_args: Optional[Path] = None, vocab: Optional[Path] = None,
            bert_config: Optional[Path] = None) -> dict:
    """Write out_dir/checkpoint.pt, dict.src.txt and dict.tgt.txt; returns a summary."""
    args_path = training_args or checkpoint.parent / "training_args.json"
    args = read_json(args_path, "training arguments")
    for key in ("seq_len", "hidden_dim", "diffusion_steps", "noise_schedule", "vocab"):
        if key not in args:
            raise ConversionError(f"{args_path}: missing key {key}")
    is_bert = args["vocab"] == "bert"
    vocabulary = read_vocabulary(vocab or checkpoint.parent / ("vocab.txt" if is_bert else "vocab.json"), is_bert)
    run = OfficialRun(checkpoint, read_state_dict(checkpoint), args_path, args,
                      read_bert_config(args, args_path, bert_config))
    check_run(run, vocabulary)
    order = vocabulary.fairseq_order()
    mapped, sources = map_weights(run, order)
    out_dir.mkdir(parents=True, exist_ok=True)
    words = "".join(f"{vocabulary.tokens[i]} 1\n" for i in order[len(FAIRSEQ_SPECIALS):])
    for side in ("src", "tgt"):
        _write_atomically(out_dir / f"dict.{side}.txt", lambda path: path.write_text(words, encoding="utf-8"))
    state = build_checkpoint(run, mapped, sources, out_dir)
    _write_atomically(out_dir / "checkpoint.pt", lambda path: torch.save(state, path))
    raw, ema = run.state["lm_head.weight"], run.state["word_embedding.weight"]
    return {
        "checkpoint": str(out_dir / "checkpoint.pt"), "version": "v2" if "learned_mean_embed" in args else "v1",
        "vocabulary": str(vocabulary.path), "words": len(order), "bert_vocabulary": is_bert,
        "layers": state["cfg"]["model"]["encoder_layers"], "hidden": state["cfg"]["model"]["encoder_embed_dim"],
        "latent": args["hidden_dim"], "diffusion_steps": args["diffusion_steps"], "seq_len": args["seq_len"],
        "embedding_ema_difference": float((raw - ema).abs().max()),
    }


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="diffuseq-convert-official", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="official ema_*.pt or model*.pt")
    parser.add_argument("out_dir", type=Path, help="folder for checkpoint.pt, dict.src.txt and dict.tgt.txt")
    parser.add_argument("--training-args", type=Path, help="training_args.json (default: beside the checkpoint)")
    parser.add_argument("--vocab", type=Path, help="vocab.json of the run, its --vocab file, or (--vocab bert runs) "
                        "the tokenizer's vocab.txt (default: beside the checkpoint)")
    parser.add_argument("--bert-config", type=Path, help="config.json (or its folder) of the run's --config_name, "
                        "when that is not a local folder any more (not needed for bert-base-uncased)")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s: %(message)s")
    logging.getLogger().setLevel(os.environ.get("LOGLEVEL", "WARNING").upper())  # fairseq's import sets DEBUG
    try:
        summary = convert(args.checkpoint, args.out_dir, args.training_args, args.vocab, args.bert_config)
    except ConversionError as err:
        parser.exit(2, f"diffuseq-convert-official: error: {err}\n")
    print(f"wrote {summary['checkpoint']} (DiffuSeq {summary['version']}: {summary['layers']} layers, d={summary['hidden']}, "
          f"embedding {summary['latent']}, T={summary['diffusion_steps']}, seq_len {summary['seq_len']}) and "
          f"{args.out_dir}/dict.src.txt, dict.tgt.txt ({summary['words']} words)")
    if summary["embedding_ema_difference"] > 0:
        print(f"note: lm_head.weight differs from the EMA word_embedding.weight by up to "
              f"{summary['embedding_ema_difference']:.3g}; converted lm_head.weight, which the official code decodes with")
    if summary["bert_vocabulary"]:
        print(f"note: WordPiece vocabulary: tokenize input text into the pieces of {summary['vocabulary']} first")


if __name__ == "__main__":
    main()
