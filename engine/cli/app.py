"""The `steward` command: root options and command registration."""

from __future__ import annotations

from pathlib import Path

import typer

from engine.cli import audit_cmd, docs_cmd, run_cmd, rules_cmd
from engine.cli import risk_cmd
from engine.cli import why_cmd, supervision_cmd, report_cmd  # audit trail: why, supervision, report
from engine.cli import review_cmd  # compliance review, users, rules backtest
from engine.cli import dispatch_cmd, scheduler_cmd  # scheduler, calendar, dispatch, outcome, dnc, webhook, report
from engine.cli import tasks_cmd  # advisor call list
from engine.cli import events_cmd  # event intake and event rules
from engine.cli.common import state

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
    state.config_path = config
    state.database = database


run_cmd.register(app)
app.add_typer(rules_cmd.app, name="rules", help="Check, test and list rules.")
app.add_typer(audit_cmd.app, name="audit", help="Look up recorded firings.")
app.add_typer(docs_cmd.app, name="docs", help="Regenerate generated documentation.")
why_cmd.register(app); supervision_cmd.register(app); report_cmd.register(app)
app.add_typer(risk_cmd.app, name="risk", help="Score risk questionnaires.")

review_cmd.register(app)

scheduler_cmd.register(app)
dispatch_cmd.register(app)
tasks_cmd.register(app)
app.add_typer(events_cmd.app, name="events", help="Event intake and event rules: post, serve, replay, list, retry, check, test.")


def main() -> None:
    app()
