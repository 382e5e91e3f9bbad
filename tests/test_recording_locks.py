"""The recording stage holds the write lock (SQLite) and the audit chain lock only for the writes:
audit bodies and outbox rows are built before a batch's first write, in transactions of
RECORD_CHUNK clients, and what is stored is what one step at a time would store."""

from __future__ import annotations

import gc
import sqlite3
from datetime import date, datetime, timezone
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from engine.audit import firing_events
from engine.audit import log as auditlog
from engine.audit.log import EVENT, Event, verify
from engine.config.base import Config
from engine.dispatch import outbox
from engine.language.loading import load_ruleset
from engine.pipeline import run as pipeline
from tests import book

AT = datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)


def test_the_built_in_record_hooks_prepare_before_the_write_lock() -> None:
    from engine.composition import install

    install()
    assert pipeline._PREPARE[outbox.enqueue] is outbox.prepare_enqueue
    assert pipeline._PREPARE[firing_events.record_firings] is firing_events.prepare_record


def test_prepare_runs_while_another_process_can_still_write(sqlite_engine: Engine, cfg: Config,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite: while the batch prepares its audit events and outbox rows, it holds no write lock;
    the write step then runs after the firings are inserted, with their ids."""
    book.build(sqlite_engine)
    path = sqlite_engine.url.database
    assert path
    other_wrote: list[bool] = []
    ids_seen: list[list[Any]] = []

    def hook(conn: Any, ctx: Any, rows: list[dict[str, Any]]) -> None:
        raise AssertionError("a hook with a prepare step is not called as a plain hook")

    def prepare(conn: Any, ctx: Any, rows: list[dict[str, Any]]) -> pipeline.Writer:
        assert all("id" not in r for r in rows)
        other = sqlite3.connect(path, timeout=0)  # no waiting: fails if the batch holds the write lock
        try:
            other.execute("CREATE TABLE IF NOT EXISTS probe (x INTEGER)")
            other.execute("INSERT INTO probe VALUES (1)")
            other.commit()
            other_wrote.append(True)
        finally:
            other.close()

        def write(c: Any) -> None:
            ids_seen.append([r["id"] for r in rows])
        return write

    monkeypatch.setattr(pipeline, "_RECORD_HOOKS", [*pipeline._RECORD_HOOKS])
    monkeypatch.setattr(pipeline, "_PREPARE", dict(pipeline._PREPARE))
    pipeline.register_record_hook(hook, prepare)
    s = pipeline.run(sqlite_engine, cfg, load_ruleset(cfg), book.AS_OF)
    assert other_wrote and s.firings > 0
    with sqlite_engine.connect() as c:
        stored = sorted(r[0] for r in c.execute(text("SELECT id FROM firing")))
        assert verify(c).ok
    assert sorted(i for batch in ids_seen for i in batch) == stored


def test_events_prepared_before_their_firing_ids_equal_events_appended_with_them(db: Engine) -> None:
    events = [Event("rule.fired", actor="engine", client_id=f"C{i}", firing_id=fid, as_of=date(2026, 11, 20), at=AT,
                    data={"facts": {"firing_id": -2, "note": ',"firing_id":-2,'}, "n": i})
              for i, fid in enumerate([7, 8, 9])]
    late = [Event(**{**e.__dict__, "firing_id": auditlog.LATE_ID}) for e in events]
    with db.begin() as c:
        auditlog.append(c, events)
    with db.begin() as c:
        p = auditlog.prepare(c, late)
        assert auditlog.write(c, p, [7, 8, 9]) == [4, 5, 6]
    with db.connect() as c:
        rows = list(c.execute(select(EVENT).order_by(EVENT.c.seq)))
        assert verify(c).ok
    for a, b in zip(rows[:3], rows[3:]):
        assert b.firing_id == a.firing_id
        assert b.body == a.body.replace(f'"seq":{a.seq}', f'"seq":{b.seq}')


def test_the_chain_hash_over_pre_encoded_parts_is_the_hash_of_the_stored_text(db: Engine) -> None:
    """`write` hashes the UTF-8 parts encoded before the lock; the result is chain_hash of the
    stored body, also with text outside ASCII (names, currency signs) on either side of the ids."""
    data = {"facts": {"name": "王小明 Zoë", "note": "¥1,000 → €"}, "text": "Olá, 陈"}
    events = [Event("rule.fired", actor="engine", client_id=f"C{i}", firing_id=fid, as_of=date(2026, 11, 20), at=AT,
                    data=data) for i, fid in enumerate([auditlog.LATE_ID, 12, None])]
    with db.begin() as c:
        p = auditlog.prepare(c, events)
        auditlog.write(c, p, [11, 0, 0])
    with db.connect() as c:
        rows = list(c.execute(select(EVENT).order_by(EVENT.c.seq)))
        assert verify(c).ok
        if db.dialect.name == "sqlite":  # bodies bound as UTF-8 bytes are stored as text, not as blobs
            assert {r[0] for r in c.execute(text("SELECT typeof(body) FROM audit_event"))} == {"text"}
    assert [r.firing_id for r in rows] == [11, 12, None]
    for r in rows:
        assert r.hash == auditlog.chain_hash(r.prev_hash, r.body)
        assert auditlog.body_of(r)["data"] == data


def test_a_late_firing_id_must_be_given(db: Engine) -> None:
    with db.begin() as c:
        p = auditlog.prepare(c, [Event("rule.fired", actor="engine", firing_id=auditlog.LATE_ID, at=AT)])
        with pytest.raises(ValueError, match="waits for its firing id"):
            auditlog.write(c, p)


def test_a_batch_is_recorded_in_transactions_of_record_chunk_clients(sqlite_engine: Engine, cfg: Config,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    book.build(sqlite_engine)
    monkeypatch.setattr(pipeline, "RECORD_CHUNK", 3)
    commits: list[int] = []
    thresholds: list[int] = []

    def hook(conn: Any, ctx: Any, rows: list[dict[str, Any]]) -> None:
        thresholds.append(gc.get_threshold()[0])

    monkeypatch.setattr(pipeline, "_RECORD_HOOKS", [*pipeline._RECORD_HOOKS, hook])
    before = gc.get_threshold()
    s = pipeline.run(sqlite_engine, cfg, load_ruleset(cfg), book.AS_OF, progress=commits.append)
    assert commits == [3, 1] and s.clients == 4  # one transaction per 3 clients of the one facts batch
    assert thresholds and all(t > before[0] for t in thresholds)  # the collector ran less often meanwhile
    assert gc.get_threshold() == before
    with sqlite_engine.connect() as c:
        assert verify(c).ok


@pytest.mark.postgres
def test_postgresql_compresses_snapshots_and_audit_bodies_with_lz4(pg_engine: Engine) -> None:
    with pg_engine.connect() as c:
        got = {(t, col): m for t, col, m in c.execute(text(
            "SELECT c.relname, a.attname, a.attcompression FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "WHERE (c.relname, a.attname) IN (('firing', 'facts'), ('audit_event', 'body'), ('audit_blob', 'body'))"))}
    assert got == {("firing", "facts"): "l", ("audit_event", "body"): "l", ("audit_blob", "body"): "l"}


def test_overlapping_evaluations_put_the_collector_threshold_back_once_both_end() -> None:
    before = gc.get_threshold()
    a, b = pipeline._fewer_collections(), pipeline._fewer_collections()
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert gc.get_threshold()[0] > before[0]  # b still runs
    b.__exit__(None, None, None)
    assert gc.get_threshold() == before
