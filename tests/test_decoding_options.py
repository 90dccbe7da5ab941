"""The diffuseq task's options as fairseq's parsers read them: enumerated options list their choices in
--help and a wrong value is refused at parse time, naming the choices."""
import argparse
from argparse import Namespace

import pytest
from fairseq import options

from diffuseq_fairseq.tasks.diffuseq import DiffuSeqTask
from diffuseq_fairseq.tasks.diffuseq_config import DiffuSeqConfig, decoding_knob
from fairseq_harness import USER_DIR

GENERATE = ["DATA", "--user-dir", USER_DIR, "--task", "diffuseq"]


def parse_generate(*flags):
    return options.parse_args_and_arch(options.get_generation_parser(), GENERATE + list(flags))


def test_token_layout_defaults_to_fairseq_and_takes_diffuseq():
    assert parse_generate().token_layout == "fairseq"
    assert parse_generate("--token-layout", "diffuseq").token_layout == "diffuseq"


def test_the_task_options_help_lists_the_choices():
    """What --help would print: fairseq 0.12 answers --help on its first pass, before it adds any
    task's options (translation's too), so the task's own parser group is read here."""
    parser = argparse.ArgumentParser()
    DiffuSeqTask.add_args(parser)
    text = " ".join(parser.format_help().split())  # argparse wraps lines
    assert "--sampler {auto,ddpm,ddim,dpm-solver++}" in text
    assert "--rounding {l2,logits,none}" in text
    assert "--step-spacing {uniform,logsnr}" in text and "--step-range {full,trained}" in text
    assert "--output-vocab {all,target,auto}" in text and "--token-layout {fairseq,diffuseq}" in text


@pytest.mark.parametrize("option, value", [
    ("--sampler", "euler"), ("--rounding", "floor"), ("--output-vocab", "source"), ("--step-range", "half"),
    ("--step-spacing", "karras"), ("--token-layout", "bert"),
])
def test_a_wrong_choice_is_refused_at_parse_time_naming_the_choices(option, value, capsys):
    with pytest.raises(SystemExit):
        parse_generate(option, value)
    assert f"argument {option}: invalid choice: '{value}' (choose from " in capsys.readouterr().err


def test_parsed_choices_reach_the_decoding_options():
    args = parse_generate("--sampler", "dpm-solver++", "--rounding", "none", "--output-vocab", "all")
    assert (args.sampler, args.rounding, args.output_vocab) == ("dpm-solver++", "none", "all")


def test_eval_bleu_args_choices_are_checked_against_the_declared_ones():
    """--eval-bleu-args is JSON no parser reads: its choices are checked against the same declaration."""
    cfg = DiffuSeqConfig()
    assert decoding_knob(cfg, Namespace(sampler="ddim"), "sampler") == "ddim"
    assert decoding_knob(cfg, Namespace(), "rounding") == "l2"  # not given: the task's
    with pytest.raises(ValueError, match="unknown output_vocab 'source'; choose one of all, target, auto"):
        decoding_knob(cfg, Namespace(output_vocab="source"), "output_vocab")
