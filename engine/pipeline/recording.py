"""Recording stage: cooldown and same-day dedup against the firing log, bulk inserts."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any, NamedTuple

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.engine import Connection

from engine.audit import facts_store
from engine.audit import log as auditlog
from engine.db import encode_rows, next_ids, write_rows
from engine.facts.base import DATE, Facts, all_fields, providers
from engine import clock
from engine.models import EvaluationRun, Firing

FIRING = Firing.__table__  # type: ignore[attr-defined]
RUN = EvaluationRun.__table__  # type: ignore[attr-defined]


def jsonable(f: Facts, dates: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Facts as stored in the audit record: dates as ISO strings, all else as is.

    `dates`: the date fields (`date_fields()`), when the caller has them for a whole batch.
    """
    out = dict(f)
    for k in date_fields() if dates is None else dates:
        v = out.get(k)
        if v is not None:
            out[k] = v.isoformat()
    return out


def encoded_facts(f: Facts, dates: tuple[str, ...] | None = None) -> tuple[dict[str, Any], str]:
    """The stored facts snapshot and its canonical JSON text, encoded once per client.

    The text is stored once (engine.audit.facts_store, keyed by its sha256), and the firing
    row and its audit event name it by that hash, so a client's snapshot is encoded once and
    written once per distinct text, however many rules fire for the client.
    """
    snap = jsonable(f, dates)
    return snap, auditlog.canonical(snap)


def date_fields() -> tuple[str, ...]:
    """The registered facts of type date."""
    global _DATE_FIELDS
    n = len(providers())
    if _DATE_FIELDS is None or _DATE_FIELDS[0] != n:
        _DATE_FIELDS = (n, tuple(name for name, f in all_fields().items() if f.type == DATE))
    return _DATE_FIELDS[1]


_DATE_FIELDS: tuple[int, tuple[str, ...]] | None = None
"""(number of registered providers, date fields): rebuilt only when a provider is registered."""


BLOCKED_BY_GATE = ("suppressed", "dropped")
"""Firing statuses of a firing a gate stopped: nothing reached the client, so no cooldown starts."""


def last_fired(conn: Connection, lo: str, hi: str, as_of: date) -> dict[tuple[str, str], tuple[date, date | None]]:
    """(rule_id, client_id) -> (latest firing day on or before as_of, latest such day that starts the cooldown).

    The first is for same-day dedup (one firing row per rule, client and day); the second
    leaves out firings a gate blocked (suppressed or dropped): a client blocked yesterday and
    eligible today is contacted today, not a cooldown later.
    """
    return _last_fired(conn, and_(FIRING.c.client_id >= lo, FIRING.c.client_id <= hi), as_of)


def last_fired_of(conn: Connection, client_ids: Sequence[str], as_of: date) -> dict[tuple[str, str], tuple[date, date | None]]:
    """`last_fired` for a list of client ids (the event engine's scattered firing clients)."""
    return _last_fired(conn, FIRING.c.client_id.in_(list(client_ids)), as_of) if client_ids else {}


def _last_fired(conn: Connection, clients: Any, as_of: date) -> dict[tuple[str, str], tuple[date, date | None]]:
    counted = func.max(case((FIRING.c.status.in_(BLOCKED_BY_GATE), None), else_=FIRING.c.as_of))
    q = (
        select(FIRING.c.rule_id, FIRING.c.client_id, func.max(FIRING.c.as_of), counted)
        .where(clients, FIRING.c.as_of <= as_of)
        .group_by(FIRING.c.rule_id, FIRING.c.client_id)
    )
    return {(r[0], r[1]): (r[2], r[3]) for r in conn.execute(q)}


def within_cooldown(prev: tuple[date, date | None] | None, as_of: date, cooldown: timedelta) -> str | None:
    """'duplicate' when already recorded on as_of, 'cooldown' when a counted firing is too recent, else None."""
    if prev is None:
        return None
    if prev[0] == as_of:
        return "duplicate"
    return "cooldown" if prev[1] is not None and as_of - prev[1] < cooldown else None


STALE_AFTER = timedelta(hours=1)
"""A run on another host with no heartbeat for this long is taken as dead."""


def run_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(owner: str | None, heartbeat: datetime | None, now: datetime) -> bool:
    host, _, pid = (owner or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    beat = heartbeat.replace(tzinfo=timezone.utc) if heartbeat is not None and heartbeat.tzinfo is None else heartbeat
    return beat is not None and now - beat < STALE_AFTER


def fail_dead_runs(conn: Connection, now: datetime | None = None) -> list[Any]:
    """Mark nightly runs whose process died (killed, crashed) as failed; returns the rows marked."""
    now = now or clock.now()
    dead = [r for r in conn.execute(select(RUN).where(RUN.c.status == "running", RUN.c.mode == "run"))
            if not _alive(r.owner, r.heartbeat_at, now)]
    for r in dead:
        last = r.heartbeat_at or r.started_at
        conn.execute(update(RUN).where(RUN.c.id == r.id, RUN.c.status == "running").values(
            status="failed", error=f"the process {r.owner or '?'} stopped before finishing (last sign of life "
                                   f"{last:%Y-%m-%d %H:%M:%S} UTC); the firings it recorded stand, the rest were not evaluated"))
    return [conn.execute(select(RUN).where(RUN.c.id == r.id)).one() for r in dead]


def start_run(conn: Connection, as_of: date, mode: str, version: str, now: datetime | None = None) -> int:
    """Open a run; `now` is the run's (fixed) clock for started_at, the heartbeat is always the real clock."""
    beat = clock.now()
    res = conn.execute(RUN.insert().values(as_of=as_of, started_at=now or beat, mode=mode, rules_version=version,
                                           status="running", owner=run_owner(), heartbeat_at=beat))
    key = res.inserted_primary_key
    assert key is not None
    return int(key[0])


def heartbeat(conn: Connection, run_id: int) -> None:
    conn.execute(update(RUN).where(RUN.c.id == run_id).values(heartbeat_at=clock.now()))


def finish_run(conn: Connection, run_id: int, now: datetime | None = None, **counts: int) -> None:
    """Close a run; `now` is the run's (fixed) clock, else the wall clock."""
    beat = clock.now()
    conn.execute(update(RUN).where(RUN.c.id == run_id).values(finished_at=now or beat, heartbeat_at=beat,
                                                              status="finished", **counts))


class Prepared(NamedTuple):
    """Firing rows as column names and value tuples, without their ids (engine.db.encode_rows),
    and the facts snapshots they name (sha256 -> text)."""

    names: list[str]
    data: list[tuple[Any, ...]]
    snapshots: dict[str, str]


def prepare_firings(conn: Connection, rows: list[dict[str, Any]]) -> Prepared:
    """Everything `write_firings` needs but the ids: done before the write lock is taken.

    A row may carry `facts_json` / `policy_json`, the text of its `facts` / `policy` already
    encoded (engine.pipeline.run encodes each client's facts once). A row with `facts_sha256`
    (the sha256 of `facts_json`) stores its snapshot by reference: `facts` is left NULL and the
    text goes to the facts store once per distinct hash. A row without it stores `facts` inline.
    """
    if not rows:
        return Prepared(["id"], [], {})
    first = rows[0]
    by_ref = "facts_sha256" in first
    encoded = {k: f"{k}_json" for k in ("facts", "policy") if f"{k}_json" in first}
    names, data = encode_rows(conn, FIRING, rows, encoded, skip=("id", "facts") if by_ref else ("id",))
    snapshots = {r["facts_sha256"]: r["facts_json"] for r in rows} if by_ref else {}
    return Prepared(["id", *names], data, snapshots)


def write_firings(conn: Connection, rows: list[dict[str, Any]], prepared: Prepared) -> None:
    """Take the rows' ids (the first write of the batch: on SQLite it takes the write lock), set
    each row's `id`, insert them (COPY on PostgreSQL) and the facts snapshots they name."""
    if not rows:
        return
    ids = next_ids(conn, FIRING, len(rows))
    for row, new_id in zip(rows, ids):
        row["id"] = new_id
    write_rows(conn, FIRING, prepared.names, [(i, *t) for i, t in zip(ids, prepared.data)])
    facts_store.put(conn, prepared.snapshots)


def insert_firings(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Bulk insert; sets each row's `id`, taken before the insert."""
    write_firings(conn, rows, prepare_firings(conn, rows))
