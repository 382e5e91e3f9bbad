"""Maker-checker for trading-calendar imports, kept in the audit log itself.

An author proposes a closure file (`calendar.proposed`: the parsed days, the file's sha256);
a compliance reviewer who is not the author approves it (`calendar.approved`, the days are
written in the same transaction) or rejects it (`calendar.rejected`). The proposal's audit
sequence number is its id, so no table of its own is needed and the whole history is in
the hash chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from engine.audit import log as auditlog
from engine.compliance import users
from engine.errors import StewardError
from engine.facts import calendar_file

auditlog.register_event_name("calendar.proposed", "an author proposed trading-calendar closures from a file")
auditlog.register_event_name("calendar.approved", "compliance approved a trading-calendar import; the days were written")
auditlog.register_event_name("calendar.rejected", "compliance rejected a trading-calendar import")
auditlog.register_event_name("calendar.set", "an administrator set trading days by hand")
DECISIONS = ("calendar.approved", "calendar.rejected")


@dataclass(frozen=True)
class CalendarProposal:
    seq: int
    exchange: str
    author: str
    note: str
    file: calendar_file.ClosureFile
    status: str
    """pending, approved or rejected."""


def propose(engine: Engine, actor: str | None, exchange: str, f: calendar_file.ClosureFile, note: str) -> int:
    with engine.begin() as conn:
        author = users.require(conn, actor, "review.submit")
        data = {"exchange": exchange, "note": note, **calendar_file.to_data(f)}
        return auditlog.append(conn, [auditlog.Event("calendar.proposed", actor=author.name, data=data)])[0]


def _decided(conn: Connection) -> dict[int, str]:
    rows = conn.execute(select(auditlog.EVENT).where(auditlog.EVENT.c.name.in_(DECISIONS)))
    return {int(auditlog.body_of(r)["data"]["proposal"]): r.name.split(".")[1] for r in rows}


def _proposal(row: Any, decided: dict[int, str]) -> CalendarProposal:
    data = auditlog.body_of(row)["data"]
    return CalendarProposal(row.seq, data["exchange"], row.actor, data.get("note", ""), calendar_file.from_data(data),
                            decided.get(row.seq, "pending"))


def proposals(conn: Connection, status: str | None = None) -> list[CalendarProposal]:
    decided = _decided(conn)
    rows = conn.execute(select(auditlog.EVENT).where(auditlog.EVENT.c.name == "calendar.proposed").order_by(auditlog.EVENT.c.seq))
    out = [_proposal(r, decided) for r in rows]
    return [p for p in out if status is None or p.status == status]


def decide(engine: Engine, actor: str | None, seq: int, approve: bool, comment: str) -> tuple[CalendarProposal, int]:
    """Approve (write the days) or reject a pending proposal. Returns it and the days written."""
    with engine.begin() as conn:
        reviewer = users.require(conn, actor, "review.decide")
        row = conn.execute(select(auditlog.EVENT).where(auditlog.EVENT.c.seq == seq)).first()
        if row is None or row.name != "calendar.proposed":
            pending = [p.seq for p in proposals(conn, "pending")]
            raise StewardError(f"no calendar proposal {seq}; pending: {', '.join(map(str, pending)) or 'none'} "
                               "(`steward calendar pending`)")
        p = _proposal(row, _decided(conn))
        if p.status != "pending":
            raise StewardError(f"calendar proposal {seq} is already {p.status}")
        if p.author == reviewer.name:
            raise users.PermissionDenied(f"{reviewer.name!r} proposed calendar import {seq}: another compliance reviewer "
                                         "must decide it")
        if not comment.strip():
            raise StewardError("--comment: the decision needs a comment; it is kept with the record")
        written = calendar_file.apply(conn, p.exchange, p.file)[0] if approve else 0
        name = "calendar.approved" if approve else "calendar.rejected"
        auditlog.append(conn, [auditlog.Event(name, actor=reviewer.name, data={
            "proposal": seq, "author": p.author, "comment": comment.strip(), "exchange": p.exchange,
            "sha256": p.file.sha256, "first": p.file.first.isoformat(), "last": p.file.last.isoformat(), "days": written})])
        return p, written


def record_set(conn: Connection, actor: str, exchange: str, first: date, last: date, is_open: bool, weekdays: bool,
               days: dict[str, bool] | None = None) -> None:
    """Audit a hand override (calendar.set); `days` maps each ISO day set to open (True) or closed."""
    auditlog.append(conn, [auditlog.Event("calendar.set", actor=actor, data={
        "exchange": exchange, "first": first.isoformat(), "last": last.isoformat(), "open": is_open,
        "weekends_closed": weekdays, "days": days or {}})])


auditlog.register_event_name("calendar.unset", "an operator removed a hand override; the exchange's own day is back")


def record_unset(conn: Connection, actor: str, exchange: str, day: date, was_open: bool, now_open: bool) -> None:
    """Audit the removal of a hand override (calendar.unset): what the day was, and what it is again."""
    auditlog.append(conn, [auditlog.Event("calendar.unset", actor=actor, data={
        "exchange": exchange, "day": day.isoformat(), "was_open": was_open, "open": now_open})])
