"""The CLI teaches itself: every command's help has an example that parses, every argument and
option says what it is, flags show no `<bool>`, and `steward --help` answers at once."""

from __future__ import annotations

import os
import re
import resource
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from engine.cli.app import COMMANDS, all_commands, app

ROOT = Path(__file__).resolve().parent.parent


def walk(path: list[str], cmd: Any) -> Iterator[tuple[list[str], Any]]:
    subs = getattr(cmd, "commands", None)
    if subs:
        if getattr(cmd, "invoke_without_command", False):
            yield path, cmd
        for name, sub in subs.items():
            yield from walk([*path, name], sub)
    else:
        yield path, cmd


def leaves() -> list[tuple[list[str], Any]]:
    return [x for name, cmd in all_commands().items() for x in walk([name], cmd)]


def examples(help_text: str) -> list[str]:
    """Example lines: `steward ...` on a line of its own, or inline after `Example:`; a comment after
    three spaces (`   # ...`, `   (or ...)`, `   then ...`) is not part of the command."""
    found = (re.search(r"(?:^|\bExamples?:\s+)(steward\s.*)", ln.strip()) for ln in help_text.splitlines())
    return [re.split(r"\s{3,}", m.group(1))[0].strip() for m in found if m]


def test_the_root_lists_every_command_without_importing_it() -> None:
    real = all_commands()
    assert set(real) == set(COMMANDS), "add each new top-level command to engine.cli.app.COMMANDS"


def test_every_command_has_an_example_and_every_parameter_has_help() -> None:
    missing_example = [" ".join(p) for p, c in leaves() if not examples(c.help or "")]
    assert not missing_example, f"commands whose --help has no `steward ...` example: {missing_example}"
    no_help = [f"{' '.join(p)} {q.name}" for p, c in leaves() for q in c.params if q.name != "help" and not getattr(q, "help", None)]
    assert not no_help, f"arguments/options without help text: {no_help}"


def _resolve(args: list[str]) -> tuple[Any, list[str], list[str]]:
    """The command an example runs, its path and the rest of its arguments."""
    cmd: Any = all_commands()[args[0]]
    path = [args[0]]
    rest = args[1:]
    while getattr(cmd, "commands", None) and rest and rest[0] in cmd.commands:
        cmd = cmd.commands[rest[0]]
        path.append(rest[0])
        rest = rest[1:]
    return cmd, path, rest


def test_help_examples_use_options_that_exist() -> None:
    root = typer.main.get_command(app)
    bad = []
    for _, cmd in leaves():
        for line in examples(cmd.help or ""):
            target, path, rest = _resolve(shlex.split(line)[1:])
            try:
                with root.make_context("steward", [path[0]], resilient_parsing=True) as ctx:
                    target.make_context(" ".join(path), rest, parent=ctx)
            except Exception as e:  # a missing file is fine in an example; an unknown option is not
                if "No such option" in str(e) or "unexpected extra argument" in str(e):
                    bad.append(f"{line!r}: {e}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("args", [["run", "--help"], ["demo", "--help"], ["audit", "firings", "--help"], ["--help"]])
def test_flags_do_not_show_a_bool_type(args: list[str]) -> None:
    r = CliRunner().invoke(app, args, env={"COLUMNS": "120"})
    assert r.exit_code == 0 and "<bool>" not in r.output


def test_root_help_answers_in_under_half_a_second_of_cpu() -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([sys.executable, "-c", "from engine.cli.app import main; main()", "--help"],
                       cwd=ROOT, capture_output=True, text=True, env={**os.environ, "COLUMNS": "100"}, timeout=60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert r.returncode == 0 and "calendar" in r.stdout
    assert cpu < 0.5, f"`steward --help` took {cpu:.2f}s of CPU: something heavy is imported at module level"
    assert "sqlalchemy" not in subprocess.run([sys.executable, "-c", "import sys, engine.cli.app; print(' '.join(sys.modules))"],
                                              cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
