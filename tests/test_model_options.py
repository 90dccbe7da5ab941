"""The model's and criterion's enumerated options: declared once (ChoiceEnum over the modules'
registries), refused at parse time naming the choices, carried as plain strings."""
import pytest
from fairseq import models, options, tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from omegaconf import OmegaConf

from diffuseq_fairseq.diffusion import SCHEDULES
from diffuseq_fairseq.network import LOSS_POSITIONS, TARGET_POSITIONS
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
