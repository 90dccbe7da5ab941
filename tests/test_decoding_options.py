"""The diffuseq task's options as fairseq's parsers read them: enumerated options list their choices in
--help and a wrong value is refused at parse time, naming the choices."""
import pytest
from fairseq import options

from fairseq_harness import USER_DIR

GENERATE = ["DATA", "--user-dir", USER_DIR, "--task", "diffuseq"]


def parse_generate(*flags):
    return options.parse_args_and_arch(options.get_generation_parser(), GENERATE + list(flags))


def test_token_layout_defaults_to_fairseq_and_takes_diffuseq():
    assert parse_generate().token_layout == "fairseq"
    assert parse_generate("--token-layout", "diffuseq").token_layout == "diffuseq"


@pytest.mark.parametrize("option, value", [("--token-layout", "bert")])
def test_a_wrong_choice_is_refused_at_parse_time_naming_the_choices(option, value, capsys):
    with pytest.raises(SystemExit):
        parse_generate(option, value)
    assert f"argument {option}: invalid choice: '{value}'" in capsys.readouterr().err
