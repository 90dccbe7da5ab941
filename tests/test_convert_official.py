"""diffuseq-convert-official on synthetic official checkpoints: the mapping, the carried facts,
fairseq decoding of the result, and a clear error for each kind of bad input.

The synthetic state dicts have exactly the keys and shapes the official ``TransformerNetModel``
saves; tests/test_official_parity.py (slow) converts checkpoints the official code itself wrote
and compares the numbers.
"""
import json
from pathlib import Path

import pytest
import torch
from fairseq import checkpoint_utils, options
from fairseq_cli import preprocess

from diffuseq_fairseq.convert_official import ConversionError, convert, main
from fairseq_harness import DIFFUSEQ_DECODE_FLAGS, FULL_BATCHES, generate_main, interactive_main, parse_output

WORDS = ["the", "cat", "dog", "sees", "a", "red", "park", "in"]
WORDPIECE = ["[PAD]", "[unused0]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "walk", "##ing", "in", "park"]
LATENT, HIDDEN, FFN, LAYERS, SEQ_LEN, STEPS = 8, 16, 32, 2, 16, 50


def official_state(vocab_size: int, mean_embed: bool = False, latent: int = LATENT, time_dim: int = LATENT) -> dict:
    """Keys and shapes of the official model's state dict (random values); no projections when
    ``latent`` (hidden_dim) equals the stack's size, as the official model builds it."""
    g = torch.Generator().manual_seed(0)
    r = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    state = {"position_ids": torch.arange(512)[None], "word_embedding.weight": r(vocab_size, latent)}
    # As in official EMA files: lm_head.weight holds the raw weights, word_embedding.weight the EMA.
    state["lm_head.weight"] = state["word_embedding.weight"] + 0.01 * r(vocab_size, latent)
    state["lm_head.bias"] = r(vocab_size)
    shapes = {"time_embed.0": (4 * time_dim, time_dim), "time_embed.2": (HIDDEN, 4 * time_dim), "LayerNorm": (HIDDEN,)}
    if latent != HIDDEN:
        shapes.update({"input_up_proj.0": (HIDDEN, latent), "input_up_proj.2": (HIDDEN, HIDDEN),
                       "output_down_proj.0": (HIDDEN, HIDDEN), "output_down_proj.2": (latent, HIDDEN)})
    for layer in range(LAYERS):
        prefix = f"input_transformers.layer.{layer}."
        shapes.update({prefix + name: (HIDDEN, HIDDEN) for name in
                       ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense")})
        shapes.update({prefix + "attention.output.LayerNorm": (HIDDEN,), prefix + "output.LayerNorm": (HIDDEN,),
                       prefix + "intermediate.dense": (FFN, HIDDEN), prefix + "output.dense": (HIDDEN, FFN)})
    for name, shape in shapes.items():
        state[f"{name}.weight"], state[f"{name}.bias"] = r(*shape), r(shape[0])
    state["position_embeddings.weight"] = r(512, HIDDEN)
    if mean_embed:
        state["mean_embed"] = r(latent) * latent**-0.5
    return state


def write_run(folder: Path, bert: bool = False, v2: bool = False, latent: int = LATENT, time_dim: int = LATENT,
              **arg_changes) -> Path:
    """An official run folder: ema checkpoint, training_args.json, BERT config and vocabulary."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "bert-config"
    config.mkdir(exist_ok=True)
    (config / "config.json").write_text(json.dumps({
        "model_type": "bert", "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": 2,
        "intermediate_size": FFN, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
        "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512}))
    if bert:
        (folder / "vocab.txt").write_text("".join(f"{piece}\n" for piece in WORDPIECE))
        size = len(WORDPIECE)
    else:
        tokens = ["[START]", "[END]", "[UNK]", "[PAD]"] + WORDS
        (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(tokens)}))
        size = len(tokens)
    args = {"seq_len": SEQ_LEN, "hidden_dim": latent, "hidden_t_dim": time_dim, "vocab_size": size,
            "diffusion_steps": STEPS, "noise_schedule": "sqrt", "vocab": "bert" if bert else "/old/vocab.txt",
            "config_name": str(config), "dropout": 0.1, "lr": 1e-4, "learning_steps": 1000, "batch_size": 64,
            "seed": 102, "schedule_sampler": "lossaware", "timestep_respacing": "", "learn_sigma": False,
            "predict_xstart": True, "rescale_timesteps": True, "use_plm_init": "no"}
    if v2:
        args.update(learned_mean_embed=True, denoise=True, denoise_rate=0.5)
    args.update(arg_changes)
    (folder / "training_args.json").write_text(json.dumps(args))
    checkpoint = folder / "ema_0.9999_000010.pt"
    torch.save(official_state(size, mean_embed=v2, latent=latent, time_dim=time_dim), checkpoint)
    return checkpoint


def load_converted(out: Path):
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(out / "checkpoint.pt")], arg_overrides={"data": str(out)})
    return models[0], cfg, task.target_dictionary


def test_custom_vocabulary_becomes_fairseq_ids_with_rows_permuted(tmp_path):
    checkpoint = write_run(tmp_path / "run")
    convert(checkpoint, tmp_path / "out")
    official = torch.load(checkpoint, weights_only=True)
    model, _, dictionary = load_converted(tmp_path / "out")
    network = model.network
    tokens = ["[START]", "[END]", "[UNK]", "[PAD]"] + WORDS
    fairseq_ids = {"[START]": dictionary.bos(), "[END]": dictionary.eos(), "[UNK]": dictionary.unk(),
                   "[PAD]": dictionary.pad(), **{w: dictionary.index(w) for w in WORDS}}
    assert len(dictionary) == len(tokens) and dictionary.unk() not in [fairseq_ids[w] for w in WORDS]
    for official_id, token in enumerate(tokens):
        row = fairseq_ids[token]
        # lm_head.weight, the tensor the official model loads last (not the EMA word_embedding.weight)
        assert torch.equal(network.embed_tokens.weight[row], official["lm_head.weight"][official_id])
        assert torch.equal(network.output_bias[row], official["lm_head.bias"][official_id])


def test_layers_and_run_facts_are_carried(tmp_path):
    checkpoint = write_run(tmp_path / "run")
    convert(checkpoint, tmp_path / "out")
    official = torch.load(checkpoint, weights_only=True)
    model, cfg, _ = load_converted(tmp_path / "out")
    layer, prefix = model.network.encoder.layers[1], "input_transformers.layer.1."
    qkv = torch.cat([official[prefix + f"attention.self.{n}.weight"] for n in ("query", "key", "value")])
    assert torch.equal(layer.qkv.weight, qkv)
    assert torch.equal(layer.fc1.bias, official[prefix + "intermediate.dense.bias"])
    assert torch.equal(layer.ffn_norm.weight, official[prefix + "output.LayerNorm.weight"])
    assert torch.equal(model.network.embed_positions.weight, official["position_embeddings.weight"])
    assert torch.equal(model.network.output_down_proj[2].weight, official["output_down_proj.2.weight"])
    assert (cfg.model.num_timesteps, cfg.model.noise_schedule, cfg.model.encoder_attention_heads) == (STEPS, "sqrt", 2)
    assert (cfg.model.latent_dim, cfg.model.encoder_layers, cfg.model.encoder_ffn_embed_dim) == (LATENT, LAYERS, FFN)
    assert (cfg.task.max_total_len, cfg.task.canvas_len_a, cfg.task.canvas_len_b) == (SEQ_LEN, 0, SEQ_LEN)
    assert (cfg.model.canvas_len_a, cfg.model.canvas_len_b) == (0, SEQ_LEN)
    assert cfg.task.token_layout == cfg.model.token_layout == "diffuseq"
    assert cfg.criterion.loss_positions == "all" and not cfg.model.learned_mean_embed
    assert cfg.optimizer._name == "adamw" and cfg.optimizer.weight_decay == 0.0  # the official torch AdamW


def test_bert_vocabulary_maps_cls_sep_pad_unk(tmp_path):
    checkpoint = write_run(tmp_path / "run", bert=True)
    convert(checkpoint, tmp_path / "out")
    official = torch.load(checkpoint, weights_only=True)["lm_head.weight"]
    network, _, dictionary = load_converted(tmp_path / "out")
    specials = {"[CLS]": dictionary.bos(), "[SEP]": dictionary.eos(), "[PAD]": dictionary.pad(), "[UNK]": dictionary.unk()}
    for official_id, piece in enumerate(WORDPIECE):
        row = specials.get(piece, dictionary.index(piece))
        assert torch.equal(network.network.embed_tokens.weight[row], official[official_id]), piece
    assert dictionary.index("##ing") != dictionary.unk() and dictionary.index("[MASK]") != dictionary.unk()


def test_v2_soft_absorbing_state_and_discrete_noise(tmp_path):
    checkpoint = write_run(tmp_path / "run", v2=True)
    convert(checkpoint, tmp_path / "out")
    model, cfg, _ = load_converted(tmp_path / "out")
    assert cfg.model.learned_mean_embed and cfg.model.absorb_rate == 0.5
    assert torch.equal(model.network.mean_embed, torch.load(checkpoint, weights_only=True)["mean_embed"])


def test_other_step_embedding_size_and_no_projections(tmp_path):
    """hidden_t_dim != hidden_dim, and hidden_dim = the stack's size (the official model then has no
    projections): the plugin's --time-embed-dim and --identity-projections."""
    checkpoint = write_run(tmp_path / "run", latent=HIDDEN, time_dim=12)
    convert(checkpoint, tmp_path / "out")
    model, cfg, _ = load_converted(tmp_path / "out")
    assert cfg.model.time_embed_dim == 12 and cfg.model.identity_projections
    official = torch.load(checkpoint, weights_only=True)
    assert torch.equal(model.network.time_embed[0].weight, official["time_embed.0.weight"])


def test_fairseq_generate_and_interactive_decode_a_converted_checkpoint(tmp_path):
    out = tmp_path / "out"
    convert(write_run(tmp_path / "run"), out)
    text = tmp_path / "text"
    text.mkdir()
    for side, lines in (("src", ["the cat sees a dog", "a red dog in the park"]), ("tgt", ["a dog", "the park"])):
        (text / f"test.{side}").write_text("".join(line + "\n" for line in lines))
    preprocess.main(options.get_preprocessing_parser().parse_args([
        "--source-lang", "src", "--target-lang", "tgt", "--testpref", str(text / "test"), "--destdir",
        str(tmp_path / "bin"), "--srcdict", str(out / "dict.src.txt"), "--tgtdict", str(out / "dict.tgt.txt"),
        "--workers", "1"]))
    decode = DIFFUSEQ_DECODE_FLAGS + FULL_BATCHES
    generated = parse_output(generate_main(tmp_path / "bin", out / "checkpoint.pt",
                                           decode + ["--gen-subset", "test", "--batch-size", "2"]))
    assert sorted(generated["H"]) == ["0", "1"]
    words = set(WORDS) | {"<unk>"}
    assert all(set(fields[-1].split()) <= words for hyps in generated["H"].values() for fields in hyps)
    typed = interactive_main(out, out / "checkpoint.pt", ["the cat sees a dog"],
                             decode + ["--source-lang", "src", "--target-lang", "tgt"])
    assert parse_output(typed)["H"]["0"]


def _remove(key):
    def change(checkpoint: Path):
        state = torch.load(checkpoint, weights_only=True)
        del state[key]
        torch.save(state, checkpoint)
    return change


def _add_key(checkpoint: Path):
    state = torch.load(checkpoint, weights_only=True)
    state["decoder.extra.weight"] = torch.zeros(2)
    torch.save(state, checkpoint)


def _edit_json(name, **changes):
    def change(checkpoint: Path):
        path = checkpoint.parent / name
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    return change


def _write(name, text):
    return lambda checkpoint: (checkpoint.parent / name).write_text(text)


BAD_INPUTS = {
    "missing checkpoint": (lambda c: c.unlink(), "ema_0.9999_000010.pt: checkpoint not found"),
    "damaged checkpoint": (lambda c: c.write_bytes(c.read_bytes()[:200]), "ema_0.9999_000010.pt: cannot be read"),
    "not a state dict": (lambda c: torch.save([1, 2], c), "expected a state dict of tensors"),
    "missing training_args.json": (lambda c: (c.parent / "training_args.json").unlink(), "training_args.json: training arguments not found"),
    "missing vocab.json": (lambda c: (c.parent / "vocab.json").unlink(), "vocab.json: vocabulary not found"),
    "unknown key": (_add_key, "unknown key decoder.extra.weight"),
    "missing key": (_remove("input_transformers.layer.1.output.dense.bias"),
                    "missing key input_transformers.layer.1.output.dense.bias"),
    "missing projection": (_remove("input_up_proj.0.weight"), "missing key input_up_proj.0.weight"),
    "hidden_dim disagrees": (_edit_json("training_args.json", hidden_dim=12),
                             "key word_embedding.weight has shape (12, 8), expected (12, 12)"),
    "hidden_t_dim disagrees": (_edit_json("training_args.json", hidden_t_dim=4), "key time_embed.0.weight"),
    "vocab_size disagrees": (_edit_json("training_args.json", vocab_size=40), "expected (40, 8)"),
    "vocabulary size differs": (_write("vocab.json", json.dumps({t: i for i, t in enumerate(["[START]", "[END]", "[UNK]", "[PAD]", "x"])})),
                                "vocab.json: 5 tokens, but key word_embedding.weight"),
    "duplicate vocabulary id": (_write("vocab.json", json.dumps({"[START]": 0, "[END]": 1, "[UNK]": 2, "[PAD]": 3, "x": 3})),
                                "vocab.json: token 'x' has id 3"),
    "fairseq symbol in vocabulary": (_write("vocab.json", json.dumps({t: i for i, t in enumerate(["[START]", "[END]", "[UNK]", "[PAD]", "<unk>"])})),
                                     "vocab.json: id 4: token '<unk>' is one of fairseq's special symbols"),
    "missing special": (_write("vocab.json", json.dumps({t: i for i, t in enumerate(["[START]", "[END]", "[UNK]", "pad"])})),
                        "vocab.json: the special token(s) [PAD] are missing"),
    "unknown schedule": (_edit_json("training_args.json", noise_schedule="trunc_cos"), "noise_schedule = 'trunc_cos'"),
    "epsilon prediction": (_edit_json("training_args.json", predict_xstart=False), "training_args.json: predict_xstart"),
    "mean_embed flag without the key": (_edit_json("training_args.json", learned_mean_embed=True),
                                        "learned_mean_embed is True in"),
    "config not available": (_edit_json("training_args.json", config_name="someone/bert-large"),
                             "config_name 'someone/bert-large' is neither a local folder"),
    "other layer norm eps": (lambda c: _edit_json("bert-config/config.json", layer_norm_eps=1e-5)(c),
                             "config.json: hidden_act 'gelu', layer_norm_eps 1e-05"),
    "layer count disagrees": (_edit_json("bert-config/config.json", num_hidden_layers=3), "has num_hidden_layers 3"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_a_clear_error(tmp_path, case):
    change, message = BAD_INPUTS[case]
    checkpoint = write_run(tmp_path / "run")
    change(checkpoint)
    with pytest.raises(ConversionError) as error:
        convert(checkpoint, tmp_path / "out")
    assert message in str(error.value)
    assert str(tmp_path) in str(error.value)  # the file is named with its path
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def test_bad_wordpiece_line_names_the_line(tmp_path):
    checkpoint = write_run(tmp_path / "run", bert=True)
    (checkpoint.parent / "vocab.txt").write_text("".join(f"{p}\n" for p in WORDPIECE[:-1]) + "two words\n")
    with pytest.raises(ConversionError, match=r"vocab.txt: line 12: token 'two words' is empty or holds whitespace"):
        convert(checkpoint, tmp_path / "out")


def test_command_line_error_exit(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "nothing.pt"), str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "diffuseq-convert-official: error:" in capsys.readouterr().err
