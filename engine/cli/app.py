"""The `steward` command: root options and command registration."""

from __future__ import annotations

from pathlib import Path

import typer

from engine.cli import (
    auth_cmd,  # login, logout, whoami, passwd, tokens
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
from engine.cli.common import state
from engine.composition import install

app = typer.Typer(
    name="steward",
    help="Steward: client-servicing rules for brokerages. Start with `steward demo`.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    config: Path = typer.Option(None, "--config", "-c", help="config file (default: ./config.yaml)"),
    database: str = typer.Option(None, "--database", help="database URL, overriding config.yaml", envvar="STEWARD_DATABASE_URL"),
) -> None:
    install()  # the composition root: built-in providers, policy stages, record hooks
    state.config_path = config
    state.database = database


run_cmd.register(app)
app.add_typer(rules_cmd.app, name="rules", help="Check, test, list and backtest rules.")
app.add_typer(audit_cmd.app, name="audit", help="The audit trail: events, firings, verify, export, retention.")
app.add_typer(events_cmd.app, name="events", help="Event intake and event rules: post, serve, replay, list, retry, check, test.")
app.add_typer(risk_cmd.app, name="risk", help="Score risk questionnaires.")
app.add_typer(docs_cmd.app, name="docs", help="Regenerate generated documentation.")
for module in (auth_cmd, why_cmd, review_cmd, tasks_cmd, supervision_cmd, scheduler_cmd, dispatch_cmd, report_cmd):
    module.register(app)


def main() -> None:
    app()
