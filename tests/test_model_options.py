"""The model's fairseq glue: enumerated options declared once (ChoiceEnum over the modules'
registries), refused at parse time naming the choices and carried as plain strings; the token
layout carried from the task (old checkpoints: fairseq); no false shared parameters."""
import pytest
from fairseq import models, options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.trainer import _catalog_shared_params
from omegaconf import OmegaConf

from diffuseq_fairseq.diffusion import SCHEDULES
from diffuseq_fairseq.network import LOSS_POSITIONS, DiffuSeqNetwork
from diffuseq_fairseq.network_config import TARGET_POSITIONS, NetworkConfig
from diffuseq_fairseq.step_sampler import TIMESTEP_SAMPLERS
from fairseq_harness import USER_DIR, create_dummy_data, preprocess_data

BASE = ["--user-dir", USER_DIR, "--task", "diffuseq", "--arch", "diffuseq_tiny", "--criterion", "diffuseq_loss"]
CHOICES = {
    "--noise-schedule": tuple(SCHEDULES),  # the schedule registry's names
    "--target-positions": TARGET_POSITIONS,
    "--loss-positions": LOSS_POSITIONS,
    "--timestep-sampler": TIMESTEP_SAMPLERS,
}


def parse(data_dir, *flags):
    return options.parse_args_and_arch(options.get_training_parser(), [str(data_dir), *BASE, *flags])


@pytest.mark.parametrize("option", sorted(CHOICES))
def test_a_wrong_value_is_refused_at_parse_time_naming_the_choices(option, tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse(tmp_path, option, "no-such-choice")
    error = capsys.readouterr().err
    assert f"argument {option}: invalid choice: 'no-such-choice'" in error
    assert "(choose from " + ", ".join(repr(c) for c in CHOICES[option]) + ")" in error


def test_chosen_values_reach_the_configs_as_plain_strings(tmp_path):
    """Plain strings: a checkpoint's saved config must not pickle enum objects (weights_only loading)."""
    chosen = {option: choices[-1] for option, choices in CHOICES.items()}  # none is the default
    cfg = convert_namespace_to_omegaconf(parse(tmp_path, *(x for pair in chosen.items() for x in pair)))
    for option, choice in chosen.items():
        group = cfg.model if option in ("--noise-schedule", "--target-positions") else cfg.criterion
        value = group[option[2:].replace("-", "_")]
        assert value == choice and type(value) is str, option


@pytest.fixture(scope="module")
def data_bin(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    create_dummy_data(root / "raw", num_train=10, num_valid=2)
    preprocess_data(root / "raw", root / "bin")
    return root / "bin"


@pytest.mark.parametrize("layout", ["fairseq", "diffuseq"])
def test_the_model_carries_the_token_layout_it_was_trained_on(data_bin, layout):
    cfg = convert_namespace_to_omegaconf(parse(data_bin, "--token-layout", layout))
    saved = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))  # as a checkpoint keeps it
    assert saved.model.token_layout == layout
    task = tasks.setup_task(saved.task)
    assert models.build_model(saved.model, task, from_checkpoint=True).cfg.token_layout == layout


def test_a_checkpoint_from_before_the_token_layout_means_the_fairseq_layout(data_bin):
    saved = OmegaConf.to_container(convert_namespace_to_omegaconf(parse(data_bin)), resolve=True)
    del saved["model"]["token_layout"], saved["task"]["token_layout"]
    saved = OmegaConf.create(saved)
    task = tasks.setup_task(saved.task, from_checkpoint=True)
    assert models.build_model(saved.model, task, from_checkpoint=True).cfg.token_layout == "fairseq"


def test_absent_optional_parts_are_no_shared_parameters_for_fairseq():
    """fairseq's trainer logs parameters registered more than once as shared; None placeholders were
    (issue #31). A real tie is still reported."""
    net = DiffuSeqNetwork(NetworkConfig(encoder_layers=1, encoder_embed_dim=32, encoder_attention_heads=2,
                                        encoder_ffn_embed_dim=64, latent_dim=16, num_timesteps=50), 30, 1)
    assert net.embed_segment is None and net.embed_revealed is None and net.mean_embed is None
    assert _catalog_shared_params(net) == []
    net.time_embed[2].bias = net.input_up_proj[0].bias
    assert _catalog_shared_params(net) == [["time_embed.2.bias", "input_up_proj.0.bias"]]
