"""The hash-chained audit log: events written by the nightly path, the append API,
tamper detection, append-only protection and concurrent appenders."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import DBAPIError

from engine import auditlog
from engine.auditlog import BLOB, EVENT, EVENT_NAMES, Event, append, verify
from engine.config import Config
from tests import book
from tests.audit_helpers import events, run_book, unprotected


def test_nightly_run_writes_fired_and_rendered_events_with_hashes(db: Engine, cfg: Config) -> None:
    rs, s = run_book(db, cfg)
    with db.connect() as c:
        fired = events(c, "rule.fired")
        rendered = events(c, "message.rendered")
        blobs = {r.sha256: r for r in c.execute(select(BLOB))}
        firings = {r.id: r for r in c.execute(text("SELECT id, rule_id, message FROM firing"))}
    assert len(fired) == len(firings) == 4 and len(rendered) == 4
    assert {e.firing_id for e in fired} == set(firings)
    for e in fired:
        rule = rs.get(e.rule_id)
        assert e.rule_hash == rule.content_hash and e.actor == "engine" and e.as_of == book.AS_OF
        assert e.template_hash == rs.renderer.template_hash(rule.spec.action.template)
        body = json.loads(e.body)
        assert body["data"]["facts"]["client_id"] == e.client_id and body["data"]["rule_source"] == e.rule_hash
        assert blobs[e.rule_hash].kind == "rule"  # rule text stored under its content hash
    for e in rendered:
        data = json.loads(e.body)["data"]
        assert data["text"] == firings[e.firing_id].message
        assert blobs[data["template_source"]].kind == "template"
        assert data["context"]["advisor"] == {"id": "A01", "name": "李明"}
    res = check(db)
    assert res.ok and res.events == 8 and res.blobs_checked == len(blobs)


class _BlockEnglish:
    name = "test_block_en"

    def prepare(self, ctx) -> None:  # type: ignore[no-untyped-def]
        pass

    def apply(self, ctx, decisions) -> None:  # type: ignore[no-untyped-def]
        for d in decisions:
            if d.live and d.match.facts["locale"] == "en":
                d.block(self.name, "suppressed", "TEST_EN", "no English today")


def test_suppression_is_recorded_with_reason_and_stage(db: Engine, cfg: Config, monkeypatch) -> None:
    from engine import policy

    monkeypatch.setattr(policy, "_STAGES", [])
    policy.register_stage(_BlockEnglish(), 900)
    run_book(db, cfg)
    with db.connect() as c:
        sup = events(c, "message.suppressed")
        rendered = events(c, "message.rendered", )
    assert len(sup) == 1 and len(rendered) == 3
    e = sup[0]
    assert e.client_id == "C003" and e.reason == "TEST_EN" and e.status == "suppressed"
    assert json.loads(e.body)["data"] == {"outcome": "suppressed", "stage": "test_block_en", "detail": "no English today"}


def test_every_event_name_can_be_appended_and_chains(db: Engine) -> None:
    with db.begin() as c:
        seqs = append(c, [Event(n, actor="u1", client_id="C001", data={"n": i}) for i, n in enumerate(EVENT_NAMES)])
    assert seqs == list(range(1, len(EVENT_NAMES) + 1))
    with db.connect() as c:
        rows = events(c)
        res = verify(c)
    assert [r.name for r in rows] == list(EVENT_NAMES)
    assert rows[0].prev_hash == auditlog.GENESIS and all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:]))
    assert res.ok and (res.head_seq, res.head_hash) == (rows[-1].seq, rows[-1].hash)


def test_append_rejects_unknown_names_naive_times_and_missing_actor(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as c:
        with pytest.raises(ValueError, match=r"unknown audit event name\(s\) \['rule.fird'\]; known: .*register_event_name"):
            append(c, [Event("rule.fird", actor="x")])
        with pytest.raises(ValueError, match="timezone-aware"):
            append(c, [Event("client.viewed", actor="x", at=datetime(2026, 1, 1))])
        with pytest.raises(ValueError, match="names its actor"):
            append(c, [Event("client.viewed", actor="")])
        with pytest.raises(TypeError, match="audit data holds a object"):
            append(c, [Event("client.viewed", actor="x", data={"bad": object()})])


def test_registered_event_names_are_accepted(sqlite_engine: Engine, monkeypatch) -> None:
    monkeypatch.setattr(auditlog, "EVENT_NAMES", dict(EVENT_NAMES))
    auditlog.register_event_name("consent.recorded", "a client's consent changed")
    with sqlite_engine.begin() as c:
        assert append(c, [Event("consent.recorded", actor="x")]) == [1]


# ------------------------------------------------------------------ tampering


def check(eng: Engine, heads: list[tuple[int, str]] | None = None) -> auditlog.VerifyResult:
    with eng.connect() as c:
        return verify(c, heads or ())


def _chain(eng: Engine, n: int = 6) -> list[int]:
    with eng.begin() as c:
        return append(c, [Event("client.viewed", actor=f"u{i}", client_id=f"C{i:03}", data={"i": i}) for i in range(n)])


def test_verify_catches_an_edited_body(db: Engine) -> None:
    _chain(db)
    with unprotected(db) as c:
        body = json.loads(c.execute(select(EVENT.c.body).where(EVENT.c.seq == 3)).scalar())
        body["actor"] = "someone-else"
        c.execute(EVENT.update().where(EVENT.c.seq == 3).values(body=auditlog.canonical(body)))
    res = check(db)
    assert not res.ok and res.broken.seq == 3 and res.broken.name == "client.viewed"
    assert "hash does not match its content (row edited)" in str(res.broken)
    assert res.events == 2


def test_verify_catches_an_edited_filter_column(db: Engine) -> None:
    _chain(db)
    with unprotected(db) as c:
        c.execute(EVENT.update().where(EVENT.c.seq == 4).values(client_id="C999"))
    res = check(db)
    assert str(res.broken) == "event #4 (client.viewed): column client_id is 'C999' but the hashed record says 'C003' (row edited)"


def test_verify_catches_an_edit_with_rehashed_row(db: Engine) -> None:
    """Re-hashing the edited row is not enough: the next row's link breaks."""
    _chain(db)
    with unprotected(db) as c:
        row = c.execute(select(EVENT).where(EVENT.c.seq == 2)).one()
        body = json.loads(row.body)
        body["data"] = {"i": 99}
        new = auditlog.canonical(body)
        c.execute(EVENT.update().where(EVENT.c.seq == 2).values(body=new, hash=auditlog.chain_hash(row.prev_hash, new)))
    res = check(db)
    assert res.broken.seq == 3 and "does not match the hash of event #2" in res.broken.problem


def test_verify_catches_a_deleted_row(db: Engine) -> None:
    _chain(db)
    with unprotected(db) as c:
        c.execute(EVENT.delete().where(EVENT.c.seq == 3))
    res = check(db)
    assert str(res.broken) == "event #4 (client.viewed): events #3 are missing before it (rows deleted)"


def test_verify_catches_reordered_rows(db: Engine) -> None:
    _chain(db)
    with unprotected(db) as c:
        c.execute(EVENT.update().where(EVENT.c.seq == 2).values(seq=1000))
        c.execute(EVENT.update().where(EVENT.c.seq == 3).values(seq=2))
        c.execute(EVENT.update().where(EVENT.c.seq == 1000).values(seq=3))
    res = check(db)
    assert res.broken.seq == 2 and "rows deleted or reordered" in res.broken.problem


def test_verify_catches_a_cut_tail_against_a_published_head(db: Engine) -> None:
    _chain(db)
    with db.connect() as c:
        published = auditlog.head(c)
    with unprotected(db) as c:
        c.execute(EVENT.delete().where(EVENT.c.seq >= 5))
    assert check(db).ok  # the chain alone cannot see a cut end ...
    res = check(db, [published])  # ... a published head can
    assert res.broken.seq == 6 and "rows deleted from the end" in res.broken.problem


def test_verify_catches_an_edited_template_source(db: Engine, cfg: Config) -> None:
    run_book(db, cfg)
    with unprotected(db) as c:
        c.execute(BLOB.update().where(BLOB.c.kind == "template").values(body="保本保收益"))
    res = check(db)
    assert not res.ok and "template source does not match its hash" in res.broken.problem


# ------------------------------------------------------------------ protection


def test_application_cannot_update_or_delete_audit_rows(db: Engine) -> None:
    _chain(db, 2)
    with db.begin() as c:
        auditlog.put_blobs(c, "template", ["{{ client.name }}"])
    for stmt in (EVENT.update().values(actor="x"), EVENT.delete(), BLOB.delete()):
        with pytest.raises(DBAPIError, match="append-only"):
            with db.begin() as c:
                c.execute(stmt)
    assert check(db).ok


@pytest.mark.postgres
def test_steward_app_role_cannot_update_delete_or_truncate(pg_engine: Engine) -> None:
    _chain(pg_engine, 2)
    for sql in ("UPDATE audit_event SET actor = 'x'", "DELETE FROM audit_event", "TRUNCATE audit_event"):
        with pytest.raises(DBAPIError, match="permission denied for table audit_event"):
            with pg_engine.begin() as c:
                c.execute(text("SET LOCAL ROLE steward_app"))
                c.execute(text(sql))
    with pg_engine.begin() as c:  # ... but it can read and append
        c.execute(text("SET LOCAL ROLE steward_app"))
        assert append(c, [Event("client.viewed", actor="app")]) == [3]
    with pytest.raises(DBAPIError, match="audit_event is append-only: TRUNCATE"):
        with pg_engine.begin() as c:  # the owner is stopped by the trigger
            c.execute(text("TRUNCATE audit_event"))
    assert check(pg_engine).ok


# ------------------------------------------------------------------ concurrency


def test_concurrent_appenders_build_one_chain(db: Engine) -> None:
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(15):
                with db.begin() as c:
                    append(c, [Event("client.viewed", actor=f"w{k}", data={"i": i, "j": j}) for j in range(3)])
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    res = check(db)
    assert res.ok and res.events == 4 * 15 * 3


def test_event_time_is_kept_exactly(sqlite_engine: Engine) -> None:
    at = datetime(2026, 11, 20, 9, 30, 1, 123456, tzinfo=timezone.utc)
    with sqlite_engine.begin() as c:
        append(c, [Event("task.outcome", actor="A01", at=at, status="reached")])
    with sqlite_engine.connect() as c:
        row = events(c)[0]
        assert json.loads(row.body)["at"] == "2026-11-20T09:30:01.123456+00:00"
        assert verify(c).ok
