"""The shell commands of the README, docs/USAGE.md and examples/*/README.md, and their static check.

Every fenced block labelled ``bash``/``sh``/``shell`` is read as shell text: ``\\`` continuations are
joined, comments dropped, ``NAME=value`` lines of a page define ``$NAME`` for the commands after them,
``{a,b}`` braces expand as bash expands them, and ``|``, ``&&``, ``;`` separate commands. A fenced block
without a label is a problem too (label it ``text`` when it is not shell), so no command hides in one.

Each command is then checked without running it (:func:`check_command`):
- ``fairseq-train/-generate/-interactive/-validate`` are parsed by fairseq's own parser
  (``options.parse_args_and_arch``, which imports ``--user-dir``), ``fairseq-preprocess`` by its
  preprocessing parser: a misspelled or removed option, or a value outside an option's choices, fails;
- the plugin's console scripts (``setup.py``'s entry points), ``python path.py`` and ``python -m module``
  run until their own argparse parser has parsed the arguments, and stop there; the fairseq options
  that ``compare_levt.py`` and ``lr_sweep.py`` take as strings are parsed by fairseq too;
- ``bash FILE.sh`` needs the file, and every ``NAME=value`` given to it must be a name the script reads;
  ``scripts/train.sh RECIPE DATA_BIN SAVE_DIR ARGS`` also needs a known recipe, and the fairseq-train
  command line it builds is parsed as above;
- ``...`` and ``[--option]`` placeholders fail: a command block holds commands that run as written;
- anything else fails, unless its program is on :data:`ALLOWED_PROGRAMS`.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import logging
import os
import re
import runpy
import shlex
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from diffuseq_fairseq.experiments.recipes import fill_from_recipe

REPO = Path(__file__).resolve().parents[1]
FAIRSEQ_CLIS = ("fairseq-train", "fairseq-generate", "fairseq-interactive", "fairseq-validate", "fairseq-preprocess")
PYTHONS = ("python", "python3", ".venv/bin/python")
# Programs a doc may name that this check does not parse, each for a reason:
ALLOWED_PROGRAMS = {
    "pip": "installs packages: nothing of this project to parse",
    "git": "git clone / checkout of this repository",
    "cd": "changes directory",
    "echo": "feeds a line to the command after a pipe",
    "mkdir": "makes a folder",
}
SHELL_LANGS = {"bash", "sh", "shell"}
_SEPARATORS = {"|", "&&", ";", "||"}
_REDIRECTS = {">": "stdout", "<": "stdin", "2>": "stderr", ">>": "stdout"}


@dataclass
class DocCommand:
    """One command of a doc: where it is, its words after variables and braces, and its redirections."""
    where: str  # "README.md:42"
    text: str  # the command as the doc writes it (continuations joined)
    argv: List[str]
    env: Dict[str, str] = field(default_factory=dict)  # NAME=value words before the program
    stdin: Optional[str] = None
    stdout: Optional[str] = None

    @property
    def program(self) -> str:
        return self.argv[0] if self.argv else ""


def doc_files(repo: Path = REPO) -> List[Path]:
    return [repo / "README.md", repo / "docs" / "USAGE.md", *sorted((repo / "examples").glob("*/README.md"))]


def _logical_lines(block: List[tuple]) -> List[tuple]:
    """(line number, text) of a block with ``\\`` continuations joined."""
    joined, start, parts = [], None, []
    for number, line in block:
        if start is None:
            start = number
        if line.rstrip().endswith("\\"):
            parts.append(line.rstrip()[:-1])
            continue
        parts.append(line)
        joined.append((start, " ".join(part.strip() for part in parts)))
        start, parts = None, []
    if parts:
        joined.append((start, " ".join(part.strip() for part in parts)))
    return joined


def _expand_braces(word: str) -> List[str]:
    match = re.search(r"\{([^{}]*,[^{}]*)\}", word)
    if not match:
        return [word]
    head, tail = word[:match.start()], word[match.end():]
    return [expanded for choice in match.group(1).split(",") for expanded in _expand_braces(head + choice + tail)]


def _substitute(text: str, variables: Dict[str, str]) -> str:
    def value(match):
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


def _commands_of_line(where: str, text: str, variables: Dict[str, str], problems: List[str]) -> List[DocCommand]:
    try:
        lexer = shlex.shlex(_substitute(text, variables), posix=True, punctuation_chars="|&;<>")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words = list(lexer)
    except ValueError as err:
        problems.append(f"{where}: cannot split `{text}`: {err}")
        return []
    commands, current = [], DocCommand(where, text, [])
    pending_redirect = None
    for word in words:
        if pending_redirect:
            if pending_redirect != "stderr":
                setattr(current, pending_redirect, word)
            pending_redirect = None
        elif word in _SEPARATORS:
            commands.append(current)
            current = DocCommand(where, text, [])
        elif word in _REDIRECTS:
            pending_redirect = _REDIRECTS[word]
        elif not current.argv and re.fullmatch(r"[A-Za-z_]\w*=.*", word):
            name, _, value = word.partition("=")
            current.env[name] = value
        else:
            current.argv.extend(_expand_braces(word))
    commands.append(current)
    for command in commands:
        leftover = [word for word in command.argv if "$" in word]
        if leftover:
            problems.append(f"{where}: `{text}` uses {leftover[0]}, which no line of the doc defines")
    return [command for command in commands if command.argv or command.env]


def extract_commands(path: Path, problems: List[str]) -> List[DocCommand]:
    """Every command of ``path``'s shell blocks; unlabelled blocks and unsplittable lines go to ``problems``."""
    name = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
    lines = path.read_text(encoding="utf-8").splitlines()
    commands: List[DocCommand] = []
    variables: Dict[str, str] = {}
    block, lang, fence_line = None, "", 0
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            if block is None:
                block, lang, fence_line = [], stripped[3:].strip().lower(), number
                if not lang:
                    problems.append(f"{name}:{number}: a fenced block without a language: label it "
                                    "`bash` (checked as commands) or `text`")
                continue
            if lang in SHELL_LANGS:
                for start, text in _logical_lines(block):
                    for command in _commands_of_line(f"{name}:{start}", text, variables, problems):
                        if not command.argv:  # NAME=value alone: a variable for the commands after it
                            variables.update(command.env)
                        else:
                            commands.append(command)
            block = None
            continue
        if block is not None:
            block.append((number, line))
    if block is not None:
        problems.append(f"{name}:{fence_line}: the fenced block is never closed")
    return commands


def all_commands(repo: Path = REPO) -> tuple:
    problems: List[str] = []
    commands = [command for path in doc_files(repo) for command in extract_commands(path, problems)]
    return commands, problems


# --- static checks -------------------------------------------------------------------------------

class _Parsed(Exception):
    """Raised once a program's outermost argparse parse has returned: the check stops it there."""


@contextlib.contextmanager
def _stop_after_parse():
    depth = [0]
    originals = {name: getattr(argparse.ArgumentParser, name) for name in ("parse_args", "parse_known_args")}

    def wrap(original):
        def parse(self, *args, **kwargs):
            depth[0] += 1
            try:
                result = original(self, *args, **kwargs)
            finally:
                depth[0] -= 1
            if depth[0] == 0:
                raise _Parsed(result)
            return result
        return parse

    for name, original in originals.items():
        setattr(argparse.ArgumentParser, name, wrap(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(argparse.ArgumentParser, name, original)


@contextlib.contextmanager
def quiet_io(stdin_text: str = ""):
    """stdout and stderr into one buffer (fairseq's logging handlers restored after), stdin from text."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    saved_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin_text)
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield buffer
    finally:
        sys.stdin = saved_stdin
        root.handlers[:] = handlers
        root.setLevel(level)


def _last_lines(text: str, count: int = 2) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])


def console_scripts(repo: Path = REPO) -> Dict[str, str]:
    """setup.py's console scripts: name -> "module:function"."""
    text = (repo / "setup.py").read_text(encoding="utf-8")
    return dict(re.findall(r'"([\w-]+)=([\w.]+:\w+)"', text))


def parse_fairseq(program: str, args: List[str]) -> Optional[str]:
    """None when fairseq's own parser for ``program`` accepts ``args``, else why not."""
    from fairseq import options
    parsers = {
        "fairseq-train": options.get_training_parser,
        "fairseq-generate": options.get_generation_parser,
        "fairseq-interactive": options.get_interactive_generation_parser,
        "fairseq-validate": options.get_validation_parser,
    }
    with quiet_io() as out:
        try:
            if program == "fairseq-preprocess":
                options.get_preprocessing_parser().parse_args(args)
            else:
                options.parse_args_and_arch(parsers[program](), args)
        except SystemExit as stop:
            if stop.code not in (0, None):  # 0: --help answered
                return f"{program} refuses its arguments: {_last_lines(out.getvalue())}"
    return None


def _run_until_parsed(label: str, run, argv: List[str]) -> tuple:
    """(None, the parsed namespace) once the program's parser has accepted ``argv``, else (why not, None)."""
    saved_argv = sys.argv
    sys.argv = list(argv)
    try:
        with quiet_io() as out, _stop_after_parse():
            try:
                run()
            except _Parsed as parsed:
                return None, parsed.args[0]
            except SystemExit as stop:
                if stop.code in (0, None):
                    return None, None
                return f"{label} refuses its arguments: {_last_lines(out.getvalue())}", None
            except Exception as err:  # an import or start-up failure of the program
                return f"{label} fails before parsing its arguments: {type(err).__name__}: {err}", None
    finally:
        sys.argv = saved_argv
    return f"{label} returned without parsing arguments with argparse: the check cannot parse it", None


# Options of the experiment scripts that hold fairseq options: each line is a fairseq command built from
# them as the script builds it (fields of the script's parsed arguments, in order), parsed like the rest.
EMBEDDED_FAIRSEQ_OPTIONS = {
    "scripts/compare_levt.py": [
        ("fairseq-train", ["diffuseq_task", "diffuseq_args", "train_args"]),
        ("fairseq-train", ["levt_args", "train_args"]),
        ("fairseq-generate", ["diffuseq_task", "diffuseq_decode"]),
        ("fairseq-generate", ["=--task translation_lev", "levt_decode"]),
    ],
    "benchmarks/lr_sweep.py": [("fairseq-train", ["diffuseq_task", "diffuseq_args"]),
                               ("fairseq-generate", ["diffuseq_task", "diffuseq_decode"])],
}


def check_embedded_options(script: str, namespace) -> Optional[str]:
    """The fairseq options a script takes as strings (:data:`EMBEDDED_FAIRSEQ_OPTIONS`), parsed by fairseq."""
    if isinstance(namespace, tuple):  # parse_known_args' (namespace, extras)
        namespace = namespace[0]
    if getattr(namespace, "diffuseq_recipe", None):  # the script fills what was not given from its recipe
        fill_from_recipe(namespace)
    for program, fields in EMBEDDED_FAIRSEQ_OPTIONS.get(script, []) if namespace is not None else []:
        words = []
        for name in fields:
            value = name[1:] if name.startswith("=") else getattr(namespace, name, None)
            words += shlex.split(value or "")
        problem = parse_fairseq(program, ["data-bin", "--user-dir", str(REPO / "diffuseq_fairseq"), *words])
        if problem:
            given = ", ".join(f"--{name.replace('_', '-')}" for name in fields if not name.startswith("="))
            return f"{script}: the fairseq options of {given}: {problem}"
    return None


def parse_console_script(entry: str, argv: List[str]) -> Optional[str]:
    module, function = entry.split(":")
    return _run_until_parsed(argv[0], lambda: getattr(importlib.import_module(module), function)(), argv)[0]


def parse_python(args: List[str], repo: Path) -> Optional[str]:
    """``python path.py ARGS`` or ``python -m module ARGS``, run until its parser has parsed ARGS."""
    if args[:1] == ["-m"] and len(args) > 1:
        if args[1] == "pytest":
            return None if all((repo / arg).exists() for arg in args[2:] if not arg.startswith("-")) \
                else f"pytest is given a file that does not exist: {args[2:]}"
        module = args[1]

        def run_module():
            with warnings.catch_warnings():  # runpy warns that the module was imported before (by its package)
                warnings.simplefilter("ignore", RuntimeWarning)
                runpy.run_module(module, run_name="__main__", alter_sys=True)
        return _run_until_parsed(f"python -m {module}", run_module, [module, *args[2:]])[0]
    if not args or not args[0].endswith(".py"):
        return f"python {' '.join(args[:1])}: expected a .py file or -m MODULE"
    path = repo / args[0]
    if not path.is_file():
        return f"{args[0]} does not exist"
    problem, namespace = _run_until_parsed(args[0], lambda: runpy.run_path(str(path), run_name="__main__"),
                                           [str(path), *args[1:]])
    return problem or check_embedded_options(args[0], namespace)


def _script_reads(script_text: str, name: str) -> bool:
    return re.search(rf"\$\{{?{re.escape(name)}\b", script_text) is not None


def check_bash(command: DocCommand, repo: Path) -> Optional[str]:
    args = command.argv[1:]
    if not args or not args[0].endswith(".sh"):
        return "bash: expected a .sh file"
    path = repo / args[0]
    if not path.is_file():
        return f"{args[0]} does not exist"
    text = path.read_text(encoding="utf-8")
    unread = [name for name in command.env if not _script_reads(text, name) and name != "OMP_NUM_THREADS"]
    if unread:
        return f"{args[0]} never reads {', '.join(unread)}"
    if args[0] == "scripts/train.sh":
        return check_train_sh(args[1:])
    return None


def check_train_sh(args: List[str]) -> Optional[str]:
    """scripts/train.sh RECIPE DATA_BIN SAVE_DIR [fairseq-train args]: the command line it builds, parsed."""
    from diffuseq_fairseq.experiments import recipes
    if len(args) < 3:
        return "scripts/train.sh needs RECIPE DATA_BIN SAVE_DIR"
    recipe_name, data_bin, save_dir, *extra = args
    if recipe_name not in recipes.RECIPES:
        return f"scripts/train.sh: no recipe {recipe_name!r} (known: {', '.join(recipes.RECIPES)})"
    argv = [data_bin, "--user-dir", str(REPO / "diffuseq_fairseq"), *recipes.RECIPES[recipe_name].train_argv(),
            "--save-dir", save_dir, "--no-epoch-checkpoints", "--no-progress-bar", *extra]
    return parse_fairseq("fairseq-train", argv)


def check_command(command: DocCommand, repo: Path = REPO) -> Optional[str]:
    """None when ``command`` passes its static check, else the problem (with the doc location)."""
    program, args = command.program, command.argv[1:]
    placeholders = [word for word in args if word == "..." or (word.startswith("[") and word.endswith("]"))]
    if placeholders:
        problem = (f"{placeholders[0]!r} is a placeholder, not an argument: write the command out in full "
                   "(a synopsis belongs in the prose)")
    elif program in FAIRSEQ_CLIS:
        problem = parse_fairseq(program, args)
    elif program in console_scripts(repo):
        problem = parse_console_script(console_scripts(repo)[program], command.argv)
    elif program in PYTHONS:
        problem = parse_python(args, repo)
    elif program == "bash":
        problem = check_bash(command, repo)
    elif program in ALLOWED_PROGRAMS:
        problem = None
    else:
        problem = (f"cannot classify `{program}`: teach tests/docs_commands.py to check it, "
                   "or add it to ALLOWED_PROGRAMS with the reason")
    return None if problem is None else f"{command.where}: {problem}\n    in: {command.text}"


def check_docs(paths: Optional[List[Path]] = None, repo: Path = REPO) -> List[str]:
    """Every problem of the docs' commands: extraction problems, then each command's."""
    problems: List[str] = []
    commands = [command for path in (paths or doc_files(repo)) for command in extract_commands(path, problems)]
    with _chdir(repo):  # the docs' relative paths (--user-dir diffuseq_fairseq) are the repository's
        problems += [problem for problem in (check_command(command, repo) for command in commands) if problem]
    return problems


@contextlib.contextmanager
def _chdir(path: Path):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)
