"""The do-not-call list: adding and removing a number, each with its audit event in the same transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Connection

from engine.audit import log as auditlog
from engine.dispatch.tables import DoNotCall
from engine.errors import StewardError
from engine.language.rendering import mask

DNC = DoNotCall.__table__  # type: ignore[attr-defined]

auditlog.register_event_name("dnc.added", "a phone number was put on the do-not-call list (source, by whom)")
auditlog.register_event_name("dnc.removed", "a phone number was taken off the do-not-call list (by whom)")


def _actor(actor: str | None) -> str:
    if not actor:
        raise StewardError("name the acting user (--as or STEWARD_USER): the audit log records who changed the do-not-call list")
    return actor


def add(conn: Connection, phone: str, source: str, note: str | None, actor: str | None, now: datetime) -> None:
    who = _actor(actor)
    conn.execute(DNC.delete().where(DNC.c.phone == phone))
    conn.execute(DNC.insert(), [{"phone": phone, "source": source, "note": note, "added_at": now}])
    auditlog.append(conn, [auditlog.Event("dnc.added", actor=who, at=now, channel="phone", data={
        "phone": mask(phone), "phone_sha256": auditlog.sha256_text(phone), "source": source, "note": note})])


def remove(conn: Connection, phone: str, actor: str | None, now: datetime) -> bool:
    who = _actor(actor)
    n = conn.execute(DNC.delete().where(DNC.c.phone == phone)).rowcount
    if n:
        auditlog.append(conn, [auditlog.Event("dnc.removed", actor=who, at=now, channel="phone", data={
            "phone": mask(phone), "phone_sha256": auditlog.sha256_text(phone)})])
    return bool(n)
