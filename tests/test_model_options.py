"""The model's and criterion's enumerated options: declared once (ChoiceEnum over the modules'
registries), refused at parse time naming the choices, carried as plain strings."""
import pytest
from fairseq import options
from fairseq.dataclass.utils import convert_namespace_to_omegaconf

from diffuseq_fairseq.diffusion import SCHEDULES
from diffuseq_fairseq.network import LOSS_POSITIONS, TARGET_POSITIONS
from diffuseq_fairseq.step_sampler import TIMESTEP_SAMPLERS
from fairseq_harness import USER_DIR

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
