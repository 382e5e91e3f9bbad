"""Audit stage: look up recorded firings (who, why, which rule version, which words)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from engine.recording import FIRING


def list_firings(conn: Connection, rule: str | None = None, client: str | None = None,
                 as_of: Any = None, status: str | None = None, limit: int = 50) -> list[Any]:
    q = select(FIRING).order_by(FIRING.c.id.desc()).limit(limit)
    if rule:
        q = q.where(FIRING.c.rule_id == rule)
    if client:
        q = q.where(FIRING.c.client_id == client)
    if as_of:
        q = q.where(FIRING.c.as_of == as_of)
    if status:
        q = q.where(FIRING.c.status == status)
    return list(conn.execute(q))


def get_firing(conn: Connection, firing_id: int) -> Any:
    return conn.execute(select(FIRING).where(FIRING.c.id == firing_id)).first()


def samples(conn: Connection, run_id: int | None) -> list[Any]:
    """The first firing of each rule in a run."""
    first = select(func.min(FIRING.c.id)).where(FIRING.c.run_id == run_id).group_by(FIRING.c.rule_id)
    return list(conn.execute(select(FIRING).where(FIRING.c.id.in_(first)).order_by(FIRING.c.rule_id)))
