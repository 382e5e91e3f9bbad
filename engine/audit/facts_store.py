"""Client facts snapshots, stored once per distinct text and named by hash.

A client's facts snapshot (canonical JSON, ~2 KB) is the same text for all of its firings of a
night. It is stored once in `audit_blob` (kind "facts", key = sha256 of the text, ON CONFLICT DO
NOTHING), in the transaction of the firings; the firing row (`firing.facts_sha256`) and its
`rule.fired` event (`data.facts_sha256`) name it by that hash, so the hash chain covers the
snapshot through its hash, and `steward audit verify` checks that every named snapshot is there
and still hashes to its key.

Firing rows and events written before (issue 16) carry the snapshot inline (`firing.facts`,
`data.facts`). `load` reads both kinds: one `IN` query per page of distinct hashes, never one per row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine import clock
from engine.audit.log import BLOB, insert_ignoring_duplicates
from engine.db import encode_rows

KIND = "facts"
"""`audit_blob.kind` of a facts snapshot."""
PAGE = 500
"""Hashes per `IN` query (well under SQLite's bound-parameter limit)."""


def put(conn: Connection, texts: Mapping[str, str], now: datetime | None = None) -> None:
    """Store snapshots (sha256 -> canonical JSON text) in the caller's transaction.

    No SELECT first: a night's snapshots are new texts, so the insert alone (skipping a key that
    exists, which also makes two writers storing the same text at once both succeed) is one round
    trip instead of two."""
    if not texts:
        return
    at = now or clock.now()
    rows = [{"sha256": h, "kind": KIND, "body": t, "created_at": at} for h, t in sorted(texts.items())]
    if conn.dialect.name == "sqlite":  # one executemany, values converted as the ORM would
        names, data = encode_rows(conn, BLOB, rows)
        cols, marks = ", ".join(f'"{n}"' for n in names), ", ".join("?" for _ in names)
        conn.exec_driver_sql(f'INSERT INTO audit_blob ({cols}) VALUES ({marks}) ON CONFLICT DO NOTHING', data)
    else:  # PostgreSQL: COPY cannot skip a key that exists; multi-row INSERT ... ON CONFLICT DO NOTHING
        conn.execute(insert_ignoring_duplicates(conn, BLOB), rows)


def _parts(r: Any) -> tuple[Any, str | None]:
    """(inline snapshot, hash) of a firing row or a `rule.fired` body's data (mapping or row)."""
    if isinstance(r, Mapping):
        return r.get("facts"), r.get("facts_sha256")
    return getattr(r, "facts", None), getattr(r, "facts_sha256", None)


def by_hash(conn: Connection, hashes: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Stored snapshots by hash, parsed; a hash with no blob is left out. One query per `PAGE` hashes."""
    wanted = sorted(set(hashes))
    out: dict[str, dict[str, Any]] = {}
    for i in range(0, len(wanted), PAGE):
        q = select(BLOB.c.sha256, BLOB.c.body).where(BLOB.c.sha256.in_(wanted[i:i + PAGE]))
        out.update((h, json.loads(body)) for h, body in conn.execute(q))
    return out


def _inline(value: Any) -> dict[str, Any] | None:
    if isinstance(value, str):  # a JSON column read as text (raw SQL on SQLite)
        value = json.loads(value)
    return value if isinstance(value, dict) else None


def load(conn: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """The facts snapshot of each firing row or `rule.fired` data, in order: inline when the row
    carries it (written before issue 16), else the stored snapshot its `facts_sha256` names. A row
    with neither, or naming a snapshot that is missing, gets {} (`steward audit verify` reports
    a missing or edited snapshot, with the firing and event that name it)."""
    parts = [(_inline(inline), h) for inline, h in map(_parts, rows)]  # an inline text is parsed once
    stored = by_hash(conn, (h for snap, h in parts if snap is None and h))
    return [snap if snap is not None else stored.get(h or "", {}) for snap, h in parts]


def one(conn: Connection, row: Any) -> dict[str, Any]:
    """`load` for a single row."""
    return load(conn, [row])[0]


def with_facts(conn: Connection, rows: Sequence[Any]) -> list[SimpleNamespace]:
    """Firing rows as plain records whose `facts` is the resolved snapshot (for code that reads
    `row.facts` as every row carried it before issue 16)."""
    return [SimpleNamespace(**{**r._mapping, "facts": facts}) for r, facts in zip(rows, load(conn, rows))]


def pages(conn: Connection, rows: Iterable[Any], page: int = PAGE) -> Iterator[tuple[Any, dict[str, Any]]]:
    """(row, facts) for a stream of rows (an export), resolved a page at a time. `conn` may be the
    connection the rows stream from: its cursor stays open while a page's query runs."""
    buf: list[Any] = []
    for r in rows:
        buf.append(r)
        if len(buf) >= page:
            yield from zip(buf, load(conn, buf))
            buf = []
    if buf:
        yield from zip(buf, load(conn, buf))
