"""Users and roles, kept in the database; every review and user action is checked against them.

Roles (COMPLIANCE.md section 8): author (writes rules and templates), compliance (reviews and
approves), supervisor, advisor, auditor, admin. Separation of duties: an admin manages users
but can never approve, so no user holds both admin and compliance, and an approver is never
the author of what they approve (checked in engine.compliance.review).

Commands name the acting user (`--as USER`); the CLI trusts the operating-system account
that runs it, so deployments give each person their own account and run `steward` as them.
Role changes go to the audit log (`role.granted`, `role.revoked`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, func, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from engine.audit import log as auditlog
from engine import clock
from engine.errors import StewardError, did_you_mean

ROLES = ("author", "compliance", "supervisor", "advisor", "auditor", "admin")
ROLE_MEANING = {
    "author": "writes rules, templates and lint lists; submits proposals",
    "compliance": "reviews proposals; approves or rejects them (never their own)",
    "supervisor": "audits firings and sent messages; reads proposals",
    "advisor": "serves own clients; reads proposals",
    "auditor": "reads everything, changes nothing",
    "admin": "manages users and roles; can never approve",
}
PERMISSIONS: dict[str, frozenset[str]] = {
    "review.submit": frozenset({"author"}),
    "review.decide": frozenset({"compliance"}),
    "review.read": frozenset(ROLES),
    "users.manage": frozenset({"admin"}),
    "users.read": frozenset(ROLES),
}
EXCLUSIVE = (frozenset({"admin", "compliance"}),)
"""Role pairs no one may hold together."""
USER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9._-]{1,63}$")
BOOTSTRAP = "bootstrap"


class AppUser(SQLModel, table=True):
    __tablename__ = "app_user"

    name: str = Field(primary_key=True, max_length=64)
    display_name: str | None = None
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    active: bool = True
    created_at: datetime
    created_by: str = Field(max_length=64)


USER = AppUser.__table__  # type: ignore[attr-defined]


class PermissionDenied(StewardError):
    """The acting user may not do this."""


@dataclass(frozen=True)
class User:
    name: str
    roles: frozenset[str]
    active: bool
    display_name: str | None = None


def _user(row: Any) -> User:
    return User(row.name, frozenset(row.roles or ()), bool(row.active), row.display_name)


def get(conn: Connection, name: str) -> User | None:
    row = conn.execute(select(USER).where(USER.c.name == name)).first()
    return _user(row) if row else None


def all_users(conn: Connection) -> list[User]:
    return [_user(r) for r in conn.execute(select(USER).order_by(USER.c.name))]


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(USER)).scalar() or 0)


def require(conn: Connection, name: str | None, action: str) -> User:
    """The acting user, if they exist, are active and hold a role allowed to do `action`."""
    if not name:
        raise PermissionDenied("name the acting user: --as USER (or STEWARD_USER, or compliance.acting_user in config.yaml)")
    user = get(conn, name)
    if user is None:
        known = [u.name for u in all_users(conn)]
        raise PermissionDenied(f"unknown user {name!r}{did_you_mean(name, known)}; an admin adds users with `steward users add`")
    if not user.active:
        raise PermissionDenied(f"user {name!r} is deactivated")
    allowed = PERMISSIONS[action]
    if action == "review.decide" and "admin" in user.roles:
        raise PermissionDenied(f"user {name!r} is an admin: admins can never approve or reject")
    if not user.roles & allowed:
        raise PermissionDenied(f"user {name!r} ({', '.join(sorted(user.roles)) or 'no role'}) may not {action.split('.')[1]}: "
                               f"that needs the {' or '.join(sorted(allowed))} role")
    return user


def _check_roles(roles: Iterable[str]) -> frozenset[str]:
    out = frozenset(roles)
    for r in out:
        if r not in ROLES:
            raise StewardError(f"unknown role {r!r}{did_you_mean(r, ROLES)}; roles are {', '.join(ROLES)}")
    for pair in EXCLUSIVE:
        if pair <= out:
            raise StewardError(f"no user may hold both {' and '.join(sorted(pair))} (an admin can never approve)")
    return out


def _role_events(actor: str, name: str, roles: Iterable[str], granted: bool) -> list[auditlog.Event]:
    ev = "role.granted" if granted else "role.revoked"
    return [auditlog.Event(ev, actor=actor, data={"user": name, "role": r}) for r in sorted(roles)]


def add(conn: Connection, actor: str | None, name: str, roles: Iterable[str], display_name: str | None = None) -> User:
    """Add a user. The very first user must be an admin and needs no acting user (bootstrap)."""
    wanted = _check_roles(roles)
    if not USER_NAME.match(name):
        raise StewardError(f"user name {name!r}: use 2-64 letters, digits, '.', '_' or '-', starting with a letter")
    if count(conn) == 0 and actor is None:
        if "admin" not in wanted:
            raise StewardError("the first user must be an admin: steward users add NAME --role admin")
        actor = BOOTSTRAP
    else:
        actor = require(conn, actor, "users.manage").name
    if get(conn, name) is not None:
        raise StewardError(f"user {name!r} already exists; change roles with `steward users grant|revoke`")
    conn.execute(USER.insert().values(name=name, display_name=display_name, roles=sorted(wanted), active=True,
                                      created_at=clock.now(), created_by=actor))
    auditlog.append(conn, _role_events(actor, name, wanted, True))
    return User(name, wanted, True, display_name)


def _existing(conn: Connection, name: str) -> User:
    user = get(conn, name)
    if user is None:
        raise StewardError(f"no user {name!r}{did_you_mean(name, [u.name for u in all_users(conn)])}")
    return user


def grant(conn: Connection, actor: str | None, name: str, role: str) -> User:
    admin = require(conn, actor, "users.manage")
    user = _existing(conn, name)
    roles = _check_roles(user.roles | {role})
    conn.execute(update(USER).where(USER.c.name == name).values(roles=sorted(roles)))
    auditlog.append(conn, _role_events(admin.name, name, roles - user.roles, True))
    return User(name, roles, user.active, user.display_name)


def revoke(conn: Connection, actor: str | None, name: str, role: str) -> User:
    admin = require(conn, actor, "users.manage")
    user = _existing(conn, name)
    _check_roles([role])
    if role not in user.roles:
        raise StewardError(f"user {name!r} does not hold the {role} role")
    if role == "admin" and name == admin.name:
        raise StewardError("an admin cannot revoke their own admin role (another admin must)")
    roles = user.roles - {role}
    conn.execute(update(USER).where(USER.c.name == name).values(roles=sorted(roles)))
    auditlog.append(conn, _role_events(admin.name, name, [role], False))
    return User(name, roles, user.active, user.display_name)


def set_active(conn: Connection, actor: str | None, name: str, active: bool) -> User:
    admin = require(conn, actor, "users.manage")
    user = _existing(conn, name)
    conn.execute(update(USER).where(USER.c.name == name).values(active=active))
    auditlog.append(conn, _role_events(admin.name, name, user.roles, active))
    return User(name, user.roles, active, user.display_name)
