"""`steward users add|grant|revoke|deactivate|activate|password|list`: users and roles (admin only)."""

from __future__ import annotations

from collections.abc import Callable

import typer
from rich.table import Table
from sqlalchemy.engine import Connection

from engine.compliance import auth, users
from engine.errors import StewardError
from engine.cli.common import cfg, console, now, open_db, signed_in, user_errors

app = typer.Typer(no_args_is_help=True)


def _write(command: str, fn: Callable[[Connection, str | None], users.User]) -> users.User:
    """Run `fn(conn, acting admin)`; the bootstrap steps (first user, first password) need no sign-in."""
    with user_errors():
        eng = open_db(cfg())
        with eng.begin() as conn:
            bootstrap = (command == "users add" and users.count(conn) == 0) or (
                command == "users password" and not auth.any_password(conn))
            actor = None if bootstrap else signed_in(conn, command).name
            return fn(conn, actor)


def _show(u: users.User, what: str) -> None:
    console.print(f"{what} {u.name}: roles {', '.join(sorted(u.roles)) or '(none)'}"
                  + ("" if u.active else " (deactivated)"), highlight=False)


def _one_time(name: str, password: str) -> None:
    console.print(f"One-time password for {name}: [bold]{password}[/]\nShown once: hand it over privately. "
                  f"{name} signs in with `steward login {name}` or in the console and must choose a new password.",
                  highlight=False)


@app.command("add")
def add(name: str = typer.Argument(..., help="user name, e.g. li.wei (case and width do not matter: Li.Wei is li.wei)"),
        role: list[str] = typer.Option(..., "--role", "-r", help=f"one of {', '.join(users.ROLES)}; repeat for several"),
        display_name: str = typer.Option(None, "--name", help="full name shown in records"),
        advisor: str = typer.Option(None, "--advisor", help="advisors: their advisor id (they see only its clients)")) -> None:
    """Add a user with a one-time password (admin, signed in). The first user of a database must be an admin.

    Example: steward users add li.wei --role compliance --name "Li Wei"
    """
    holder: dict[str, str] = {}

    def go(conn: Connection, actor: str | None) -> users.User:
        u = users.add(conn, actor, name, role, display_name, advisor)
        holder["pw"] = auth.one_time_password()
        auth.set_password(conn, actor or users.BOOTSTRAP, u.name, holder["pw"], now(), one_time=True)
        return u

    u = _write("users add", go)
    _show(u, "added")
    _one_time(u.name, holder["pw"])


@app.command("password")
def password(name: str = typer.Argument(..., help="user name")) -> None:
    """Give a user a new one-time password and unlock them (admin). Example: steward users password li.wei

    On a database where no one has a password yet (upgraded from a version without sign-in), an
    admin's first password can be set without signing in, as the very first `users add` can.
    """
    holder: dict[str, str] = {}

    def go(conn: Connection, actor: str | None) -> users.User:
        u = users.get(conn, name)
        if u is None:
            raise StewardError(f"no user {users.canonical(name)!r}; `steward users list` shows them")
        if actor is None:
            if "admin" not in u.roles:
                raise users.PermissionDenied("no one has a password yet: start with an admin "
                                             "(`steward users password ADMIN`), then sign in as them")
            holder["pw"] = auth.one_time_password()
            auth.set_password(conn, users.BOOTSTRAP, u.name, holder["pw"], now(), one_time=True)
        else:
            holder["pw"] = auth.reset_password(conn, actor, name, now())
        return u

    u = _write("users password", go)
    _one_time(u.name, holder["pw"])


@app.command("grant")
def grant(name: str, role: str) -> None:
    """Give a user a role (admin; recorded in the audit log). Example: steward users grant li.wei supervisor"""
    _show(_write("users grant", lambda c, a: users.grant(c, a, name, role)), "updated")


@app.command("revoke")
def revoke(name: str, role: str) -> None:
    """Take a role from a user (admin; recorded in the audit log). Example: steward users revoke li.wei author"""
    _show(_write("users revoke", lambda c, a: users.revoke(c, a, name, role)), "updated")


@app.command("deactivate")
def deactivate(name: str) -> None:
    """Stop a user from acting (records stay; their sessions and tokens stop working)."""
    _show(_write("users deactivate", lambda c, a: users.set_active(c, a, name, False)), "deactivated")


@app.command("activate")
def activate(name: str) -> None:
    """Let a deactivated user act again."""
    _show(_write("users activate", lambda c, a: users.set_active(c, a, name, True)), "activated")


@app.command("list")
def list_() -> None:
    """Every user with their roles."""
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
