"""Every command of the README, docs/USAGE.md and examples/*/README.md runs as written (issue #31).

Statically, every command (tests/docs_commands.py says how each kind is checked); for real, the README's
core sequence, on a tiny toy-task corpus written at the paths the README names, in a fresh folder:
diffuseq-prepare -> fairseq-preprocess -> fairseq-train -> diffuseq-export-ema -> fairseq-generate (MBR)
-> diffuseq-eval -> fairseq-interactive -> fairseq-validate. Each runs in-process through its console
script's entry point with the README's own arguments; the only changes are
- ``--user-dir diffuseq_fairseq`` (relative to the repository root) becomes the folder's absolute path,
- fairseq-preprocess writes to its own ``--destdir`` (the README's alternative to diffuseq-prepare would
  overwrite the data-bin the rest of the sequence reads),
- appended (fairseq keeps an option's last value): fairseq-train a tiny model and budget
  (:data:`TINY_TRAINING`), every fairseq CLI but fairseq-preprocess ``--cpu --num-workers 0`` (no loader
  processes).
"""
import re
import sys
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path

from fairseq import checkpoint_utils

import docs_commands
from docs_commands import REPO, DocCommand, quiet_io
from diffuseq_fairseq.dataprep.toy_task import write_toy_task

# fairseq-train: diffuseq_base shrunk to 1 layer of d=32, two updates (the README's --max-update is 50,000).
TINY_TRAINING = ["--encoder-layers", "1", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
                 "--encoder-attention-heads", "2", "--latent-dim", "16", "--max-update", "2", "--no-progress-bar"]
FAIRSEQ_RUN_FLAGS = ["--cpu", "--num-workers", "0"]
# The README's core sequence, in the order it must run.
CORE_SEQUENCE = ("diffuseq-prepare", "fairseq-preprocess", "fairseq-train", "diffuseq-export-ema",
                 "fairseq-generate", "diffuseq-eval", "fairseq-interactive", "fairseq-validate")
TOY_SIZES = {"train": 200, "valid": 8, "test": 8}  # 8: fairseq 0.12 drops a last batch under 8 (fairseq#5036)


def test_every_documented_command_parses():
    problems = docs_commands.check_docs()
    assert not problems, "documented commands that do not run as written:\n" + "\n".join(problems)


def test_checker_fails_a_misspelled_option_a_wrong_choice_and_an_unknown_program(tmp_path):
    """A doc with broken commands, one of each kind the checker must catch."""
    doc = tmp_path / "doc.md"
    doc.write_text(
        "```bash\n"
        "fairseq-generate data-bin --user-dir diffuseq_fairseq --task diffuseq --path ckpt.pt \\\n"
        "    --mbr-candidatez 3\n"
        "fairseq-generate data-bin --user-dir diffuseq_fairseq --task diffuseq --path ckpt.pt --sampler euler\n"
        "diffuseq-eval gen.txt --jsn\n"
        "bash scripts/distill.sh\n"
        "TEACHER_MINUTS=5 bash scripts/distill.sh\n"
        "frobnicate data-bin\n"
        "fairseq-train data-bin ...\n"
        "python scripts/compare_levt.py --data-bin d --max-update 3 --out o --diffuseq-decode '--sampler euler'\n"
        "```\n"
        "```\nunlabelled\n```\n"
    )
    problems = docs_commands.check_docs([doc])
    joined = "\n".join(problems)
    assert "a fenced block without a language" in problems[0]
    assert "doc.md:2: fairseq-generate refuses its arguments" in joined and "--mbr-candidatez" in joined
    assert "doc.md:4: fairseq-generate refuses its arguments" in joined and "euler" in joined
    assert "doc.md:5: diffuseq-eval refuses its arguments" in joined and "--jsn" in joined
    assert "doc.md:7: scripts/distill.sh never reads TEACHER_MINUTS" in joined
    assert "doc.md:8: cannot classify `frobnicate`" in joined
    assert "doc.md:9: '...' is a placeholder" in joined
    assert "doc.md:10: scripts/compare_levt.py: the fairseq options of --diffuseq-task, --diffuseq-decode" in joined
    assert len(problems) == 8, joined  # bash scripts/distill.sh alone is fine


def test_extraction_joins_continuations_and_expands_variables_braces_and_redirections(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "```bash\n"
        'COMMON="--data-bin data-bin/x --max-update 3"   # defined once\n'
        "python scripts/compare_levt.py $COMMON \\\n"
        "    --out runs/a   # a comment\n"
        "diffuseq-eval gen.txt --refs refs/test.ref{1,2} && echo done\n"
        "echo 'a b' | fairseq-interactive data-bin < in.txt > out.txt\n"
        "```\n"
        "```text\nfairseq-train is not read here\n```\n"
    )
    problems = []
    commands = docs_commands.extract_commands(doc, problems)
    assert not problems
    assert [c.argv for c in commands] == [
        ["python", "scripts/compare_levt.py", "--data-bin", "data-bin/x", "--max-update", "3", "--out", "runs/a"],
        ["diffuseq-eval", "gen.txt", "--refs", "refs/test.ref1", "refs/test.ref2"],
        ["echo", "done"],
        ["echo", "a b"],
        ["fairseq-interactive", "data-bin"],
    ]
    assert commands[0].where == "doc.md:3"
    assert (commands[4].stdin, commands[4].stdout) == ("in.txt", "out.txt")


def _readme_core_sequence():
    problems = []
    commands = docs_commands.extract_commands(REPO / "README.md", problems)
    first = {}
    for command in commands:
        first.setdefault(command.program, command)
    missing = [program for program in CORE_SEQUENCE if program not in first]
    assert not missing, f"the README no longer shows {missing}"
    sequence = [first[program] for program in CORE_SEQUENCE]
    lines = [int(command.where.split(":")[1]) for command in sequence]
    assert lines == sorted(lines), f"the README shows the core sequence out of order: {CORE_SEQUENCE}"
    return sequence


def _write_toy_corpus(folder: Path, prefixes, source_lang: str, target_lang: str) -> None:
    """The toy task's splits written as PREFIX.SRC / PREFIX.TGT for each {split: prefix}."""
    toy = folder / ".toy"
    write_toy_task(toy, TOY_SIZES["train"], TOY_SIZES["valid"], TOY_SIZES["test"], seed=3)
    for split, prefix in prefixes.items():
        target = folder / prefix
        target.parent.mkdir(parents=True, exist_ok=True)
        target.with_name(f"{target.name}.{source_lang}").write_text((toy / f"{split}.src").read_text())
        target.with_name(f"{target.name}.{target_lang}").write_text((toy / f"{split}.tgt").read_text())


def _option(argv, name):
    return argv[argv.index(name) + 1]


def _as_run(command: DocCommand):
    """The command's arguments as this test runs them (see the module docstring)."""
    argv = list(command.argv)
    if "--user-dir" in argv:
        position = argv.index("--user-dir") + 1
        argv[position] = str(REPO / argv[position])
    if command.program == "fairseq-preprocess":
        argv[argv.index("--destdir") + 1] += "-preprocess"
    if command.program == "fairseq-train":
        argv += TINY_TRAINING
    if command.program.startswith("fairseq-") and command.program != "fairseq-preprocess":
        argv += FAIRSEQ_RUN_FLAGS
    return argv


def _run(command: DocCommand, folder: Path) -> str:
    """Run the command's console script in-process in ``folder``; returns its stdout and stderr."""
    argv = _as_run(command)
    (script,) = [point for point in entry_points(group="console_scripts") if point.name == command.program]
    module, function = script.value.split(":")
    stdin_text = (folder / command.stdin).read_text() if command.stdin else ""
    saved_argv, sys.argv = sys.argv, argv
    try:
        with quiet_io(stdin_text) as out:
            try:
                status = getattr(import_module(module), function)()
            except SystemExit as stop:
                status = stop.code
    finally:
        sys.argv = saved_argv
    text = out.getvalue()
    assert status in (0, None), f"{command.where}: `{command.text}` failed ({status}):\n{text[-3000:]}"
    if command.stdout:
        (folder / command.stdout).write_text(text)
    return text


def test_readme_core_sequence_runs_for_real(tmp_path, monkeypatch):
    sequence = _readme_core_sequence()
    prepare, preprocess = sequence[0].argv, sequence[1].argv
    _write_toy_corpus(tmp_path, {split: _option(prepare, f"--{split}pref") for split in TOY_SIZES},
                      _option(prepare, "--source-lang"), _option(prepare, "--target-lang"))
    _write_toy_corpus(tmp_path, {split: _option(preprocess, f"--{split}pref") for split in TOY_SIZES},
                      _option(preprocess, "--source-lang"), _option(preprocess, "--target-lang"))
    monkeypatch.chdir(tmp_path)
    # fairseq keeps the best validation loss seen in this process on save_checkpoint itself; an earlier
    # in-process training would then keep this run from writing the checkpoint_best.pt the README exports.
    monkeypatch.delattr(checkpoint_utils.save_checkpoint, "best", raising=False)
    outputs = {command.program: _run(command, tmp_path) for command in sequence}

    generated = (tmp_path / sequence[4].stdout).read_text()
    nbest = int(_option(sequence[4].argv, "--nbest"))
    ids = re.findall(r"^D-(\d+)\t", generated, flags=re.M)
    assert sorted(set(map(int, ids))) == list(range(TOY_SIZES["test"]))
    assert len(ids) == nbest * TOY_SIZES["test"]
    assert "@@ " not in generated  # --remove-bpe: diffuseq-eval scores words
    assert "BLEU (nltk sentence-level" in outputs["diffuseq-eval"]
    interactive_inputs = (tmp_path / sequence[6].stdin).read_text().splitlines()
    assert len(re.findall(r"^D-\d+\t", outputs["fairseq-interactive"], flags=re.M)) == len(interactive_inputs)
    # the README's tokenizer and BPE options: the raw words reach the model as the data-bin's tokens
    sources = re.findall(r"^S-\d+\t(.*)$", outputs["fairseq-interactive"], flags=re.M)
    assert len(sources) == len(interactive_inputs) and not any("<unk>" in line for line in sources)
    assert re.search(r"valid on 'valid' subset .*\| loss ", outputs["fairseq-validate"])


def test_readme_stays_an_entry_point():
    """Issue #27: the README is read in five minutes; the details live in docs/USAGE.md."""
    assert len((REPO / "README.md").read_text(encoding="utf-8").splitlines()) <= 250


def _defines(text: str, name: str) -> bool:
    """``name`` is a function, class, or module/class-level assignment or field in ``text``."""
    return re.search(rf"^\s*(?:def|class)\s+{re.escape(name)}\b|^\s*{re.escape(name)}\s*(?::[^=\n]*)?=",
                     text, flags=re.M) is not None


def _map_problems(readme: str) -> list:
    """Files of the README's "Where to change what" map that do not exist, and functions, classes or
    registries that none of their row's files defines."""
    table = readme.split("## Where to change what", 1)[1].split("\n\n", 2)[1]
    problems = []
    for row in table.splitlines()[2:]:
        topic, files_cell, names_cell = row.split("|")[1:4]
        paths = re.findall(r"`([\w/]+\.(?:py|sh))`", files_cell + names_cell)
        sources = ""
        for name in paths:
            found = [path for path in (REPO / name, REPO / "diffuseq_fairseq" / name) if path.is_file()]
            if not found:
                problems.append(f"{name}: no such file")
            elif name.endswith(".py"):
                sources += found[0].read_text(encoding="utf-8") + "\n"
        for name in re.findall(r"`([A-Za-z_][\w.]*)(?:\(\))?`", names_cell):
            if not name.endswith(".py") and not all(_defines(sources, part) for part in name.split(".")):
                problems.append(f"{name}: not defined in the files of the row {topic.strip()!r}")
    return problems


def test_readme_map_names_what_its_files_define():
    """A rename or a move of a mapped function, class or registry fails here."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert not _map_problems(readme), "the README's map is out of date:\n" + "\n".join(_map_problems(readme))
    moved = readme.replace("`diffuseq_fairseq/tasks/diffuseq.py`, `tasks/diffuseq_config.py`",
                           "`diffuseq_fairseq/tasks/diffuseq.py`")
    assert _map_problems(moved) == ["CANVAS_DEFAULT: not defined in the files of the row 'canvas rule'"]
