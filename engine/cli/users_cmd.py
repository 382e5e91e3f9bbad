"""`steward users add|grant|revoke|deactivate|activate|list`: users and roles (admin only)."""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.table import Table
from sqlalchemy.engine import Connection

from engine.compliance import users
from engine.cli.common import cfg, console, open_db, user_errors

app = typer.Typer(no_args_is_help=True)
AS_HELP = "acting user (default: STEWARD_USER, then compliance.acting_user)"


def acting(name: str | None) -> str | None:
    """--as, else STEWARD_USER (typer), else compliance.acting_user from config."""
    return name or cfg().compliance.acting_user


def _write(fn: Callable[[Connection], users.User]) -> users.User:
    with user_errors():
        eng = open_db(cfg())
        with eng.begin() as conn:
            return fn(conn)


def _show(u: users.User, what: str) -> None:
    console.print(f"{what} {u.name}: roles {', '.join(sorted(u.roles)) or '(none)'}"
                  + ("" if u.active else " (deactivated)"))


@app.command("add")
def add(name: str = typer.Argument(..., help="user name, e.g. li.wei"),
        role: list[str] = typer.Option(..., "--role", "-r", help=f"one of {', '.join(users.ROLES)}; repeat for several"),
        display_name: str = typer.Option(None, "--name", help="full name shown in records"),
        as_: str = typer.Option(None, "--as", envvar="STEWARD_USER", help=AS_HELP)) -> None:
    """Add a user. The first user of a database must be an admin and needs no --as.

    Examples:

      steward users add admin --role admin

      steward users add li.wei --role author --as admin
    """
    u = _write(lambda c: users.add(c, acting(as_), name, role, display_name))
    _show(u, "added")


@app.command("grant")
def grant(name: str = typer.Argument(..., help="user name, e.g. li.wei"), role: str = typer.Argument(..., help="author, compliance, supervisor, advisor, auditor or admin"), as_: str = typer.Option(None, "--as", envvar="STEWARD_USER", help=AS_HELP)) -> None:
    """Give a user a role (admin only; recorded in the audit log).

    Example:

      steward users grant li.wei supervisor --as admin
    """
    _show(_write(lambda c: users.grant(c, acting(as_), name, role)), "updated")


@app.command("revoke")
def revoke(name: str = typer.Argument(..., help="user name, e.g. li.wei"), role: str = typer.Argument(..., help="author, compliance, supervisor, advisor, auditor or admin"), as_: str = typer.Option(None, "--as", envvar="STEWARD_USER", help=AS_HELP)) -> None:
    """Take a role from a user (admin only; recorded in the audit log).

    Example:

      steward users revoke li.wei supervisor --as admin
    """
    _show(_write(lambda c: users.revoke(c, acting(as_), name, role)), "updated")


@app.command("deactivate")
def deactivate(name: str = typer.Argument(..., help="user name, e.g. li.wei"), as_: str = typer.Option(None, "--as", envvar="STEWARD_USER", help=AS_HELP)) -> None:
    """Stop a user from acting (records stay).

    Example:

      steward users deactivate li.wei --as admin
    """
    _show(_write(lambda c: users.set_active(c, acting(as_), name, False)), "deactivated")


@app.command("activate")
def activate(name: str = typer.Argument(..., help="user name, e.g. li.wei"), as_: str = typer.Option(None, "--as", envvar="STEWARD_USER", help=AS_HELP)) -> None:
    """Let a deactivated user act again.

    Example:

      steward users activate li.wei --as admin
    """
    _show(_write(lambda c: users.set_active(c, acting(as_), name, True)), "activated")


@app.command("list")
def list_() -> None:
    """Every user with their roles.

    Example:

      steward users list
    """
    with user_errors():
        eng = open_db(cfg())
        with eng.connect() as conn:
            rows = users.all_users(conn)
    t = Table(title="Users")
    for col in ("user", "name", "roles", "active"):
        t.add_column(col)
    for u in rows:
        t.add_row(u.name, u.display_name or "", ", ".join(sorted(u.roles)), "yes" if u.active else "no")
    console.print(t)
    if not rows:
        console.print("No users yet. Start with [bold]steward users add NAME --role admin[/].")
    console.print("Roles: " + "; ".join(f"{r}: {m}" for r, m in users.ROLE_MEANING.items()), highlight=False)
