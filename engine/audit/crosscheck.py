"""Cross-checks of the tables the audit log describes: firings, outbox messages and stored sources.

The chain proves the log was not edited; these prove the log and the working tables still
agree, so an emptied log, a deleted `audit_blob` row, or an edited firing or outbox message
is noticed by `steward audit verify`:

- every firing has its `rule.fired` event, with the same client, rule, rule hash and day;
- every firing's message text equals the text its event recorded (`data.message` of `rule.fired`;
  a `message.rendered` event in logs written before one event per firing);
- every client message in the outbox carries the words its firing rendered;
- every source the events name (`rule_source`, the message's `template_source`) is still in `audit_blob`;
- every facts snapshot a `rule.fired` event names (`data.facts_sha256`) is in `audit_blob`, and the
  firing row names the same one (its text hashing to its key is `verify`'s blob check).

The outbox is read by table name: the audit wing imports nothing above the ground floor.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import column, select, table
from sqlalchemy.engine import Connection

from engine.audit.firing_events import message_of
from engine.audit.log import BLOB, EVENT
from engine.models import Firing

FIRING = Firing.__table__  # type: ignore[attr-defined]
OUTBOX = table("outbox", column("id"), column("kind"), column("firing_id"), column("body"))
LIMIT = 20
"""Problems listed at most (the count is always given)."""


def _events(conn: Connection, *names: str) -> Iterator[Any]:
    q = select(EVENT.c.seq, EVENT.c.name, EVENT.c.firing_id, EVENT.c.client_id, EVENT.c.rule_id, EVENT.c.rule_hash,
               EVENT.c.as_of, EVENT.c.body).where(EVENT.c.name.in_(names)).execution_options(yield_per=5000)
    yield from conn.execute(q)


def cross_check(conn: Connection) -> list[str]:
    """Every disagreement between the log and the tables it describes (empty: they agree)."""
    problems: list[str] = []
    fired: dict[int, Any] = {}
    sources: set[str] = set()
    rendered: dict[int, str | None] = {}
    snapshots: dict[str, tuple[int, int | None]] = {}  # facts hash -> (seq, firing id) of the first event naming it
    snapshot_of: dict[int, str | None] = {}  # firing id -> the facts hash its event names
    for e in _events(conn, "rule.fired", "message.rendered"):
        body = json.loads(e.body)
        data = body["data"]
        if e.name == "rule.fired":
            if e.firing_id is not None:
                fired[e.firing_id] = e
                snapshot_of[e.firing_id] = data.get("facts_sha256")
            if data.get("rule_source"):
                sources.add(data["rule_source"])
            if data.get("facts_sha256"):
                snapshots.setdefault(data["facts_sha256"], (e.seq, e.firing_id))
        message = message_of(body)
        if message is None:
            continue
        if e.firing_id is not None:
            rendered[e.firing_id] = message.get("text")
        if message.get("template_source"):
            sources.add(message["template_source"])
    cols = (FIRING.c.id, FIRING.c.client_id, FIRING.c.rule_id, FIRING.c.rule_hash, FIRING.c.as_of, FIRING.c.message,
            FIRING.c.facts_sha256)
    messages: dict[int, str | None] = {}
    for f in conn.execute(select(*cols).execution_options(yield_per=5000)):
        messages[f.id] = f.message
        e = fired.get(f.id)
        if e is None:
            problems.append(f"firing #{f.id} ({f.rule_id}, {f.client_id}, {f.as_of}) has no rule.fired event "
                            "(events deleted, or the firing was inserted by hand)")
        elif (e.client_id, e.rule_id, e.rule_hash, e.as_of) != (f.client_id, f.rule_id, f.rule_hash, f.as_of):
            problems.append(f"firing #{f.id} differs from its rule.fired event #{e.seq} (firing row edited)")
        elif f.id in rendered and rendered[f.id] != f.message:
            problems.append(f"firing #{f.id}: its message differs from the text its rule.fired event recorded (edited)")
        elif f.facts_sha256 != snapshot_of.get(f.id) and (f.facts_sha256 or snapshot_of.get(f.id)):
            problems.append(f"firing #{f.id} names facts snapshot {str(f.facts_sha256)[:12]}… but its rule.fired event "
                            f"#{e.seq} names {str(snapshot_of.get(f.id))[:12]}… (firing row edited)")
    for o in conn.execute(select(OUTBOX.c.id, OUTBOX.c.firing_id, OUTBOX.c.body).where(OUTBOX.c.kind == "client")):
        if o.firing_id is not None and o.firing_id in rendered and rendered[o.firing_id] != o.body:
            problems.append(f"outbox message #{o.id}: its words differ from what firing #{o.firing_id} rendered (edited)")
    have = {r[0] for r in conn.execute(select(BLOB.c.sha256))}
    problems += [f"audit_blob {h[:12]}… is named by events but missing (deleted)" for h in sorted(sources - have)]
    problems += [f"facts snapshot audit_blob {h[:12]}… named by rule.fired event #{seq} (firing #{fid}) is missing (deleted)"
                 for h, (seq, fid) in sorted(snapshots.items()) if h not in have]
    return problems
