"""Recording stage: cooldown and same-day dedup against the firing log, bulk inserts."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.engine import Connection

from engine.facts.base import DATE, Facts, all_fields
from engine import clock
from engine.models import EvaluationRun, Firing

FIRING = Firing.__table__  # type: ignore[attr-defined]
RUN = EvaluationRun.__table__  # type: ignore[attr-defined]


def jsonable(f: Facts) -> dict[str, Any]:
    """Facts as stored in the audit record: dates as ISO strings, all else as is."""
    out = dict(f)
    for k in _date_fields():
        v = out.get(k)
        if v is not None:
            out[k] = v.isoformat()
    return out


def _date_fields() -> tuple[str, ...]:
    global _DATE_FIELDS
    cached = _DATE_FIELDS
    if cached is None or len(cached[0]) != len(all_fields()):
        fields = all_fields()
        cached = _DATE_FIELDS = (tuple(fields), tuple(n for n, f in fields.items() if f.type == DATE))
    return cached[1]


_DATE_FIELDS: tuple[tuple[str, ...], tuple[str, ...]] | None = None


def last_fired(conn: Connection, lo: str, hi: str, as_of: date) -> dict[tuple[str, str], date]:
    """(rule_id, client_id) -> latest firing day on or before as_of, for one batch of clients."""
    q = (
        select(FIRING.c.rule_id, FIRING.c.client_id, func.max(FIRING.c.as_of))
        .where(FIRING.c.client_id >= lo, FIRING.c.client_id <= hi, FIRING.c.as_of <= as_of)
        .group_by(FIRING.c.rule_id, FIRING.c.client_id)
    )
    return {(r[0], r[1]): r[2] for r in conn.execute(q)}


def start_run(conn: Connection, as_of: date, mode: str, version: str, now: datetime | None = None) -> int:
    res = conn.execute(
        RUN.insert().values(as_of=as_of, started_at=now or clock.now(), mode=mode, rules_version=version)
    )
    key = res.inserted_primary_key
    assert key is not None
    return int(key[0])


def finish_run(conn: Connection, run_id: int, now: datetime | None = None, **counts: int) -> None:
    """Close a run; `now` is the run's (fixed) clock, else the wall clock."""
    conn.execute(update(RUN).where(RUN.c.id == run_id).values(finished_at=now or clock.now(), **counts))


def insert_firings(conn: Connection, rows: list[dict[str, Any]], chunk: int = 5000) -> None:
    """Bulk insert; sets each row's `id` (multi-row INSERT ... RETURNING on SQLite and PostgreSQL)."""
    stmt = FIRING.insert().returning(FIRING.c.id, sort_by_parameter_order=True)
    for i in range(0, len(rows), chunk):
        part = rows[i : i + chunk]
        for row, (new_id,) in zip(part, conn.execute(stmt, part)):
            row["id"] = new_id
