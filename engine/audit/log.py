"""Append-only, hash-chained audit log: every firing, suppression, render, send and decision.

Public API (other modules call these; see docs/audit.md):

    from engine.audit.log import Event, append
    append(conn, [Event("send.attempted", actor="dispatch", client_id="C001", firing_id=42,
                        channel="sms", status="sent", data={"provider": "smtp", "attempt": 1})])

`append(conn, events)` writes the events in order, in the caller's transaction, and
returns their chain positions (`seq`). It takes the chain lock first (PostgreSQL:
`pg_advisory_xact_lock`; SQLite: the write lock), so two processes appending at
once still build one correct chain. Call it in a write transaction
(`with engine.begin() as conn:`); the events commit or roll back with the caller's work.

Each event is stored as canonical JSON (`body`) with `hash = sha256(prev_hash + body)`;
the filter columns (client, rule, channel, status, ...) are copies of body fields that
`verify` checks too. Large texts that repeat (rule and template sources) live once in
`audit_blob`, keyed by their sha256, which the events name. `verify(conn)` walks the
chain and returns the first broken link, naming the event.

Nothing in the application updates or deletes these rows; the migration adds triggers
that refuse UPDATE and DELETE (SQLite and PostgreSQL) and revokes those privileges from
the `steward_app` role on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

import orjson
from sqlalchemy import Index, Text, select, text
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from engine import clock
from engine.audit import keys
from engine.db import encode_rows, write_rows
from engine.models import Firing

GENESIS = "0" * 64
LOCK_KEY = 0x5354_4155_4449_54  # "STAUDIT": the PostgreSQL advisory lock of the chain
FORMAT_VERSION = 1

EVENT_NAMES: dict[str, str] = {
    "rule.fired": "a rule matched a client: rule version, facts snapshot, policy trail, and the words rendered "
                  "(template version, context, text) or the stage that suppressed it",
    "send.attempted": "dispatch tried a channel (attempt number, provider, outcome)",
    "send.receipt": "a delivery receipt or bounce came back",
    "task.outcome": "an advisor recorded the outcome of a call task",
    "proposal.approved": "compliance approved a rule or template version (content hash)",
    "proposal.rejected": "compliance rejected a rule or template version",
    "role.granted": "a user was given a role",
    "role.revoked": "a role was taken from a user",
    "client.viewed": "someone looked at a client's personal data",
    "risk.assessed": "a risk questionnaire was saved and set the client's suitability level C1-C5",
    "client.exported": "someone exported client or audit data",
    "review.assigned": "a sent message or completed task was sampled for supervisory review",
    "review.decided": "a supervisor recorded a review decision and comment",
    "retention.applied": "retention ran: restrictions recorded, disposals due reported",
    "hold.placed": "a legal hold was placed on a client's records",
    "hold.released": "a legal hold was released",
    "audit.key_rotated": "a new audit key signs events from now on (key ids, never secrets)",
}
"""Stable event names. Extensions add theirs with `register_event_name`.

Logs written before one event per firing also hold `message.suppressed` and `message.rendered`
events (what `rule.fired` now carries in `data.suppressed` and `data.message`); they verify
as they are, `message_of` reads their words, and nothing writes them any more."""

COLUMNS = ("name", "at", "actor", "client_id", "advisor_id", "rule_id", "rule_hash", "template_hash",
           "firing_id", "as_of", "segment", "rule_class", "channel", "status", "reason")
"""Indexed copies of body fields (filters for `steward audit list`)."""


def register_event_name(name: str, meaning: str) -> None:
    """Allow a new event name (e.g. a firm's own `consent.recorded`)."""
    if name in EVENT_NAMES and EVENT_NAMES[name] != meaning:
        raise ValueError(f"audit event name {name!r} is already registered")
    EVENT_NAMES[name] = meaning


# ------------------------------------------------------------------ tables


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_client_at", "client_id", "at"),
        Index("ix_audit_event_rule", "rule_id", "rule_hash"),
    )

    seq: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    """Chain position, 1, 2, 3, ... without gaps."""
    name: str = Field(max_length=32)
    at: datetime = Field(index=True)
    actor: str = Field(max_length=64)
    client_id: str | None = Field(default=None, max_length=64)
    advisor_id: str | None = Field(default=None, max_length=64)
    rule_id: str | None = Field(default=None, max_length=128)
    rule_hash: str | None = Field(default=None, max_length=64)
    template_hash: str | None = Field(default=None, max_length=64)
    firing_id: int | None = Field(default=None, index=True)
    as_of: date | None = Field(default=None, index=True)
    segment: str | None = Field(default=None, max_length=16)
    rule_class: str | None = Field(default=None, max_length=16)
    channel: str | None = Field(default=None, max_length=16)
    status: str | None = Field(default=None, max_length=16)
    reason: str | None = Field(default=None, max_length=64)
    body: str = Field(sa_type=Text)
    """Canonical JSON of the whole event: what the hash covers."""
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)
    """sha256 of prev_hash + body; distinct by construction (the body holds `seq`), so not indexed
    (migration 0025_lead: a random key made the costliest index of a nightly run)."""
    mac: str | None = Field(default=None, max_length=64)
    """HMAC-SHA256 of `hash` under the audit key (STEWARD_AUDIT_KEY), which the database never holds."""
    key_id: str | None = Field(default=None, max_length=32)
    """Which audit key wrote `mac` (engine.audit.keys); none: the single key of STEWARD_AUDIT_KEY(_FILE)."""


class AuditBlob(SQLModel, table=True):
    """Content-addressed texts (rule and template sources, facts snapshots): key = sha256 of the text."""

    __tablename__ = "audit_blob"
    sha256: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)
    """rule, template or facts (a client's facts snapshot: engine.audit.facts_store)."""
    body: str = Field(sa_type=Text)
    created_at: datetime


EVENT = AuditEvent.__table__  # type: ignore[attr-defined]
BLOB = AuditBlob.__table__  # type: ignore[attr-defined]


# ------------------------------------------------------------------ events


@dataclass(frozen=True)
class Event:
    """One audit event before it is chained. `data` must be JSON-serialisable."""

    name: str
    actor: str
    data: dict[str, Any] = field(default_factory=dict)
    client_id: str | None = None
    advisor_id: str | None = None
    rule_id: str | None = None
    rule_hash: str | None = None
    template_hash: str | None = None
    firing_id: int | None = None
    as_of: date | None = None
    segment: str | None = None
    rule_class: str | None = None
    channel: str | None = None
    status: str | None = None
    reason: str | None = None
    at: datetime | None = None


def _json_default(v: Any) -> Any:
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    if isinstance(v, (set, frozenset, tuple)):
        return list(v)
    raise TypeError(f"audit data holds a {type(v).__name__}, which is not JSON: {v!r}")


_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def canonical(obj: Any) -> str:
    """The one JSON form hashes are computed over: sorted keys, no spaces, UTF-8 as is.

    orjson, about ten times faster than the standard library on the facts snapshots the
    nightly run records. `verify` hashes the stored text and never re-encodes, so bodies
    written by the earlier encoder (same keys and values; small floats as 1e-05 instead of
    0.00001) verify unchanged.
    """
    return canonical_bytes(obj).decode("utf-8")


def canonical_bytes(obj: Any) -> bytes:
    """`canonical(obj)` as UTF-8 bytes, the form the hash covers."""
    try:
        return orjson.dumps(obj, default=_json_default, option=_CANONICAL)
    except orjson.JSONEncodeError as e:
        raise TypeError(str(e.__cause__ or e)) from e


def chain_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


KEY_ENV, KEY_FILE_ENV = "STEWARD_AUDIT_KEY", "STEWARD_AUDIT_KEY_FILE"


def audit_key() -> bytes | None:
    """The current event-authentication key (engine.audit.keys: a key ring, or STEWARD_AUDIT_KEY(_FILE))."""
    return keys.keyring().current_key


def event_mac(key: bytes | None, h: str) -> str | None:
    return hmac.new(key, h.encode("ascii"), hashlib.sha256).hexdigest() if key else None


def sha256_text(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def _iso_utc(at: datetime) -> str:
    if at.utcoffset() is None:
        raise ValueError("audit event times must be timezone-aware (use datetime.now(timezone.utc))")
    return at.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _check(events: Sequence[Event]) -> None:
    bad = sorted({e.name for e in events if e.name not in EVENT_NAMES})
    if bad:
        raise ValueError(f"unknown audit event name(s) {bad}; known: {', '.join(sorted(EVENT_NAMES))} "
                         "(register a new one with engine.audit.log.register_event_name)")
    if any(not e.actor for e in events):
        raise ValueError("every audit event names its actor (a user id, or the component such as 'engine')")


def _lock_and_head(conn: Connection) -> tuple[int, str]:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
    else:
        # Takes SQLite's write lock before reading the head (a no-op write starts the
        # write transaction), so a concurrent appender waits instead of forking the chain.
        conn.execute(text("UPDATE audit_event SET seq = seq WHERE 1 = 0"))
    row = conn.execute(select(EVENT.c.seq, EVENT.c.hash).order_by(EVENT.c.seq.desc()).limit(1)).first()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


def _record(e: Event, seq: int, now: datetime) -> dict[str, Any]:
    return {
        "v": FORMAT_VERSION, "seq": seq, "name": e.name, "at": _iso_utc(e.at or now), "actor": e.actor,
        "client_id": e.client_id, "advisor_id": e.advisor_id, "rule_id": e.rule_id, "rule_hash": e.rule_hash,
        "template_hash": e.template_hash, "firing_id": e.firing_id,
        "as_of": e.as_of.isoformat() if e.as_of else None, "segment": e.segment, "rule_class": e.rule_class,
        "channel": e.channel, "status": e.status, "reason": e.reason, "data": e.data,
    }


_SEQ_MARK = -1
"""Chain position written while encoding, before the chain lock is taken and seq is known."""
LATE_ID = -2
"""`Event.firing_id` of an event whose firing has no id yet (the nightly run encodes its events
before it inserts the firings): `write` puts the real id in the body and the column."""
_LATE = ("seq", "firing_id", "body", "prev_hash", "hash", "mac", "key_id")
"""Columns known only under the chain lock (or, for firing_id, once the firings are inserted)."""


def _cut(body: bytes, key: str, value: int) -> tuple[bytes, bytes]:
    """`body` split around the value of its top-level `key`. Keys are sorted and "data" (the only
    nested value) comes before "firing_id" and "seq", so the last occurrence is the top-level one
    (inside a string the quotes would be escaped)."""
    mark = f',"{key}":{value},'.encode("ascii")
    cut = body.rindex(mark)
    return body[: cut + len(key) + 4], body[cut + len(mark) - 1:]


def _encoded(e: Event, now: datetime) -> tuple[tuple[bytes, ...], dict[str, Any]]:
    """An event's canonical body (UTF-8) split around its seq (and a late firing id), and its
    filter columns: all the JSON work, done before the chain lock so concurrent appenders wait
    only for hashing and insert."""
    rec = _record(e, _SEQ_MARK, now)
    head, tail = _cut(canonical_bytes(rec), "seq", _SEQ_MARK)
    row = {k: rec[k] for k in COLUMNS}
    row.update(at=e.at or now, as_of=e.as_of)
    if e.firing_id == LATE_ID:
        return (*_cut(head, "firing_id", LATE_ID), tail), row
    return (head, tail), row


@dataclass(frozen=True)
class Prepared:
    """Events encoded before the chain lock (`prepare`); `write` hashes and inserts them."""

    names: list[str]
    data: list[tuple[Any, ...]]
    raw: list[tuple[bytes, ...]]
    """Each body in UTF-8, split around its late values: the chain hash is computed over these
    (no body is encoded under the lock), and SQLite stores them as they are."""
    parts: list[tuple[str, ...]] | None
    """`raw` decoded, for PostgreSQL (None on SQLite)."""
    firing_ids: list[int | None]

    def __len__(self) -> int:
        return len(self.raw)


def prepare(conn: Connection, events: Sequence[Event]) -> Prepared:
    """Check and encode events (canonical JSON, column values) without taking the chain lock."""
    _check(events)
    now = clock.now()
    raw: list[tuple[bytes, ...]] = []
    rows: list[dict[str, Any]] = []
    for e in events:
        p, row = _encoded(e, now)
        raw.append(p)
        rows.append(row)
    parts = None if conn.dialect.name == "sqlite" else [tuple(b.decode("utf-8") for b in p) for p in raw]
    names, data = encode_rows(conn, EVENT, rows, skip=_LATE) if rows else ([], [])
    return Prepared([*_LATE, *names], data, raw, parts, [e.firing_id for e in events])


def write(conn: Connection, p: Prepared, firing_ids: Sequence[int] | None = None, chunk: int = 5000) -> list[int]:
    """Take the chain lock, chain and insert prepared events in order; returns their seq numbers.

    `firing_ids[i]` replaces event i's firing id where it was `LATE_ID`.
    """
    if not p.raw:
        return []
    ring = keys.keyring()
    key, key_id = ring.current_key, ring.current
    seq, prev = _lock_and_head(conn)
    out: list[tuple[Any, ...]] = []
    sha256 = hashlib.sha256
    for i, (raw, pre) in enumerate(zip(p.raw, p.data)):
        seq += 1
        fid = p.firing_ids[i]
        if fid == LATE_ID:
            if firing_ids is None:
                raise ValueError(f"audit event {i} waits for its firing id (LATE_ID) but none was given")
            fid = firing_ids[i]
            encoded = b"%b%d%b%d%b" % (raw[0], fid, raw[1], seq, raw[2])
        else:
            encoded = b"%b%d%b" % (raw[0], seq, raw[1])
        digest = sha256(prev.encode("ascii"))  # = chain_hash(prev, body), without encoding the body
        digest.update(encoded)
        h = digest.hexdigest()
        body: str | bytes = encoded if p.parts is None else _body(p.parts[i], fid, seq)
        out.append((seq, fid, body, prev, h, event_mac(key, h), key_id, *pre))
        prev = h
    for i in range(0, len(out), chunk):
        write_rows(conn, EVENT, p.names, out[i : i + chunk], utf8=("body",))
    return [t[0] for t in out]


def _body(parts: tuple[str, ...], fid: int | None, seq: int) -> str:
    return f"{parts[0]}{fid}{parts[1]}{seq}{parts[2]}" if len(parts) == 3 else f"{parts[0]}{seq}{parts[1]}"


def append(conn: Connection, events: Sequence[Event], chunk: int = 5000) -> list[int]:
    """Chain and insert events (in order, one executemany per chunk); returns their seq numbers."""
    if not events:
        return []
    return write(conn, prepare(conn, events), chunk=chunk)


def put_blobs(conn: Connection, kind: str, texts: Iterable[str]) -> dict[str, str]:
    """Store texts not yet stored; returns sha256 -> text for all given.

    Idempotent under concurrency: blobs are content-addressed, so two writers storing the
    same text at once (two shards, the nightly run and the event engine) both succeed;
    the insert skips a key that exists (ON CONFLICT DO NOTHING on SQLite and PostgreSQL)
    instead of checking first and racing on the primary key.
    """
    by_hash = {sha256_text(t): t for t in texts}
    if not by_hash:
        return by_hash
    have = {r[0] for r in conn.execute(select(BLOB.c.sha256).where(BLOB.c.sha256.in_(list(by_hash))))}
    now = clock.now()
    new = [{"sha256": h, "kind": kind, "body": t, "created_at": now} for h, t in sorted(by_hash.items()) if h not in have]
    if new:
        conn.execute(insert_ignoring_duplicates(conn, BLOB), new)
    return by_hash


def insert_ignoring_duplicates(conn: Connection, table: Any) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing()


def get_blob(conn: Connection, sha256: str) -> str | None:
    return conn.execute(select(BLOB.c.body).where(BLOB.c.sha256 == sha256)).scalar()


def head(conn: Connection) -> tuple[int, str]:
    """(seq, hash) of the newest event; (0, GENESIS) for an empty log."""
    row = conn.execute(select(EVENT.c.seq, EVENT.c.hash).order_by(EVENT.c.seq.desc()).limit(1)).first()
    return (int(row[0]), str(row[1])) if row else (0, GENESIS)


def body_of(row: Any) -> dict[str, Any]:
    return json.loads(row.body)  # type: ignore[no-any-return]


# ------------------------------------------------------------------ verify


@dataclass(frozen=True)
class Broken:
    """The first broken link: which event, and what is wrong with it."""

    seq: int
    name: str
    problem: str

    def __str__(self) -> str:
        return f"event #{self.seq} ({self.name}): {self.problem}"


@dataclass(frozen=True)
class VerifyResult:
    events: int
    head_seq: int
    head_hash: str
    broken: Broken | None = None
    blobs_checked: int = 0

    @property
    def ok(self) -> bool:
        return self.broken is None


def _column_mismatch(row: Any, rec: dict[str, Any]) -> str | None:
    for k in COLUMNS:
        v = getattr(row, k)
        if k == "at":
            v = _iso_utc(v if v.utcoffset() is not None else v.replace(tzinfo=timezone.utc))
        elif k == "as_of" and v is not None:
            v = v.isoformat()
        if v != rec.get(k):
            return f"column {k} is {v!r} but the hashed record says {rec.get(k)!r} (row edited)"
    return None


def _check_mac(row: Any, key: bytes | None, ring: keys.KeyRing | None = None) -> str | None:
    if ring is not None and ring.keys and key is None:
        key = ring.key_for(row.key_id)
        if key is None and row.mac is not None:
            return (f"its HMAC was written with audit key {row.key_id or keys.DEFAULT_ID!r}, which is not in the key ring: "
                    "add that key to STEWARD_AUDIT_KEYS_FILE to check it (docs/audit.md, rotating the key)")
    if key is None:
        return None
    if row.mac is None:
        return "it carries no HMAC: written without the audit key, or inserted by hand (forged)"
    if not hmac.compare_digest(row.mac, event_mac(key, row.hash) or ""):
        return "its HMAC does not match under the audit key: forged, or written with another key"
    return None


def _check_row(row: Any, expected_seq: int, prev: str) -> str | None:
    if row.seq != expected_seq:
        missing = f"#{expected_seq}" if row.seq == expected_seq + 1 else f"#{expected_seq}..#{row.seq - 1}"
        return f"events {missing} are missing before it (rows deleted)"
    if row.prev_hash != prev:
        return f"prev_hash {row.prev_hash[:12]}… does not match the hash of event #{row.seq - 1} {prev[:12]}… (rows deleted or reordered)"
    if chain_hash(row.prev_hash, row.body) != row.hash:
        return "its hash does not match its content (row edited)"
    try:
        rec = json.loads(row.body)
    except json.JSONDecodeError:
        return "its body is not JSON (row edited)"
    if rec.get("seq") != row.seq:
        return f"it was recorded as event #{rec.get('seq')} (rows reordered)"
    return _column_mismatch(row, rec)


def _rows(conn: Connection) -> Generator[Any, None, None]:
    q = select(EVENT).order_by(EVENT.c.seq).execution_options(yield_per=5000)
    result = conn.execute(q)
    try:
        yield from result
    finally:
        result.close()  # also when verify stops early: frees PostgreSQL's server-side cursor


def verify(conn: Connection, known_heads: Sequence[tuple[int, str]] = (), key: bytes | None = None,
           ring: keys.KeyRing | None = None) -> VerifyResult:
    """Walk the chain from the first event; stop at the first broken link.

    `known_heads` are (seq, hash) pairs published earlier (an export manifest's head):
    each must still be in the chain, which catches rows cut off the end. With `key`, every
    event's HMAC is checked too (INSERT rights alone cannot forge an event); with `ring`, each
    event's HMAC is checked with the key its `key_id` names (rotated keys).
    """
    prev, n, last_seq = GENESIS, 0, 0
    wanted = dict(known_heads)
    rows = _rows(conn)
    try:
        for row in rows:
            problem = _check_row(row, last_seq + 1, prev) or _check_mac(row, key, ring)
            if problem is None and row.seq in wanted and wanted[row.seq] != row.hash:
                problem = f"hash {row.hash[:12]}… differs from the published head {wanted[row.seq][:12]}…"
            if problem:
                return VerifyResult(n, last_seq, prev, Broken(row.seq, row.name, problem))
            prev, n, last_seq = row.hash, n + 1, row.seq
    finally:
        rows.close()
    for seq, h in known_heads:
        if seq > last_seq:
            return VerifyResult(n, last_seq, prev, Broken(seq, "?", f"published head #{seq} {h[:12]}… is gone: "
                                                                   f"the log ends at #{last_seq} (rows deleted from the end)"))
    blobs, broken = _verify_blobs(conn)
    return VerifyResult(n, last_seq, prev, broken, blobs)


def _verify_blobs(conn: Connection) -> tuple[int, Broken | None]:
    n = 0
    result = conn.execute(select(BLOB.c.sha256, BLOB.c.kind, BLOB.c.body).execution_options(yield_per=2000))
    try:
        for h, kind, body in result:  # a facts snapshot per client and night: streamed, not held
            if sha256_text(body) != h:
                bad = (h, kind)
                break
            n += 1
        else:
            return n, None
    finally:
        result.close()
    if bad[1] == "facts":
        return n, _edited_snapshot(conn, bad[0])
    return n, Broken(0, f"audit_blob {bad[0][:12]}…", f"the stored {bad[1]} source does not match its hash (row edited)")


def _edited_snapshot(conn: Connection, h: str) -> Broken:
    """A facts snapshot whose text no longer hashes to its key, located: the first firing and its
    rule.fired event that name it (a rare path: the firing table has no index on the hash)."""
    firing = Firing.__table__  # type: ignore[attr-defined]
    ids = [r[0] for r in conn.execute(select(firing.c.id).where(firing.c.facts_sha256 == h).order_by(firing.c.id).limit(5))]
    seq = conn.execute(select(EVENT.c.seq).where(EVENT.c.firing_id.in_(ids), EVENT.c.name == "rule.fired")
                       .order_by(EVENT.c.seq).limit(1)).scalar() if ids else None
    named = f"named by firing(s) {', '.join(f'#{i}' for i in ids)}" if ids else "named by no firing"
    return Broken(int(seq or 0), "rule.fired" if seq else f"audit_blob {h[:12]}…",
                  f"the facts snapshot audit_blob {h[:12]}… ({named}) does not match its hash (row edited)")
