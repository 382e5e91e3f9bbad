"""Run `steward` as a real process, without paying the interpreter's start-up on every call.

Most CLI tests run a dozen commands, and a fresh `python -m engine.cli` spends one to two CPU
seconds importing SQLAlchemy, SQLModel, pydantic and the engine before it does anything: that
was a third of the suite's time. Here, one fork server per test worker imports the CLI once
(`multiprocessing`'s forkserver with the CLI preloaded); every command is a fresh fork of it:
its own process, with the environment, working directory, argv, stdin and exit code a user's
shell would give, and nothing shared with the test process (no clock, no database connection,
no monkeypatch). Output goes to files that are read back, as `subprocess.run` would capture it.

`STEWARD_TEST_SUBPROCESS=1` runs every command as a fresh interpreter instead (the old way),
to rule the fork server out when a test behaves differently.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PRELOAD = ["engine.cli.app", *(f"engine.cli.{m}_cmd" for m in (
    "auth", "audit", "dispatch", "docs", "events", "report", "review", "risk", "rules", "run", "scheduler",
    "supervision", "tasks", "why")), "engine.composition", "engine.pipeline.run", "tests.faketoday"]
"""Modules the fork server imports once (the heavy ones every command needs)."""

_CTX: Any = None


def _context() -> Any:
    global _CTX
    if _CTX is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        _CTX = ctx
    return _CTX


def _child(argv: list[str], env: dict[str, str], cwd: str, stdin: str | None, out: str, err: str) -> None:
    """The command's process: set up what a shell would, then run the CLI's own `main`."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    fd = os.open(stdin if stdin is not None else os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    for path, target in ((out, 1), (err, 2)):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.argv = ["steward", *argv]
    code: Any = 0
    try:
        from tests import faketoday

        faketoday.start()  # the same calendar as the tests when the clock is faked
        from engine.cli import common

        # The consoles were made at import in the fork server: read this command's
        # environment (COLUMNS, NO_COLOR) and streams again, as a fresh process would.
        common.console.__init__()  # type: ignore[misc]
        common.err_console.__init__(stderr=True)  # type: ignore[misc]
        from engine.cli.app import main

        main()
    except SystemExit as e:
        code = e.code
    except BaseException:  # noqa: BLE001 - a crash is an exit code 1 with its traceback, as python would
        traceback.print_exc()
        code = 1
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def run(argv: list[str], *, env: dict[str, str], cwd: Path | str = ROOT, input: str | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`steward argv...` in its own process; returns what `subprocess.run(..., text=True)` would."""
    if os.environ.get("STEWARD_TEST_SUBPROCESS") == "1":
        from tests.faketoday import python_m

        return subprocess.run([*python_m("engine.cli.__main__"), *argv], cwd=cwd, env=env, input=input,
                              capture_output=True, text=True, timeout=timeout)
    with tempfile.TemporaryDirectory(prefix="steward-cli-") as d:
        out, err = os.path.join(d, "out"), os.path.join(d, "err")
        stdin = None
        if input is not None:
            stdin = os.path.join(d, "in")
            Path(stdin).write_text(input, encoding="utf-8")
        from tests import faketoday

        env = dict(env)
        shift = faketoday.shift_days()
        if shift is not None:  # the command sees the tests' calendar, whatever environment it was given
            env.setdefault(faketoday.SHIFT_VAR, str(shift))
        p = _context().Process(target=_child, args=(list(argv), env, str(cwd), stdin, out, err))
        p.start()
        p.join(timeout)
        if p.exitcode is None:
            p.kill()
            p.join()
            raise subprocess.TimeoutExpired(["steward", *argv], timeout)
        return subprocess.CompletedProcess(["steward", *argv], p.exitcode,
                                           Path(out).read_text(encoding="utf-8") if os.path.exists(out) else "",
                                           Path(err).read_text(encoding="utf-8") if os.path.exists(err) else "")
