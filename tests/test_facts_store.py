"""Issue 16: each client's facts snapshot stored once per night and named by hash, on SQLite and
PostgreSQL. Rows written before (facts inline) still read the same through engine.audit.facts_store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from engine.audit import facts_store
from engine.audit.log import BLOB, EVENT, canonical, sha256_text
from engine.config.base import Config
from engine.pipeline import run as pipeline
from engine.pipeline.recording import FIRING
from engine.servicing import calllist
from engine.supervision import explain, sampling
from tests import book
from tests.audit_helpers import run_book
from tests.databases import migrated_sqlite


def _inline_all(eng: Engine) -> None:
    """Turn every firing into a row as written before issue 16: the snapshot inline, no hash."""
    with eng.begin() as c:
        for fid, h in list(c.execute(select(FIRING.c.id, FIRING.c.facts_sha256))):
            body = c.execute(select(BLOB.c.body).where(BLOB.c.sha256 == h)).scalar_one()
            c.execute(FIRING.update().where(FIRING.c.id == fid).values(facts=json.loads(body), facts_sha256=None))


def test_a_night_stores_one_snapshot_per_client_and_the_rows_name_it(db: Engine, cfg: Config) -> None:
    _, s = run_book(db, cfg)
    with db.connect() as c:
        rows = list(c.execute(select(FIRING.c.id, FIRING.c.client_id, FIRING.c.facts, FIRING.c.facts_sha256)))
        blobs = {r.sha256: r.body for r in c.execute(select(BLOB).where(BLOB.c.kind == facts_store.KIND))}
        loaded = facts_store.load(c, rows)
    assert len(rows) == s.firings + sum(s.per_reason.values()) and all(r.facts is None for r in rows)
    assert len(blobs) == len({r.client_id for r in rows}) < len(rows)  # once per client, not per firing
    for r, facts in zip(rows, loaded):
        assert sha256_text(blobs[r.facts_sha256]) == r.facts_sha256 and facts["client_id"] == r.client_id
        assert canonical(facts) == blobs[r.facts_sha256]  # the text is the canonical JSON of the snapshot


def test_a_second_run_of_the_same_day_stores_no_second_copy(db: Engine, cfg: Config) -> None:
    rs, _ = run_book(db, cfg)
    with db.connect() as c:
        before = c.execute(select(func.count()).select_from(BLOB).where(BLOB.c.kind == facts_store.KIND)).scalar()
    with db.begin() as c:  # the same texts again (two shards, or the event engine, storing them at once)
        texts = {r.sha256: r.body for r in c.execute(select(BLOB).where(BLOB.c.kind == facts_store.KIND))}
        facts_store.put(c, texts)
    with db.connect() as c:
        assert c.execute(select(func.count()).select_from(BLOB).where(BLOB.c.kind == facts_store.KIND)).scalar() == before


def test_load_reads_old_inline_rows_and_events_like_new_ones_in_one_query_per_page(
        db: Engine, cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    run_book(db, cfg)
    with db.connect() as c:
        rows = list(c.execute(select(FIRING).order_by(FIRING.c.id)))
        bodies = [json.loads(b)["data"] for b in c.execute(select(EVENT.c.body).where(EVENT.c.name == "rule.fired")
                                                          .order_by(EVENT.c.firing_id)).scalars()]
        by_reference = facts_store.load(c, rows)
        assert facts_store.load(c, bodies) == by_reference  # rule.fired data names the same snapshots
        assert all("facts" not in b for b in bodies)
    _inline_all(db)
    monkeypatch.setattr(facts_store, "PAGE", 2)
    queries: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "audit_blob" in statement:
            queries.append(statement)
    with db.connect() as c:
        old = list(c.execute(select(FIRING).order_by(FIRING.c.id)))
        assert all(r.facts_sha256 is None and isinstance(r.facts, dict) for r in old)
        event.listen(db, "before_cursor_execute", count)
        try:
            assert facts_store.load(c, old) == by_reference and queries == []  # inline: no blob read at all
            old_events = [{"facts": f} for f in by_reference]  # rule.fired data as written before issue 16
            assert facts_store.load(c, old_events) == by_reference
            assert facts_store.load(c, bodies) == by_reference  # the blobs are still there
        finally:
            event.remove(db, "before_cursor_execute", count)
    distinct = len({b["facts_sha256"] for b in bodies})
    assert len(queries) == -(-distinct // 2)  # one IN query per page of distinct hashes, not one per row
    with db.connect() as c:  # a missing snapshot reads as empty (audit verify names it)
        assert facts_store.load(c, [{"facts_sha256": "0" * 64}, {}]) == [{}, {}]


def _views(eng: Engine, cfg: Config, rs: Any) -> dict[str, Any]:
    """What explain (`steward why`, the console's client page), the call list and the supervision
    sample read from the firings' snapshots."""
    with eng.connect() as c:
        clients = sorted({r[0] for r in c.execute(select(FIRING.c.client_id))})
        out: dict[str, Any] = {}
        for cid in clients:
            ex = explain.explain_client(c, cfg, rs, cid, book.AS_OF)
            out[f"why {cid}"] = (ex.facts, ex.facts_source)
        out["tasks"] = sorted((t.firing_id, json.dumps(dict(t.facts), sort_keys=True))
                              for t in calllist._open_tasks(c, "A01", book.AS_OF))
        rows = list(c.execute(select(FIRING).order_by(FIRING.c.id)))
        out["risk"] = [sampling.risk_of(r, cfg.audit.supervision, f) for r, f in zip(rows, facts_store.load(c, rows))]
    return out


def test_why_call_list_and_sampling_read_the_same_facts_from_a_reference_as_from_an_inline_row(
        db: Engine, cfg: Config) -> None:
    rs, _ = run_book(db, cfg)
    new = _views(db, cfg, rs)
    assert new["tasks"] and all(src.startswith("recorded by the evaluation") for _, src in
                                (v for k, v in new.items() if k.startswith("why ")))
    _inline_all(db)
    assert _views(db, cfg, rs) == new


def _results(eng: Engine) -> tuple[list[Any], list[Any]]:
    with eng.connect() as c:
        firings = [tuple(r) for r in c.execute(select(
            FIRING.c.rule_id, FIRING.c.client_id, FIRING.c.status, FIRING.c.reason, FIRING.c.subject, FIRING.c.message,
            FIRING.c.locale, FIRING.c.due_on, FIRING.c.policy).order_by(FIRING.c.rule_id, FIRING.c.client_id))]
        snapshots = [json.dumps(f, sort_keys=True) for f in facts_store.load(
            c, list(c.execute(select(FIRING).order_by(FIRING.c.rule_id, FIRING.c.client_id))))]
    return firings, snapshots


def test_results_are_those_of_the_inline_snapshot(db: Engine, cfg: Config, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The same night stored inline (as before issue 16) gives the same firings, statuses,
    messages and snapshots."""
    run_book(db, cfg)
    by_reference = _results(db)
    inline = migrated_sqlite(tmp_path / "inline.db")
    row = pipeline._row

    def without_hash(*args: Any, **kw: Any) -> dict[str, Any]:
        r = row(*args, **kw)
        del r["facts_sha256"]
        return r
    monkeypatch.setattr(pipeline, "_row", without_hash)
    try:
        run_book(inline, cfg)
        with inline.connect() as c:
            assert c.execute(select(func.count()).select_from(FIRING).where(FIRING.c.facts.is_(None))).scalar() == 0
            assert c.execute(select(func.count()).select_from(BLOB).where(BLOB.c.kind == facts_store.KIND)).scalar() == 0
        assert _results(inline) == by_reference and by_reference[0]
    finally:
        inline.dispose()


def test_the_migration_downgrade_puts_the_snapshots_back_inline_and_upgrade_reads_them_again(
        db: Engine, cfg: Config) -> None:
    """0023_i16s down: every row stored by reference gets its snapshot back in `firing.facts`
    before `facts_sha256` is dropped (nothing a supervisor reads is lost); up again: old rows read
    as inline rows."""
    from engine.db import migrate, upgrade

    run_book(db, cfg)
    with db.connect() as c:
        rows = list(c.execute(select(FIRING).order_by(FIRING.c.id)))
        expected = facts_store.load(c, rows)
    assert rows and all(r.facts is None for r in rows)

    migrate(db, "0022_lead", down=True)
    with db.connect() as c:
        back = [json.loads(f) if isinstance(f, str) else f
                for f in c.exec_driver_sql("SELECT facts FROM firing ORDER BY id").scalars()]
    assert back == expected
    upgrade(db)
    with db.connect() as c:
        again = list(c.execute(select(FIRING).order_by(FIRING.c.id)))
        assert all(r.facts_sha256 is None for r in again) and facts_store.load(c, again) == expected
