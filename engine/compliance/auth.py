"""Proof of identity: password sign-in with lockout, console sessions and personal CLI tokens.

Passwords are kept only as argon2id hashes (argon2-cffi, behind this module). Sessions and CLI
tokens are random 256-bit secrets shown once; the database keeps only their SHA-256, so a copy
of the database lets no one sign in. Every sign-in, failure, lockout, sign-out, token issue and
revocation is an audit event written in the same transaction as the change it records.
Callers pass `now` (the injected clock), so expiry and lockout are testable without sleeping.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, func, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from engine.audit import log as auditlog
from engine.compliance import users
from engine.errors import StewardError

for _name, _meaning in (
    ("user.signed_in", "a user proved their password (console session or CLI token)"),
    ("user.sign_in_failed", "a sign-in was refused (wrong password, unknown, locked or deactivated user)"),
    ("user.locked_out", "too many failed sign-ins: the account is locked for a while"),
    ("user.signed_out", "a user ended a console session or CLI token"),
    ("user.password_set", "a password was set (by the user, or a one-time password by an admin)"),
    ("token.issued", "a personal CLI token was issued (`steward login`)"),
    ("token.revoked", "a personal CLI token was revoked"),
):
    auditlog.register_event_name(_name, _meaning)

_HASHER = PasswordHasher()
MIN_PASSWORD = 10


@dataclass(frozen=True)
class Policy:
    max_failures: int = 5
    """Failed sign-ins in a row that lock an account."""
    lockout: timedelta = timedelta(minutes=15)
    session_max: timedelta = timedelta(hours=8)
    """A console session ends this long after sign-in, however busy."""
    session_idle: timedelta = timedelta(minutes=30)
    """A console session ends after this long without a request."""
    token_max: timedelta = timedelta(days=30)
    """A CLI token from `steward login` lasts this long."""


POLICY = Policy()


class AuthToken(SQLModel, table=True):
    """A console session (kind 'session') or a personal CLI token (kind 'cli'); only its hash is kept."""

    __tablename__ = "auth_token"
    token_hash: str = Field(primary_key=True, max_length=64)
    user_name: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=16)
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None = None
    csrf: str | None = Field(default=None, max_length=64)
    """Console sessions: the token every form must carry back."""


TOKEN = AuthToken.__table__  # type: ignore[attr-defined]
USER = users.USER


class SignInRefused(StewardError):
    """Wrong name or password, or a locked or deactivated account (the message never says which name exists)."""


@dataclass(frozen=True)
class Session:
    user: users.User
    kind: str
    csrf: str | None
    expires_at: datetime


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise StewardError(f"a password needs at least {MIN_PASSWORD} characters")
    return _HASHER.hash(password)


def one_time_password() -> str:
    """A readable random password (about 80 bits) the user must change at first sign-in."""
    return "-".join(secrets.token_urlsafe(5) for _ in range(3))


def _digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _event(name: str, actor: str, now: datetime, **data: Any) -> auditlog.Event:
    return auditlog.Event(name, actor=actor, data=data, at=now)


def set_password(conn: Connection, actor: str, name: str, password: str, now: datetime, *,
                 one_time: bool = False) -> None:
    """Store a new password hash; a one-time password must be changed at the next sign-in."""
    name = users.canonical(name)
    done = conn.execute(update(USER).where(USER.c.name == name).values(
        password_hash=hash_password(password), must_change_password=one_time, failed_logins=0, locked_until=None))
    if not done.rowcount:
        raise StewardError(f"no user {name!r}")
    auditlog.append(conn, [_event("user.password_set", users.canonical(actor), now, user=name, one_time=one_time)])


def reset_password(conn: Connection, actor: str | None, name: str, now: datetime) -> str:
    """An admin gives a user a new one-time password (returned to show once)."""
    admin = users.require(conn, actor, "users.manage")
    pw = one_time_password()
    set_password(conn, admin.name, name, pw, now, one_time=True)
    return pw


def _verify(stored: str | None, password: str) -> bool:
    if not stored:
        _HASHER.hash("timing-equaliser")  # no user or no password: cost the same as a real check
        return False
    try:
        return _HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password(conn: Connection, name: str, password: str, now: datetime, via: str,
                   policy: Policy = POLICY) -> users.User:
    """The user, if the password is right and the account active and not locked; counts failures.

    The caller must commit even when this raises: the failure count and audit event are the point.
    """
    cname = users.canonical(name)
    row = conn.execute(select(USER).where(USER.c.name == cname)).first()
    refused = SignInRefused("sign-in refused: wrong user name or password, or the account is locked "
                            "(ask an admin to reset it)")
    if row is None or not row.active:
        _verify(None, password)
        auditlog.append(conn, [_event("user.sign_in_failed", cname or "?", now, via=via,
                                      reason="unknown user" if row is None else "deactivated")])
        raise refused
    locked = row.locked_until is not None and _aware(row.locked_until, now) > now
    if locked:
        auditlog.append(conn, [_event("user.sign_in_failed", cname, now, via=via, reason="locked")])
        raise refused
    if not _verify(row.password_hash, password):
        failures = int(row.failed_logins or 0) + 1
        lock = failures >= policy.max_failures
        conn.execute(update(USER).where(USER.c.name == cname).values(
            failed_logins=0 if lock else failures, locked_until=now + policy.lockout if lock else None))
        events = [_event("user.sign_in_failed", cname, now, via=via, reason="wrong password", failures=failures)]
        if lock:
            events.append(_event("user.locked_out", cname, now, until=(now + policy.lockout).isoformat()))
        auditlog.append(conn, events)
        raise refused
    if _HASHER.check_needs_rehash(row.password_hash):
        conn.execute(update(USER).where(USER.c.name == cname).values(password_hash=_HASHER.hash(password)))
    conn.execute(update(USER).where(USER.c.name == cname).values(failed_logins=0, locked_until=None))
    return users._user(row)


def any_password(conn: Connection) -> bool:
    """Whether anyone can sign in at all (False on a database upgraded from before passwords existed)."""
    return conn.execute(select(USER.c.name).where(USER.c.password_hash.is_not(None)).limit(1)).first() is not None


def must_change(conn: Connection, name: str) -> bool:
    return bool(conn.execute(select(USER.c.must_change_password).where(USER.c.name == users.canonical(name))).scalar())


def _aware(t: datetime, now: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=now.tzinfo)


def sign_in(engine: Engine, name: str, password: str, now: datetime, kind: str = "session",
            policy: Policy = POLICY) -> tuple[str, Session]:
    """Check the password and open a console session ('session') or a CLI token ('cli').

    Returns the raw secret (shown or set as a cookie once; only its hash is stored) and the session.
    A refusal is committed (failure count, lockout, audit event) before SignInRefused is raised.
    """
    if kind not in ("session", "cli"):
        raise ValueError(kind)
    refused: SignInRefused | None = None
    with engine.begin() as conn:
        try:
            return _open(conn, check_password(conn, name, password, now, via=kind, policy=policy), kind, now, policy)
        except SignInRefused as e:
            refused = e
    raise refused


def change_password(engine: Engine, name: str, old: str, new: str, now: datetime) -> None:
    """The user changes their own password (proving the old one; a wrong one counts as a failure)."""
    refused: SignInRefused | None = None
    with engine.begin() as conn:
        try:
            user = check_password(conn, name, old, now, via="password-change")
        except SignInRefused as e:
            refused = e
        else:
            if old == new:
                raise StewardError("choose a new password different from the old one")
            set_password(conn, user.name, user.name, new, now)
            return
    raise refused


def _open(conn: Connection, user: users.User, kind: str, now: datetime, policy: Policy) -> tuple[str, Session]:
    raw = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24) if kind == "session" else None
    expires = now + (policy.session_max if kind == "session" else policy.token_max)
    conn.execute(TOKEN.insert().values(token_hash=_digest(raw), user_name=user.name, kind=kind, created_at=now,
                                       expires_at=expires, last_seen_at=now, csrf=csrf))
    events = [_event("user.signed_in", user.name, now, via=kind)]
    if kind == "cli":
        events.append(_event("token.issued", user.name, now, token=_digest(raw)[:12], expires=expires.isoformat()))
    auditlog.append(conn, events)
    return raw, Session(user, kind, csrf, expires)


def resolve(conn: Connection, raw: str | None, now: datetime, kind: str = "session",
            policy: Policy = POLICY) -> Session | None:
    """The live session or token behind `raw`, touching its idle clock; None when absent, expired or revoked."""
    if not raw:
        return None
    row = conn.execute(select(TOKEN).where(TOKEN.c.token_hash == _digest(raw), TOKEN.c.kind == kind)).first()
    if row is None or row.revoked_at is not None or _aware(row.expires_at, now) <= now:
        return None
    if kind == "session" and _aware(row.last_seen_at, now) + policy.session_idle <= now:
        return None
    user = users.get(conn, row.user_name)
    if user is None or not user.active:
        return None
    conn.execute(update(TOKEN).where(TOKEN.c.token_hash == row.token_hash).values(last_seen_at=now))
    return Session(user, kind, row.csrf, _aware(row.expires_at, now))


def sign_out(conn: Connection, raw: str | None, now: datetime) -> str | None:
    """Revoke a session or CLI token; returns the user it belonged to (None if it was not live)."""
    if not raw:
        return None
    row = conn.execute(select(TOKEN).where(TOKEN.c.token_hash == _digest(raw), TOKEN.c.revoked_at.is_(None))).first()
    if row is None:
        return None
    conn.execute(update(TOKEN).where(TOKEN.c.token_hash == row.token_hash).values(revoked_at=now))
    events = [_event("user.signed_out", row.user_name, now, via=row.kind)]
    if row.kind == "cli":
        events.append(_event("token.revoked", row.user_name, now, token=row.token_hash[:12], by=row.user_name))
    auditlog.append(conn, events)
    return str(row.user_name)


def tokens(conn: Connection, name: str, now: datetime) -> list[Any]:
    """A user's live CLI tokens (hash prefix, issued, expires, last used)."""
    return list(conn.execute(select(TOKEN).where(
        TOKEN.c.user_name == users.canonical(name), TOKEN.c.kind == "cli", TOKEN.c.revoked_at.is_(None),
        TOKEN.c.expires_at > now).order_by(TOKEN.c.created_at)))


def revoke_tokens(conn: Connection, actor: str, name: str, prefix: str, now: datetime) -> int:
    """Revoke a user's CLI tokens whose hash starts with `prefix` ('' for all of them)."""
    rows = [t for t in tokens(conn, name, now) if t.token_hash.startswith(prefix)]
    for t in rows:
        conn.execute(update(TOKEN).where(TOKEN.c.token_hash == t.token_hash).values(revoked_at=now))
    auditlog.append(conn, [_event("token.revoked", users.canonical(actor), now, token=t.token_hash[:12],
                                  user=t.user_name) for t in rows])
    return len(rows)


def live_sessions(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(TOKEN).where(TOKEN.c.revoked_at.is_(None))).scalar() or 0)
