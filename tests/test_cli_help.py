"""--help with the plugin lists the options of the task, model and criterion named on the command line."""
import subprocess
import sys

from fairseq_harness import REPO, USER_DIR


def help_text(cli: str, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", f"fairseq_cli.{cli}", "data-bin", "--user-dir", USER_DIR, *args,
                             "--help"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_generate_help_lists_the_decoding_choices():
    text = help_text("generate", "--task", "diffuseq")
    assert "--sampler {auto,ddpm,ddim,dpm-solver++}" in text
    assert "--rounding {l2,logits,none}" in text
    assert "--output-vocab {all,target,auto}" in text


def test_train_help_lists_the_model_and_criterion_choices():
    text = help_text("train", "--task", "diffuseq", "--arch", "diffuseq_tiny", "--criterion", "diffuseq_loss")
    assert "--noise-schedule {sqrt,linear,cosine}" in text
    assert "--loss-positions {target,all}" in text
    assert "--timestep-sampler {lossaware,uniform}" in text


def test_help_without_a_task_is_fairseqs_own():
    text = help_text("generate")
    assert text.startswith("usage: ") and "--sampler" not in text


def test_a_wrong_choice_is_refused_at_parse_time_naming_the_choices():
    result = subprocess.run([sys.executable, "-m", "fairseq_cli.generate", "data-bin", "--user-dir", USER_DIR,
                             "--task", "diffuseq", "--sampler", "euler"], capture_output=True, text=True, timeout=120,
                            cwd=REPO)
    assert result.returncode == 2
    assert "invalid choice: 'euler'" in result.stderr and "dpm-solver++" in result.stderr
