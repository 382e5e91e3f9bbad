"""Shared CLI plumbing: config and database from the global options, error display."""

from __future__ import annotations

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

from engine import db
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


def parse_day(value: str | None, c: Config, option: str = "--as-of") -> date:
    if value is None:
        return datetime.now(c.tz).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise StewardError(f"{option}: expected a date as YYYY-MM-DD, got {value!r}") from None


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
