"""Users with passwords and signed-in tokens, made through the real identity code."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import Engine

from engine.compliance import auth, users

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
PASSWORD = "correct horse battery"


def make_user(engine: Engine, name: str, roles: list[str], advisor_id: str | None = None,
              password: str = PASSWORD) -> users.User:
    """Add `name` (adding the admin `root` first on an empty database) with a known password."""
    with engine.begin() as conn:
        if users.count(conn) == 0:
            users.add(conn, None, "root", ["admin"])
            auth.set_password(conn, "root", "root", PASSWORD, NOW)
        u = users.get(conn, name) or users.add(conn, "root", name, roles, advisor_id=advisor_id)
        auth.set_password(conn, "root", u.name, password, NOW)
        return u


def cli_token(engine: Engine, name: str, roles: list[str], advisor_id: str | None = None) -> str:
    """A live CLI token for a new user `name` (set it as STEWARD_TOKEN)."""
    make_user(engine, name, roles, advisor_id)
    raw, _ = auth.sign_in(engine, name, PASSWORD, datetime.now(timezone.utc), kind="cli")
    return raw


def fast_hasher() -> object:
    """Real argon2id at the library's lowest cost: tests hash dozens of passwords on a shared 2-core machine."""
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
