"""The `steward` command: root options and command registration.

`steward --help` must answer at once, so this module imports nothing heavy: the root group
lists COMMANDS from the table below and builds the real commands (`build()`, which imports
every command module, SQLAlchemy and the rest) only when one is run or asked for its help.
tests/test_cli_help.py fails when a command is missing from COMMANDS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

COMMANDS: dict[str, str] = {
    "demo": "Build a synthetic brokerage book, evaluate it once, print a summary.",
    "import": "Load back-office files into the database: all rows or, on any error, none.",
    "run": "Evaluate every client in the database once and record the firings.",
    "evaluate": "Dry run without a database: print each firing as one JSON line.",
    "rules": "Check, test, list and backtest rules.",
    "audit": "The audit trail: events, firings, verify, export, retention.",
    "events": "Event intake and event rules: post, serve, replay, list, retry, check, test.",
    "risk": "Score risk questionnaires.",
    "docs": "Regenerate generated documentation.",
    "why": "Explain one client's day: every rule, fired or not, and why.",
    "review": "Submit, review and approve rule and template changes.",
    "users": "Users and roles (author, compliance, admin, ...).",
    "tasks": "The advisor's call list for a day; record a task's outcome.",
    "supervision": "Daily review sample of sent messages and completed tasks.",
    "scheduler": "Run the service: nightly and intraday evaluations, dispatcher, escalations.",
    "calendar": "Trading days: sync from exchange-calendars, import published closures, show, override.",
    "dispatch": "Send queued messages once; inspect and repair the outbox.",
    "outcome": "Record the outcome of an advisor's call task.",
    "dnc": "The do-not-call list.",
    "webhook": "Serve inbound replies: opt-outs (退订, STOP, BAJA) and delivery receipts.",
    "report": "Reports on what the rules achieved.",
    "login": "Sign in: a personal CLI token for 30 days.",
    "logout": "Revoke your token and delete the token file.",
    "whoami": "Who your token says you are, with your roles.",
    "passwd": "Choose a new password (signed in).",
    "web": "Serve the browser console (sign in with your Steward user).",
    "tokens": "Your personal CLI tokens: list and revoke.",
}
"""Every top-level command and its one-line help, as `steward --help` shows it."""


def build() -> typer.Typer:
    """Every command, from its module (imports everything)."""
    from engine.cli import (
        auth_cmd,  # login, logout, whoami, passwd, web, tokens
        audit_cmd,  # audit trail: events, firings, verify, export, retention
        dispatch_cmd,  # dispatch, outcome, do-not-call, webhook
        docs_cmd,  # generated docs
        events_cmd,  # event intake and event rules
        report_cmd,  # branch report
        review_cmd,  # compliance review, users, rules backtest
        risk_cmd,  # risk questionnaires
        rules_cmd,  # check, test, list
        run_cmd,  # demo, import, run, evaluate
        scheduler_cmd,  # scheduler service, trading calendar
        supervision_cmd,  # supervisory review sample
        tasks_cmd,  # advisor call list
        why_cmd,  # explain one client's day
    )

    full = typer.Typer(add_completion=False)
    run_cmd.register(full)
    full.add_typer(rules_cmd.app, name="rules", help=COMMANDS["rules"])
    full.add_typer(audit_cmd.app, name="audit", help=COMMANDS["audit"])
    full.add_typer(events_cmd.app, name="events", help=COMMANDS["events"])
    full.add_typer(risk_cmd.app, name="risk", help=COMMANDS["risk"])
    full.add_typer(docs_cmd.app, name="docs", help=COMMANDS["docs"])
    for module in (auth_cmd, why_cmd, review_cmd, tasks_cmd, supervision_cmd, scheduler_cmd, dispatch_cmd, report_cmd):
        module.register(full)
    return full


def _flags_without_type() -> None:
    """Help shows `--force` alone, not `--force <bool>`: a flag takes no value (typer labels every option)."""
    if getattr(TyperOption.display_type_rich, "_steward", False):
        return
    typed = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else typed(self, ctx)

    display_type_rich._steward = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


class LazyGroup(TyperGroup):
    """Lists COMMANDS without importing them; loads the real commands before resolving one."""

    _real: dict[str, Any] | None = None

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _flags_without_type()

    def _load(self) -> dict[str, Any]:
        if LazyGroup._real is None:
            LazyGroup._real = dict(typer.main.get_group(build()).commands)
        self.commands = dict(LazyGroup._real)
        return LazyGroup._real

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS) + [n for n in (LazyGroup._real or {}) if n not in COMMANDS]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if LazyGroup._real is not None:
            return LazyGroup._real.get(cmd_name)
        if cmd_name in COMMANDS:  # listing for `steward --help`: a stand-in with the one-line help
            return TyperCommand(cmd_name, help=COMMANDS[cmd_name], short_help=COMMANDS[cmd_name])
        return None

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        self._load()
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="steward",
    cls=LazyGroup,
    help="Steward: client-servicing rules for brokerages. Start with `steward demo`, then try the "
         "examples in README.md; every command's --help has examples.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    config: Path = typer.Option(None, "--config", "-c", help="config file (default: ./config.yaml)"),
    database: str = typer.Option(None, "--database", help="database URL, overriding config.yaml", envvar="STEWARD_DATABASE_URL"),
) -> None:
    from engine.cli.common import state
    from engine.composition import install

    install()  # the composition root: built-in providers, policy stages, record hooks
    state.config_path = config
    state.database = database


def all_commands() -> dict[str, Any]:
    """The real click commands by name (for tests and generated docs)."""
    group = typer.main.get_command(app)
    assert isinstance(group, LazyGroup)
    return group._load()


def main() -> None:
    app()
