"""Audit stage: look up recorded firings and audit events (who, why, which rule version,
which words), and render a recorded message again from the audit log alone."""

from __future__ import annotations

import csv
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, model_validator
from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from engine.facts import base as facts_mod
from engine.audit import facts_store
from engine.audit.firing_events import message_of
from engine.audit.log import BLOB, EVENT, EVENT_NAMES, GENESIS, Event, append, chain_hash, sha256_text, verify
from engine import clock, sheets
from engine.errors import did_you_mean
from engine.pipeline.recording import FIRING
from engine.language.rendering import Renderer


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


def firings_page(conn: Connection, where: dict[str, Any], limit: int, offset: int) -> tuple[list[Any], int]:
    """Firings matching `where` (column -> value; None ignored), newest first: one page and the total."""
    conds = [FIRING.c[k] == v for k, v in where.items() if v is not None]
    total = int(conn.execute(select(func.count()).select_from(FIRING).where(*conds)).scalar() or 0)
    rows = conn.execute(select(FIRING).where(*conds).order_by(FIRING.c.id.desc()).limit(limit).offset(offset))
    return list(rows), total


def known_values(conn: Connection, column: str) -> list[str]:
    """The distinct values of a firing column (for did-you-mean on filters)."""
    return [r[0] for r in conn.execute(select(FIRING.c[column]).distinct()) if r[0] is not None]


def get_firing(conn: Connection, firing_id: int) -> Any:
    return conn.execute(select(FIRING).where(FIRING.c.id == firing_id)).first()


def samples(conn: Connection, run_id: int | None) -> list[Any]:
    """The first firing of each rule in a run that produced words (blocked ones have none)."""
    first = (
        select(func.min(FIRING.c.id))
        .where(FIRING.c.run_id == run_id, FIRING.c.message.is_not(None))
        .group_by(FIRING.c.rule_id)
    )
    return list(conn.execute(select(FIRING).where(FIRING.c.id.in_(first)).order_by(FIRING.c.rule_id)))


# ------------------------------------------------------------------ audit events

class EventFilter(BaseModel):
    """Filters of `steward audit list` and `audit export`; all optional, combined with AND."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    rule: str | None = None
    rule_version: str | None = None
    """A prefix of the rule content hash (as shown by `audit list`)."""
    advisor: str | None = None
    client: str | None = None
    segment: str | None = None
    rule_class: str | None = None
    channel: str | None = None
    status: str | None = None
    reason: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    """Inclusive. Events of an evaluation by their evaluation day (`as_of`); others by event time, branch zone."""

    @model_validator(mode="after")
    def _range(self) -> EventFilter:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError(f"--from {self.date_from} is after --to {self.date_to}")
        if self.name is not None and self.name not in EVENT_NAMES:
            raise ValueError(f"unknown event name {self.name!r}{did_you_mean(self.name, EVENT_NAMES)}")
        return self


def _day_start(d: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, time.min, tz).astimezone(timezone.utc)


def _where(q: Any, f: EventFilter, tz: ZoneInfo) -> Any:
    c = EVENT.c
    equal = {"name": c.name, "rule": c.rule_id, "advisor": c.advisor_id, "client": c.client_id, "segment": c.segment,
             "rule_class": c.rule_class, "channel": c.channel, "status": c.status, "reason": c.reason}
    for key, col in equal.items():
        v = getattr(f, key)
        if v is not None:
            q = q.where(col == v)
    if f.rule_version:
        q = q.where(c.rule_hash.like(f.rule_version.lower() + "%"))
    # An event of an evaluation (firings, renders, sends) belongs to its evaluation day, whenever it
    # was written: a 12-31 run recorded on 01-01 is in December's export. Other events: by time.
    if f.date_from:
        q = q.where(or_(c.as_of >= f.date_from, and_(c.as_of.is_(None), c.at >= _day_start(f.date_from, tz))))
    if f.date_to:
        q = q.where(or_(c.as_of <= f.date_to,
                        and_(c.as_of.is_(None), c.at < _day_start(f.date_to + timedelta(days=1), tz))))
    return q


def list_events(conn: Connection, f: EventFilter, tz: ZoneInfo, limit: int | None = 50, newest_first: bool = True,
                offset: int = 0) -> list[Any]:
    q = _where(select(EVENT), f, tz)
    q = q.order_by(EVENT.c.seq.desc() if newest_first else EVENT.c.seq)
    if limit:
        q = q.limit(limit).offset(offset)
    return list(conn.execute(q))


def count_events(conn: Connection, f: EventFilter, tz: ZoneInfo) -> int:
    return int(conn.execute(_where(select(func.count()).select_from(EVENT), f, tz)).scalar() or 0)


def iter_events(conn: Connection, f: EventFilter, tz: ZoneInfo) -> Iterator[Any]:
    result = conn.execute(_where(select(EVENT), f, tz).order_by(EVENT.c.seq).execution_options(yield_per=5000))
    try:
        yield from result
    finally:
        result.close()


@dataclass(frozen=True)
class Position:
    seq: int
    total: int
    link_ok: bool
    """The event's hash matches its body, and its prev_hash matches the event before it."""
    prev_hash: str


def get_event(conn: Connection, seq: int) -> tuple[Any, Position] | None:
    row = conn.execute(select(EVENT).where(EVENT.c.seq == seq)).first()
    if row is None:
        return None
    total = int(conn.execute(select(func.max(EVENT.c.seq))).scalar() or 0)
    before = conn.execute(select(EVENT.c.hash).where(EVENT.c.seq == seq - 1)).scalar() if seq > 1 else GENESIS
    ok = before == row.prev_hash and chain_hash(row.prev_hash, row.body) == row.hash
    return row, Position(seq, total, ok, row.prev_hash)


# ------------------------------------------------------------------ reproducing a message


def _typed_facts(snapshot: dict[str, Any]) -> dict[str, Any]:
    """Facts as the renderer saw them: date fields back from ISO strings."""
    fields = facts_mod.all_fields()
    out = dict(snapshot)
    for k, v in snapshot.items():
        if isinstance(v, str) and k in fields and fields[k].type == facts_mod.DATE:
            out[k] = date.fromisoformat(v)
    return out


def reproduce(fired: dict[str, Any], rendered: dict[str, Any], template_source: str,
              facts: dict[str, Any] | None = None) -> tuple[str | None, str]:
    """Render a message again from audit records alone: the rule.fired event body, the message
    it records (`{"data": data.message}`, or a `message.rendered` body of an older log), the
    template source and the facts snapshot the event names (`data.facts_sha256`; events written
    before issue 16 carry it in `data.facts`, used when `facts` is not given). Returns (subject, text)."""
    data, ctx = rendered["data"], rendered["data"]["context"]
    name, locale = data["template"], data["template_locale"]
    with tempfile.TemporaryDirectory(prefix="steward-reproduce-") as tmp:
        folder = Path(tmp) / name
        folder.mkdir()
        (folder / f"{locale}.j2").write_text(template_source, encoding="utf-8")
        renderer = Renderer(Path(tmp), locale, ctx["firm"] or {})
        problems = renderer.load([name], facts_mod.all_fields())
        if problems:
            raise ValueError("; ".join(str(p) for p in problems))
        snapshot = facts if facts is not None else fired["data"]["facts"]
        context = {"client": _typed_facts(snapshot), "advisor": ctx["advisor"], "rule": ctx["rule"],
                   "as_of": date.fromisoformat(ctx["as_of"])}
        return renderer.render(name, locale, context)


# ------------------------------------------------------------------ export for a regulator

EXPORT_FORMATS = ("jsonl", "csv", "xlsx")
EXPORT_COLUMNS = ("seq", "name", "at", "actor", "client_id", "advisor_id", "rule_id", "rule_hash", "template_hash",
                  "firing_id", "as_of", "segment", "rule_class", "channel", "status", "reason", "prev_hash", "hash", "body")


def _sha256_file(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _cell(v: Any) -> Any:
    return v.isoformat() if isinstance(v, (date, datetime)) else v


def _write_events(rows: Iterator[Any], path: Path, fmt: str, sources: set[str],
                  progress: Callable[[int], None] | None = None) -> tuple[int, int | None, int | None]:
    seen = {"n": 0, "first": None, "last": None}

    def records() -> Iterator[dict[str, Any]]:
        for r in rows:
            body = json.loads(r.body)
            data, message = body.get("data") or {}, message_of(body) or {}
            sources.update(h for h in (data.get("rule_source"), message.get("template_source"), data.get("facts_sha256"))
                           if isinstance(h, str))
            seen["n"] = int(seen["n"] or 0) + 1
            seen["first"], seen["last"] = seen["first"] or r.seq, r.seq
            if progress is not None:
                progress(1)
            yield {k: _cell(getattr(r, k)) for k in EXPORT_COLUMNS}

    if fmt == "csv":
        sheets.write_csv(path, EXPORT_COLUMNS, ([rec[k] for k in EXPORT_COLUMNS] for rec in records()))
    elif fmt == "xlsx":
        sheets.write_xlsx(path, [("events", EXPORT_COLUMNS, ([rec[k] for k in EXPORT_COLUMNS] for rec in records()))])
    else:
        with path.open("w", encoding="utf-8", newline="") as fh:
            for rec in records():
                fh.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
    return int(seen["n"] or 0), seen["first"], seen["last"]


def export(conn: Connection, out: Path, fmt: str, f: EventFilter, tz: ZoneInfo, actor: str,
           progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write events.<fmt>, sources.jsonl and manifest.json (with the chain head) to `out`."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"--format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    sheets.refuse_existing(out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    append(conn, [Event("client.exported", actor=actor, client_id=f.client,
                        data={"what": "audit events", "format": fmt, "filters": f.model_dump(mode="json", exclude_none=True)})])
    sources: set[str] = set()
    events_path = out / f"events.{fmt}"
    n, first, last = _write_events(iter_events(conn, f, tz), events_path, fmt, sources, progress)
    wanted = sorted(sources)  # rule and template sources and facts snapshots: one query per page
    with (out / "sources.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(0, len(wanted), facts_store.PAGE):
            for h, kind, body in conn.execute(select(BLOB.c.sha256, BLOB.c.kind, BLOB.c.body)
                                              .where(BLOB.c.sha256.in_(wanted[i:i + facts_store.PAGE])).order_by(BLOB.c.sha256)):
                fh.write(json.dumps({"sha256": h, "kind": kind, "body": body}, ensure_ascii=False) + "\n")
    v = verify(conn)
    manifest = {
        "steward_audit_export": 1, "created_at": clock.now().isoformat(), "created_by": actor,
        "format": fmt, "filters": f.model_dump(mode="json", exclude_none=True), "events": n,
        "first_seq": first, "last_seq": last, "chain_head": {"seq": v.head_seq, "hash": v.head_hash},
        "chain_verified": v.ok, "chain_problem": str(v.broken) if v.broken else None,
        "files": {p.name: _sha256_file(p) for p in (events_path, out / "sources.jsonl")},
        "hash_rule": "hash = sha256(prev_hash + body), body = canonical JSON (sorted keys, no spaces, UTF-8)",
    }
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return manifest


def _xlsx_records(path: Path) -> list[dict[str, Any]]:
    from openpyxl import load_workbook

    wb = load_workbook(path, read_only=True)
    try:
        it = wb.worksheets[0].iter_rows(values_only=True)
        header = [str(h) for h in next(it)]
        return [{k: ("" if v is None else str(v)) for k, v in zip(header, row)} for row in it]
    finally:
        wb.close()


def read_export(out: Path) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, str]]:
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    path = out / f"events.{manifest['format']}"
    if manifest["format"] == "xlsx":
        rows = _xlsx_records(path)
    else:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            if manifest["format"] == "csv":
                rows = list(csv.DictReader(fh))
            else:
                rows = [json.loads(line) for line in fh if line.strip()]
    with (out / "sources.jsonl").open(encoding="utf-8") as fh:
        sources = {s["sha256"]: s["body"] for s in map(json.loads, fh) if s}
    return manifest, rows, sources


@dataclass
class ExportCheck:
    events: int = 0
    problems: list[str] = field(default_factory=list)
    reproduced: int = 0
    not_reproducible: int = 0


def check_export(out: Path) -> ExportCheck:
    """Check an export by itself: file hashes, each event's hash, and every message rendered again."""
    manifest, rows, sources = read_export(out)
    res = ExportCheck(len(rows))
    for name, h in manifest["files"].items():
        if _sha256_file(out / name) != h:
            res.problems.append(f"{name}: sha256 differs from the manifest")
    bodies = {}
    for r in rows:
        if chain_hash(r["prev_hash"], r["body"]) != r["hash"]:
            res.problems.append(f"event #{r['seq']} ({r['name']}): hash does not match its body")
        bodies[int(r["seq"])] = json.loads(r["body"])
    for h, body in sources.items():
        if sha256_text(body) != h:
            res.problems.append(f"source {h[:12]}…: text does not match its hash")
    fired = {b["firing_id"]: b for b in bodies.values() if b["name"] == "rule.fired"}
    for seq, b in sorted(bodies.items()):
        message = message_of(b)
        if message is None:
            continue
        src = sources.get(message.get("template_source") or "")
        data = fired[b["firing_id"]]["data"] if b["firing_id"] in fired else {}
        snapshot = sources.get(data.get("facts_sha256") or "")
        facts = json.loads(snapshot) if snapshot is not None else data.get("facts")
        if src is None or not isinstance(facts, dict):
            res.not_reproducible += 1
            continue
        subject, text = reproduce(fired[b["firing_id"]], {"data": message}, src, facts)
        if (subject, text) != (message["subject"], message["text"]):
            res.problems.append(f"event #{seq} ({b['name']}): rendering again gives different words")
        else:
            res.reproduced += 1
    return res
