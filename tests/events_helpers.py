"""Helpers for the event tests: events as dicts, a service on the shipped event rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from engine.audit import facts_store
from engine.compliance import review
from engine.compliance import users
from engine.config.base import Config
from engine.language.event_schema import AnyEvent, parse_event
from engine.events.service import EventService
from engine.events.tables import EventDeadline, StoredEvent
from engine.pipeline.recording import FIRING

TZ = ZoneInfo("Asia/Shanghai")


def at(text: str) -> str:
    """'2026-11-20 10:01' (Shanghai) -> ISO with offset."""
    return datetime.fromisoformat(text).replace(tzinfo=TZ).isoformat()


def ev(eid: str, type_: str, when: str, client: str = "C003", **fields: Any) -> AnyEvent:
    return parse_event({"id": eid, "type": type_, "client_id": client, "at": at(when), **fields})


def trade(eid: str, when: str, price: float = 10.0, market: float | None = 10.0, client: str = "C003") -> AnyEvent:
    return ev(eid, "trade", when, client, symbol="000001", side="sell", quantity=100, price=price, market_price=market)


def cash(eid: str, when: str, kind: str, amount: float, client: str = "C003") -> AnyEvent:
    return ev(eid, "cash_movement", when, client, kind=kind, amount=amount)


def margin(eid: str, when: str, ratio: float, client: str = "C003") -> AnyEvent:
    return ev(eid, "margin_ratio", when, client, maintenance_ratio=ratio)


def approve(db: Engine, cfg: Config) -> review.Approved:
    """Approve the working files (rules, event rules, templates) unless they are the approved version."""
    with db.begin() as c:
        if not users.count(c):
            users.add(c, None, "root", ["admin"])
            users.add(c, "root", "ann", ["author"])
            users.add(c, "root", "bo", ["compliance"])
        now = review.current(c)
    if now is not None and not review.unapproved(cfg, now):
        return now
    pid = review.submit(db, cfg, "ann", "event rules under test").proposal_id
    return review.approve(db, cfg, "bo", pid, "approved for the test")


def service(db: Engine, cfg: Config) -> EventService:
    """An event service on the approved version of the working files (approved here: only approved rules run)."""
    approve(db, cfg)
    return EventService(db, cfg)


def firings(db: Engine, rule_id: str | None = None) -> list[Any]:
    q = select(FIRING).order_by(FIRING.c.id)
    if rule_id:
        q = q.where(FIRING.c.rule_id == rule_id)
    with db.connect() as c:
        return facts_store.with_facts(c, list(c.execute(q)))  # each with its facts snapshot


def statuses(db: Engine) -> dict[str, str]:
    t = StoredEvent.__table__  # type: ignore[attr-defined]
    with db.connect() as c:
        return {r.event_id: r.status for r in c.execute(select(t.c.event_id, t.c.status))}


def deadlines(db: Engine) -> list[Any]:
    t = EventDeadline.__table__  # type: ignore[attr-defined]
    with db.connect() as c:
        return list(c.execute(select(t).order_by(t.c.id)))
