"""`steward audit list|show`."""

from __future__ import annotations

import getpass
import json
import os

import typer
from rich.table import Table

from engine import audit
from engine.cli.common import cfg, console, fail, open_db, user_errors

app = typer.Typer(no_args_is_help=True)


def acting_user(given: str | None = None) -> str:
    """Who runs a command, for the audit log: --as, else STEWARD_USER, else the login name."""
    return given or os.environ.get("STEWARD_USER") or getpass.getuser()


@app.command("list")
def list_(
    rule: str = typer.Option(None, "--rule", help="only this rule id"),
    client: str = typer.Option(None, "--client", help="only this client id"),
    as_of: str = typer.Option(None, "--date", help="only this evaluation date YYYY-MM-DD"),
    status: str = typer.Option(None, "--status", help="pending, open, failed, ..."),
    limit: int = typer.Option(50, "--limit", min=1),
) -> None:
    """Recorded firings, newest first."""
    with user_errors():
        eng = open_db(cfg())
        with eng.connect() as conn:
            rows = audit.list_firings(conn, rule, client, as_of, status, limit)
    t = Table(title=f"Firings ({len(rows)} shown, newest first)")
    for col in ("id", "date", "rule", "client", "advisor", "action", "status", "rule hash", "text"):
        t.add_column(col, overflow="ellipsis", no_wrap=col != "text", max_width=60 if col == "text" else None)
    for r in rows:
        t.add_row(str(r.id), str(r.as_of), r.rule_id, r.client_id, r.advisor_id or "", f"{r.action_type}/{r.channel}",
                  r.status, r.rule_hash[:10], (r.message or r.error or "").replace("\n", " "))
    console.print(t)
    if not rows:
        console.print("No firings match. Run [bold]steward run[/] (or [bold]steward demo[/]) first.")


@app.command("show")
def show(firing_id: int = typer.Argument(..., help="firing id from `steward audit list`")) -> None:
    """One firing in full: rule version, template version, facts, rendered words."""
    with user_errors():
        eng = open_db(cfg())
        with eng.connect() as conn:
            r = audit.get_firing(conn, firing_id)
    if r is None:
        fail(f"no firing with id {firing_id}; `steward audit list` shows the ids")
    t = Table(show_header=False, title=f"Firing {r.id}")
    t.add_column("field", style="bold")
    t.add_column("value", overflow="fold")
    for k in ("as_of", "run_id", "rule_id", "rule_hash", "template_hash", "rule_class", "action_type", "channel",
              "priority", "client_id", "advisor_id", "locale", "status", "due_on", "subject", "message", "error", "created_at"):
        v = getattr(r, k)
        if v is not None:
            t.add_row(k, str(v))
    t.add_row("facts", json.dumps(r.facts, ensure_ascii=False, indent=1, sort_keys=True))
    console.print(t)
