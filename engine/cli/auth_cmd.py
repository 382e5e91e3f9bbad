"""`steward login|logout|whoami|passwd` and `steward tokens list|revoke`: who is at the keyboard."""

from __future__ import annotations

import typer
from rich.table import Table

from engine.compliance import auth
from engine.cli.common import (cfg, console, now, open_db, read_token, signed_in, token_file, user_errors,
                               write_token)

tokens_app = typer.Typer(no_args_is_help=True)


def register(root: typer.Typer) -> None:
    root.command("login")(login)
    root.command("logout")(logout)
    root.command("whoami")(whoami)
    root.command("passwd")(passwd)
    root.command("web")(web)
    root.add_typer(tokens_app, name="tokens", help="Your personal CLI tokens: list and revoke.")


def login(name: str = typer.Argument(..., help="your user name, e.g. li.wei"),
          password: str = typer.Option(..., "--password", prompt=True, hide_input=True,
                                       help="asked for when not given (reads a line from stdin when piped)")) -> None:
    """Sign in: a personal token for 30 days, written to ~/.config/steward/token (mode 0600).

    Example: steward login li.wei   (or: export STEWARD_TOKEN=... from `steward login --print`)
    """
    with user_errors():
        eng = open_db(cfg())
        raw, session = auth.sign_in(eng, name, password, now(), kind="cli")
        with eng.connect() as conn:
            change = auth.must_change(conn, session.user.name)
    path = write_token(raw)
    console.print(f"Signed in as {session.user.name} ({', '.join(sorted(session.user.roles))}) until "
                  f"{session.expires_at:%Y-%m-%d %H:%M} UTC; token in {path} (mode 0600).", highlight=False)
    if change:
        console.print("[yellow]Your password is a one-time password: choose your own now with `steward passwd`.[/]")


def logout() -> None:
    """Revoke your token and delete the token file."""
    with user_errors():
        eng = open_db(cfg())
        with eng.begin() as conn:
            who = auth.sign_out(conn, read_token(), now())
    path = token_file()
    if path.exists():
        path.unlink()
    console.print(f"Signed out {who}." if who else "No live token; nothing to revoke.", highlight=False)


def whoami() -> None:
    """Who your token says you are, with your roles."""
    with user_errors():
        eng = open_db(cfg())
        with eng.begin() as conn:
            s = auth.resolve(conn, read_token(), now(), kind="cli")
    if s is None:
        console.print("Not signed in: `steward login NAME`.")
        raise typer.Exit(1)
    console.print(f"{s.user.name} ({', '.join(sorted(s.user.roles))}); token valid until "
                  f"{s.expires_at:%Y-%m-%d %H:%M} UTC", highlight=False)


def passwd(old: str = typer.Option(..., "--old", prompt="Current password", hide_input=True),
           new: str = typer.Option(..., "--new", prompt="New password", hide_input=True,
                                   confirmation_prompt=True, help=f"at least {auth.MIN_PASSWORD} characters")) -> None:
    """Choose a new password (signed in). Example: steward passwd"""
    with user_errors():
        eng = open_db(cfg())
        with eng.begin() as conn:
            me = signed_in(conn, "passwd").name
        auth.change_password(eng, me, old, new, now())
    console.print("Password changed.")


@tokens_app.command("list")
def tokens_list() -> None:
    """Your live CLI tokens (hash prefix only; the secrets are never stored)."""
    with user_errors():
        eng = open_db(cfg())
        with eng.begin() as conn:
            me = signed_in(conn, "tokens list").name
            rows = auth.tokens(conn, me, now())
    t = Table(title=f"CLI tokens of {me} (UTC)")
    for col in ("token", "issued", "expires", "last used"):
        t.add_column(col)
    for r in rows:
        t.add_row(r.token_hash[:12], f"{r.created_at:%Y-%m-%d %H:%M}", f"{r.expires_at:%Y-%m-%d %H:%M}",
                  f"{r.last_seen_at:%Y-%m-%d %H:%M}")
    console.print(t)


@tokens_app.command("revoke")
def tokens_revoke(prefix: str = typer.Argument("", help="hash prefix from `steward tokens list`; empty: all")) -> None:
    """Revoke your CLI tokens (e.g. a laptop was lost). Example: steward tokens revoke 3fa2c1"""
    with user_errors():
        eng = open_db(cfg())
        with eng.begin() as conn:
            me = signed_in(conn, "tokens revoke").name
            n = auth.revoke_tokens(conn, me, me, prefix, now())
    console.print(f"{n} token(s) revoked.")


def web(host: str = typer.Option("127.0.0.1", "--host", help="address to listen on (keep loopback; put TLS in a reverse proxy)"),
        port: int = typer.Option(8080, "--port", help="port to listen on")) -> None:
    """Serve the browser console on http://127.0.0.1:8080 (sign in with your Steward user).

    Example: steward web --port 8080   then open http://127.0.0.1:8080/
    """
    import uvicorn

    from engine.web.app import create_app

    with user_errors():
        c = cfg()
        eng = open_db(c)
    console.print(f"Steward console on http://{host}:{port}/ (Ctrl-C stops it). For other machines, put a TLS reverse "
                  "proxy in front: session cookies are Secure.", highlight=False)
    uvicorn.run(create_app(eng, c), host=host, port=port, log_level="warning")
