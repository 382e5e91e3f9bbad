"""Users and roles, kept in the database; every review and user action is checked against them.

Roles (COMPLIANCE.md section 8): author (writes rules and templates), compliance (reviews and
approves), supervisor, advisor, auditor, admin. Separation of duties: an admin manages users
but can never approve, so no user holds both admin and compliance, and an approver is never
the author of what they approve (checked in engine.compliance.review).

User names are canonical (NFKC, then case-folded): `Li.Na` and `li.na` are one person, and
every name stored or compared goes through `canonical`. Who is acting is proven by a password
sign-in (console) or a personal token (`steward login`), see engine.compliance.auth; what each
role may do is the matrix in engine.compliance.access. Role and user changes go to the audit log
(`role.granted`, `role.revoked`, `user.added`, `user.deactivated`, `user.activated`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, func, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from engine.audit import log as auditlog
from engine import clock
from engine.compliance.access import ACTIONS as PERMISSIONS
from engine.compliance.access import ROLE_MEANING, ROLES
from engine.errors import StewardError, did_you_mean

__all__ = ["PERMISSIONS", "ROLES", "ROLE_MEANING", "canonical"]
for _name, _meaning in (("user.added", "an admin added a user"), ("user.deactivated", "a user was stopped from acting"),
                        ("user.activated", "a deactivated user may act again")):
    auditlog.register_event_name(_name, _meaning)

EXCLUSIVE = (frozenset({"admin", "compliance"}),)
"""Role pairs no one may hold together."""
USER_NAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
"""A canonical user name (after `canonical`)."""
BOOTSTRAP = "bootstrap"


def canonical(name: str) -> str:
    """The one spelling of a user name: NFKC-normalised, case-folded, trimmed (`Li.Na` -> `li.na`)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold()).strip()


class AppUser(SQLModel, table=True):
    __tablename__ = "app_user"

    name: str = Field(primary_key=True, max_length=64)
    display_name: str | None = None
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    active: bool = True
    created_at: datetime
    created_by: str = Field(max_length=64)
    password_hash: str | None = None
    """argon2id hash; None until a password is set (the user cannot sign in)."""
    must_change_password: bool = False
    """Set for one-time passwords: the first sign-in must choose a new one."""
    failed_logins: int = 0
    """Failed sign-ins since the last success; reaching the limit locks the account."""
    locked_until: datetime | None = None
    advisor_id: str | None = Field(default=None, max_length=32)
    """For advisors: their id in the advisor table; they see only these clients' tasks."""


USER = AppUser.__table__  # type: ignore[attr-defined]


class PermissionDenied(StewardError):
    """The acting user may not do this."""


@dataclass(frozen=True)
class User:
    name: str
    roles: frozenset[str]
    active: bool
    display_name: str | None = None
    advisor_id: str | None = None


def _user(row: Any) -> User:
    return User(row.name, frozenset(row.roles or ()), bool(row.active), row.display_name,
                getattr(row, "advisor_id", None))


def get(conn: Connection, name: str) -> User | None:
    row = conn.execute(select(USER).where(USER.c.name == canonical(name))).first()
    return _user(row) if row else None


def all_users(conn: Connection) -> list[User]:
    return [_user(r) for r in conn.execute(select(USER).order_by(USER.c.name))]


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(USER)).scalar() or 0)


def require(conn: Connection, name: str | None, action: str) -> User:
    """The acting user, if they exist, are active and hold a role allowed to do `action`."""
    if not name:
        raise PermissionDenied("name the acting user: sign in with `steward login NAME` (or in the console)")
    name = canonical(name)
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


def add(conn: Connection, actor: str | None, name: str, roles: Iterable[str], display_name: str | None = None,
        advisor_id: str | None = None) -> User:
    """Add a user. The very first user must be an admin and needs no acting user (bootstrap)."""
    wanted = _check_roles(roles)
    typed, name = name, canonical(name)
    if not USER_NAME.match(name):
        raise StewardError(f"user name {typed!r}: use 2-64 letters, digits, '.', '_' or '-', starting with a letter")
    display_name = display_name or (typed.strip() if typed.strip() != name else None)
    if count(conn) == 0 and actor is None:
        if "admin" not in wanted:
            raise StewardError("the first user must be an admin: steward users add NAME --role admin")
        actor = BOOTSTRAP
    else:
        actor = require(conn, actor, "users.manage").name
    if get(conn, name) is not None:
        raise StewardError(f"user {name!r} already exists (names ignore case and width: {typed!r} is {name!r}); "
                           "change roles with `steward users grant|revoke`")
    conn.execute(USER.insert().values(name=name, display_name=display_name, roles=sorted(wanted), active=True,
                                      created_at=clock.now(), created_by=actor, advisor_id=advisor_id))
    auditlog.append(conn, [auditlog.Event("user.added", actor=actor, data={"user": name, "roles": sorted(wanted)}),
                           *_role_events(actor, name, wanted, True)])
    return User(name, wanted, True, display_name, advisor_id)


def _existing(conn: Connection, name: str) -> User:
    name = canonical(name)
    user = get(conn, name)
    if user is None:
        raise StewardError(f"no user {name!r}{did_you_mean(name, [u.name for u in all_users(conn)])}")
    return user


def grant(conn: Connection, actor: str | None, name: str, role: str) -> User:
    admin = require(conn, actor, "users.manage")
    user = _existing(conn, name)
    name = user.name
    roles = _check_roles(user.roles | {role})
    conn.execute(update(USER).where(USER.c.name == name).values(roles=sorted(roles)))
    auditlog.append(conn, _role_events(admin.name, name, roles - user.roles, True))
    return User(name, roles, user.active, user.display_name, user.advisor_id)


def revoke(conn: Connection, actor: str | None, name: str, role: str) -> User:
    admin = require(conn, actor, "users.manage")
    user = _existing(conn, name)
    name = user.name
    _check_roles([role])
    if role not in user.roles:
        raise StewardError(f"user {name!r} does not hold the {role} role")
    if role == "admin" and name == admin.name:
        raise StewardError("an admin cannot revoke their own admin role (another admin must)")
    roles = user.roles - {role}
    conn.execute(update(USER).where(USER.c.name == name).values(roles=sorted(roles)))
    auditlog.append(conn, _role_events(admin.name, name, [role], False))
    return User(name, roles, user.active, user.display_name, user.advisor_id)


def set_active(conn: Connection, actor: str | None, name: str, active: bool) -> User:
    admin = require(conn, actor, "users.manage")
    user = _existing(conn, name)
    name = user.name
    if not active and name == admin.name:
        raise StewardError("an admin cannot deactivate themselves (another admin must)")
    conn.execute(update(USER).where(USER.c.name == name).values(active=active))
    auditlog.append(conn, [auditlog.Event("user.activated" if active else "user.deactivated", actor=admin.name,
                                          data={"user": name})])
    return User(name, user.roles, active, user.display_name, user.advisor_id)
