"""The event store: events are stored durably before they are processed, once per id.

`store` commits events with `status = stored` (a second post of an id is a
duplicate and stores nothing). The engine thread later processes each stored event
in one transaction that also writes its fact rows, its firings and `processed`; a
crash before that commit leaves it `stored`, and the next start replays it.

Facts updates (`apply_facts`): a trade writes a `trade` row, a cash movement a
`cash_movement` row, a task outcome a `contact` row (closing the task when
`task_id` is given), so snapshot rules and facts see them at once. Margin ratios,
orders and logins change no fact table: margin snapshots are whole-book daily
files, and one client's intraday row would hide every other client's snapshot.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, DateTime, Integer, bindparam, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from engine.servicing import task_outcomes
from engine.language.event_schema import AnyEvent, CashMovementEvent, TaskOutcomeEvent, TradeEvent, local_day, parse_event
from engine import clock
from engine.events.tables import StoredEvent
from engine.models import CashMovement, Client, Contact, Trade

EVENT = StoredEvent.__table__  # type: ignore[attr-defined]
TRADE = Trade.__table__  # type: ignore[attr-defined]
MOVE = CashMovement.__table__  # type: ignore[attr-defined]
CONTACT = Contact.__table__  # type: ignore[attr-defined]
CLIENT = Client.__table__  # type: ignore[attr-defined]


def unknown_clients(conn: Connection, events: Sequence[AnyEvent]) -> list[tuple[int, str]]:
    """(1-based position, client id) of every event naming a client the database does not hold."""
    wanted = sorted({ev.client_id for ev in events})
    known: set[str] = set()
    for i in range(0, len(wanted), 500):
        known.update(r[0] for r in conn.execute(select(CLIENT.c.id).where(CLIENT.c.id.in_(wanted[i:i + 500]))))
    return [(n, ev.client_id) for n, ev in enumerate(events, 1) if ev.client_id not in known]


def utcnow() -> datetime:
    return clock.now()


def aware(dt: datetime) -> datetime:
    """SQLite returns naive datetimes: they were stored in UTC."""
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


@dataclass
class Stored:
    """What a post did: new events (seq, event), duplicates, and ids re-posted with other content."""

    new: list[tuple[int, AnyEvent]] = field(default_factory=list)
    duplicates: int = 0
    conflicts: list[str] = field(default_factory=list)


def _insert(conn: Connection) -> Any:
    name = conn.dialect.name
    if name == "postgresql":
        return postgresql.insert
    if name == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"event store on {name}: use SQLite or PostgreSQL")


def _payload(ev: AnyEvent) -> dict[str, Any]:
    return ev.model_dump(mode="json")


STORE_CHUNK = 500
"""Events per multi-row INSERT when storing a post."""
CHANNEL = "steward_events"
"""PostgreSQL notification channel: a post that stored new events notifies it (engine.events.wake)."""
_NOTIFY = text(f"SELECT pg_notify('{CHANNEL}', :source)")


def _store_statement(dialect: str) -> Any:
    stmt = _store_cache.get(dialect)
    if stmt is None:
        ins = postgresql.insert if dialect == "postgresql" else sqlite.insert if dialect == "sqlite" else None
        if ins is None:
            raise NotImplementedError(f"event store on {dialect}: use SQLite or PostgreSQL")
        stmt = _store_cache[dialect] = ins(EVENT).on_conflict_do_nothing(index_elements=["event_id"]).returning(
            EVENT.c.seq, EVENT.c.event_id)
    return stmt


_store_cache: dict[str, Any] = {}


def store(conn: Connection, events: Sequence[AnyEvent], now: datetime | None = None, source: str = "") -> Stored:
    """Store events not stored before (by id), in order; safe against concurrent posts.

    One multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING per `STORE_CHUNK` events, then,
    only when some id was stored before, one SELECT to tell duplicates from conflicts. On
    PostgreSQL, when something new was stored, a notification on `CHANNEL` with payload
    `source` (the poster's token): running engines wake when the transaction commits.
    """
    out = Stored()
    now = now or utcnow()
    rows = [{"event_id": ev.id, "type": ev.type, "client_id": ev.client_id,  # type: ignore[attr-defined]
             "occurred_at": ev.at.astimezone(timezone.utc), "received_at": now,
             "payload": _payload(ev), "status": "stored", "firings": 0} for ev in events]
    stmt = _store_statement(conn.dialect.name)
    seq_of: dict[str, int] = {}
    for i in range(0, len(rows), STORE_CHUNK):
        # executemany with RETURNING: SQLAlchemy sends one multi-row INSERT per chunk ("insertmanyvalues")
        # from a statement compiled once; `.values(rows)` compiled a new one for every post.
        seq_of.update({r.event_id: int(r.seq) for r in conn.execute(stmt, rows[i:i + STORE_CHUNK])})
    again: list[dict[str, Any]] = []
    for ev, row in zip(events, rows):
        seq = seq_of.pop(ev.id, None)  # popped: the same id twice in one post is new once
        if seq is not None:
            out.new.append((seq, ev))
        else:
            again.append(row)
    if again:
        out.duplicates = len(again)
        wanted = sorted({r["event_id"] for r in again})
        stored: dict[str, Any] = {}
        for i in range(0, len(wanted), STORE_CHUNK):
            stored.update((r[0], r[1]) for r in conn.execute(select(EVENT.c.event_id, EVENT.c.payload)
                                                             .where(EVENT.c.event_id.in_(wanted[i:i + STORE_CHUNK]))))
        out.conflicts = [r["event_id"] for r in again if stored.get(r["event_id"]) != r["payload"]]
    if out.new and conn.dialect.name == "postgresql":
        conn.execute(_NOTIFY, {"source": source})
    return out


@dataclass(frozen=True)
class Pending:
    seq: int
    event: AnyEvent
    received_at: datetime


def pending(conn: Connection, limit: int | None = None, after: int = 0) -> list[Pending]:
    """Stored but unprocessed events, oldest first (what a restart replays)."""
    q = select(EVENT.c.seq, EVENT.c.payload, EVENT.c.received_at).where(
        EVENT.c.status == "stored", EVENT.c.seq > after).order_by(EVENT.c.seq)
    if limit:
        q = q.limit(limit)
    return [Pending(r.seq, parse_event(r.payload, f"event_log seq {r.seq}"), aware(r.received_at)) for r in conn.execute(q)]


def load(conn: Connection, seqs: Sequence[int]) -> list[Pending]:
    q = select(EVENT.c.seq, EVENT.c.payload, EVENT.c.received_at, EVENT.c.status).where(EVENT.c.seq.in_(list(seqs)))
    rows = [r for r in conn.execute(q.order_by(EVENT.c.seq)) if r.status == "stored"]
    return [Pending(r.seq, parse_event(r.payload, f"event_log seq {r.seq}"), aware(r.received_at)) for r in rows]


def claim_batch(conn: Connection, seqs: Sequence[int] | None = None, after: int = 0, limit: int = 200) -> list[Pending]:
    """Claim up to `limit` stored events in one statement, oldest first: the ones in `seqs`, or any after `after`.

    The claim holds until the caller's transaction ends: on PostgreSQL the rows are locked
    (FOR UPDATE SKIP LOCKED: another engine skips them instead of waiting), on SQLite the
    claim is a write, so this transaction holds the database's write lock and reads the
    latest state. Per-client order is kept across engines: an event is left out (it stays
    `stored` and a later pass takes it) while an earlier stored event of the same client is
    neither processed nor in this claim.
    """
    if seqs is not None and not seqs:
        return []
    pg = conn.dialect.name == "postgresql"
    stmt = _claim_statement(pg, seqs is not None)
    params: dict[str, Any] = {"limit": limit} | ({"seqs": list(seqs)} if seqs is not None else {"after": after})
    rows = sorted(conn.execute(stmt, params), key=lambda r: r.seq)  # RETURNING (SQLite) keeps no order
    return [Pending(r.seq, parse_event(r.payload, f"event_log seq {r.seq}"), aware(r.received_at)) for r in rows]


def _claim_statement(pg: bool, by_seq: bool) -> Any:
    """The claim as one statement, built once per (dialect, form) so SQLAlchemy and psycopg reuse it."""
    stmt = _claim_cache.get((pg, by_seq))
    if stmt is not None:
        return stmt
    which = ("seq = ANY(:seqs)" if pg else "seq IN :seqs") if by_seq else "seq > :after"
    first = f"SELECT seq, client_id FROM event_log WHERE status = 'stored' AND {which} ORDER BY seq LIMIT :limit"
    in_order = ("NOT EXISTS (SELECT 1 FROM event_log e WHERE e.client_id = c.client_id AND e.status = 'stored' "
                "AND e.seq < c.seq AND e.seq NOT IN (SELECT seq FROM c))")
    if pg:
        sql = (f"WITH c AS ({first} FOR UPDATE SKIP LOCKED) SELECT l.seq, l.payload, l.received_at FROM c "
               f"JOIN event_log l ON l.seq = c.seq WHERE {in_order}")
    else:
        sql = (f"WITH c AS ({first}) UPDATE event_log SET status = status "
               f"WHERE seq IN (SELECT seq FROM c WHERE {in_order}) RETURNING seq, payload, received_at")
    stmt = text(sql).columns(seq=Integer, payload=JSON, received_at=DateTime(timezone=True))
    if by_seq:
        stmt = stmt.bindparams(bindparam("seqs", type_=ARRAY(Integer)) if pg else bindparam("seqs", expanding=True))
    _claim_cache[pg, by_seq] = stmt
    return stmt


_claim_cache: dict[tuple[bool, bool], Any] = {}


def mark_many(conn: Connection, done: Sequence[tuple[int, str, int, str | None]], version: str | None,
              now: datetime | None = None) -> None:
    """Mark claimed events (seq, status, firings, note): one UPDATE per distinct (status, firings, note)."""
    groups: dict[tuple[str, int, str | None], list[int]] = {}
    for seq, status, firings, note in done:
        groups.setdefault((status, firings, note), []).append(seq)
    at = now or utcnow()
    for (status, firings, note), seqs in groups.items():
        conn.execute(_MARK_MANY, {"seqs": seqs, "status": status, "processed_at": at, "rules_version": version,
                                  "firings": firings, "error": note})


_MARK_MANY = update(EVENT).where(EVENT.c.seq.in_(bindparam("seqs", expanding=True))).values(
    status=bindparam("status"), processed_at=bindparam("processed_at"), rules_version=bindparam("rules_version"),
    firings=bindparam("firings"), error=bindparam("error"))


def mark(conn: Connection, seq: int, status: str, version: str | None, firings: int = 0,
         error: str | None = None, now: datetime | None = None) -> None:
    conn.execute(update(EVENT).where(EVENT.c.seq == seq).values(
        status=status, processed_at=now or utcnow(), rules_version=version, firings=firings, error=error))


def retry_failed(conn: Connection) -> int:
    """Put failed events back to `stored` so the engine processes them again."""
    res = conn.execute(update(EVENT).where(EVENT.c.status == "failed").values(status="stored", error=None))
    return int(res.rowcount or 0)


def counts(conn: Connection) -> dict[str, int]:
    from sqlalchemy import func

    return {r[0]: int(r[1]) for r in conn.execute(select(EVENT.c.status, func.count()).group_by(EVENT.c.status))}


# ------------------------------------------------------------------ facts updates


def _row_id(event_id: str) -> str:
    """Fact-row id from an event id (fact tables take 64 characters)."""
    return event_id if len(event_id) <= 60 else "ev:" + hashlib.sha256(event_id.encode()).hexdigest()[:56]


def fact_row(ev: AnyEvent, tz: ZoneInfo) -> tuple[Any, dict[str, Any]] | None:
    """The (table, row) a trade or cash movement writes; None for the other types."""
    if isinstance(ev, TradeEvent):
        return TRADE, {"id": _row_id(ev.id), "client_id": ev.client_id, "trade_date": local_day(ev, tz), "symbol": ev.symbol,
                       "side": ev.side, "quantity": ev.quantity, "price": ev.price, "amount": ev.price * ev.quantity}
    if isinstance(ev, CashMovementEvent):
        return MOVE, {"id": _row_id(ev.id), "client_id": ev.client_id, "moved_on": local_day(ev, tz), "kind": ev.kind,
                      "amount": ev.amount}
    return None


def insert_fact_rows(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    """Fact rows of several events in one multi-row INSERT (an id stored before is kept)."""
    if rows:
        conn.execute(_insert(conn)(table).on_conflict_do_nothing(index_elements=["id"]), rows)


def apply_facts(conn: Connection, ev: AnyEvent, tz: ZoneInfo) -> None:
    """Write the fact rows an event implies (see the module docstring), in the caller's transaction."""
    row = fact_row(ev, tz)
    if row is not None:
        insert_fact_rows(conn, row[0], [row[1]])
    elif isinstance(ev, TaskOutcomeEvent):
        _task_outcome(conn, ev, local_day(ev, tz))


def _task_outcome(conn: Connection, ev: TaskOutcomeEvent, day: Any) -> None:
    if ev.task_id is not None:
        task_outcomes.record_outcome(conn, ev.task_id, ev.outcome, ev.by_user or "event-intake", day, note=f"event {ev.id}")
        return
    kind = task_outcomes.OUTCOMES[ev.outcome][0]
    conn.execute(insert(CONTACT), [{"id": _row_id(ev.id),
                                    "client_id": ev.client_id, "contacted_on": day, "kind": kind,
                                    "outcome": ev.outcome, "by_user": ev.by_user}])
