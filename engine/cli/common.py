"""Shared CLI plumbing: config and database from the global options, error display."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from engine import clock
from engine import db
from engine.compliance import access, auth, users
from engine.config.base import Config, load_config
from engine.errors import SourceErrors, StewardError

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


class State:
    config_path: Path | None = None
    database: str | None = None


state = State()


def cfg() -> Config:
    c = load_config(state.config_path)
    if state.database:
        c = c.model_copy(update={"database": c.database.model_copy(update={"url": state.database})})
    return c


def open_db(c: Config) -> Engine:
    """Engine on the configured database, migrated to the newest schema."""
    eng = db.engine_for(c)
    db.upgrade(eng)
    return eng


def parse_day(value: str | None, c: Config) -> date:
    if value is None:
        return clock.now().astimezone(c.tz).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise StewardError(f"--as-of: expected a date as YYYY-MM-DD, got {value!r}") from None


def fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Show user-caused errors plainly (every problem, one per line) and exit non-zero."""
    try:
        yield
    except SourceErrors as e:
        for p in e.problems:
            err_console.print(f"[red]{p.severity}[/] {p}", highlight=False, soft_wrap=True)
        err_console.print(f"{len(e.problems)} problem(s); nothing was run or written.", highlight=False)
        raise typer.Exit(2) from None
    except StewardError as e:
        fail(str(e))


def progress_bar(description: str, total: int | None) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=err_console, transient=False,
        disable=not sys.stderr.isatty(),
    )


# ------------------------------------------------------------------ identity


def now() -> datetime:
    return clock.now()


def token_file() -> Path:
    """Where `steward login` keeps the personal token: STEWARD_TOKEN_FILE, else ~/.config/steward/token."""
    given = os.environ.get("STEWARD_TOKEN_FILE")
    return Path(given) if given else Path.home() / ".config" / "steward" / "token"


def read_token() -> str | None:
    """STEWARD_TOKEN, else the token file (refused when others can read it, like ssh keys)."""
    env = os.environ.get("STEWARD_TOKEN")
    if env:
        return env.strip()
    path = token_file()
    if not path.exists():
        return None
    if path.stat().st_mode & 0o077:
        raise StewardError(f"{path}: the token file must be readable by you only: chmod 600 {path}")
    return path.read_text(encoding="utf-8").strip() or None


def write_token(raw: str) -> Path:
    """Write the token file with mode 0600 (created so, never widened) in a 0700 folder."""
    path = token_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, raw.encode() + b"\n")
    finally:
        os.close(fd)
    return path


def signed_in(conn: Connection, command: str) -> users.User:
    """The person behind the CLI token, if their roles allow `command` (access.COMMANDS); else PermissionDenied."""
    action = access.COMMANDS[command]
    session = auth.resolve(conn, read_token(), now(), kind="cli")
    if session is None:
        raise users.PermissionDenied(
            f"`steward {command}` changes records, so it needs to know who you are: sign in with "
            "`steward login NAME` (or set STEWARD_TOKEN); your token may have expired or been revoked")
    if not access.allowed(action, session.user.roles):
        need = access.roles_for(action) or frozenset()
        raise users.PermissionDenied(
            f"{session.user.name} ({', '.join(sorted(session.user.roles)) or 'no role'}) may not run `steward {command}`: "
            f"that needs the {' or '.join(sorted(need))} role; an admin grants roles with `steward users grant`")
    return session.user


def identity(engine: Engine, command: str) -> str:
    """The signed-in user's canonical name for `command`, in its own committed transaction."""
    with engine.begin() as conn:
        return signed_in(conn, command).name


def viewer(conn: Connection) -> str:
    """Who is reading client data, for `client.viewed`: the signed-in user, else `os:` and the login name."""
    import getpass

    session = auth.resolve(conn, read_token(), now(), kind="cli")
    return session.user.name if session else f"os:{getpass.getuser()}"
