"""The hash-chained audit log: events written by the nightly path, the append API,
tamper detection, append-only protection and concurrent appenders."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from engine.audit.log import BLOB, EVENT, EVENT_NAMES, Event, append, verify
from engine.config.base import Config
from engine import clock
from engine.audit import firing_events
from engine.audit import log as auditlog
from engine.pipeline.recording import FIRING
from tests import book
from tests.audit_helpers import events, run_book, unprotected


def test_nightly_run_writes_one_event_per_firing_with_its_words_and_hashes(db: Engine, cfg: Config) -> None:
    rs, s = run_book(db, cfg)
    with db.connect() as c:
        fired = events(c, "rule.fired")
        blobs = {r.sha256: r for r in c.execute(select(BLOB))}
        firings = {r.id: r for r in c.execute(text("SELECT id, client_id, rule_id, message, facts, facts_sha256 FROM firing"))}
        total = c.execute(select(func.count()).select_from(auditlog.EVENT)).scalar()
    rendered = [e for e in fired if json.loads(e.body)["data"]["message"] is not None]
    assert len(fired) == len(firings) == total >= 4 and len(rendered) == sum(f.message is not None for f in firings.values())
    assert {e.firing_id for e in fired} == set(firings)
    for e in fired:
        rule = rs.get(e.rule_id)
        assert e.rule_hash == rule.content_hash and e.actor == "engine" and e.as_of == book.AS_OF
        assert e.template_hash == rs.renderer.template_hash(rule.spec.action.template)
        body = json.loads(e.body)
        assert body["data"]["rule_source"] == e.rule_hash and "facts" not in body["data"]
        assert blobs[e.rule_hash].kind == "rule"  # rule text stored under its content hash
        # the facts snapshot by reference: the row and the event name the same stored text
        f = firings[e.firing_id]
        assert f.facts is None and body["data"]["facts_sha256"] == f.facts_sha256
        snapshot = blobs[f.facts_sha256]
        assert snapshot.kind == "facts" and auditlog.sha256_text(snapshot.body) == f.facts_sha256
        assert json.loads(snapshot.body)["client_id"] == e.client_id
        assert body["data"]["suppressed"] is None
    for e in rendered:
        data = json.loads(e.body)["data"]["message"]
        assert data["text"] == firings[e.firing_id].message
        assert blobs[data["template_source"]].kind == "template"
        assert data["context"]["advisor"] == {"id": "A01", "name": "李明"}
    # one snapshot per client with firings, however many rules fired for it
    assert sorted(h for h, b in blobs.items() if b.kind == "facts") == sorted({f.facts_sha256 for f in firings.values()})
    assert len({f.facts_sha256 for f in firings.values()}) == len({f.client_id for f in firings.values()}) < len(firings)
    res = check(db)
    assert res.ok and res.events == len(fired) and res.blobs_checked == len(blobs)


def test_message_of_reads_one_event_per_firing_and_older_logs() -> None:
    words = {"template": "t", "text": "hello"}
    assert firing_events.message_of({"name": "rule.fired", "data": {"message": words, "suppressed": None}}) == words
    assert firing_events.message_of({"name": "message.rendered", "data": words}) == words  # written before one event per firing
    assert firing_events.message_of({"name": "rule.fired", "data": {"message": None}}) is None
    assert firing_events.message_of({"name": "send.attempted", "data": {"text": "x"}}) is None


class _BlockEnglish:
    name = "test_block_en"

    def prepare(self, ctx) -> None:  # type: ignore[no-untyped-def]
        pass

    def apply(self, ctx, decisions) -> None:  # type: ignore[no-untyped-def]
        for d in decisions:
            if d.live and d.match.facts["locale"] == "en":
                d.block(self.name, "suppressed", "TEST_EN", "no English today")


def test_suppression_is_recorded_with_reason_and_stage(db: Engine, cfg: Config, monkeypatch) -> None:
    from engine.pipeline import policy

    monkeypatch.setattr(policy, "_STAGES", [])
    policy.register_stage(_BlockEnglish(), 900)
    run_book(db, cfg)
    with db.connect() as c:
        sup = [e for e in events(c, "rule.fired") if json.loads(e.body)["data"]["suppressed"] is not None]
        en = c.execute(text("SELECT count(*) FROM firing WHERE client_id = 'C003'")).scalar()
    assert len(sup) == en >= 1 and {e.client_id for e in sup} == {"C003"}
    e = next(e for e in sup if e.rule_id == "concentrated_position")
    assert e.client_id == "C003" and e.reason == "TEST_EN" and e.status == "suppressed"
    data = json.loads(e.body)["data"]
    assert data["suppressed"] == {"outcome": "suppressed", "stage": "test_block_en", "detail": "no English today"}
    assert data["message"] is None


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


def test_verify_catches_an_edited_facts_snapshot_and_names_its_firing_and_event(db: Engine, cfg: Config) -> None:
    run_book(db, cfg)
    with db.connect() as c:
        f = c.execute(select(FIRING.c.id, FIRING.c.facts_sha256).order_by(FIRING.c.id).limit(1)).one()
        seq = c.execute(select(EVENT.c.seq).where(EVENT.c.firing_id == f.id, EVENT.c.name == "rule.fired")).scalar_one()
        body = c.execute(select(BLOB.c.body).where(BLOB.c.sha256 == f.facts_sha256)).scalar_one()
    with unprotected(db) as c:  # one fact of the snapshot changed, its key kept
        c.execute(BLOB.update().where(BLOB.c.sha256 == f.facts_sha256).values(body=body.replace('"client_id"', '"client_id" ', 1)))
    res = check(db)
    assert not res.ok and res.broken.seq == seq and res.broken.name == "rule.fired"
    assert f"facts snapshot audit_blob {f.facts_sha256[:12]}… (named by firing(s) #{f.id}" in res.broken.problem
    assert "does not match its hash (row edited)" in res.broken.problem


def test_cross_check_catches_a_deleted_facts_snapshot_and_a_firing_pointed_elsewhere(db: Engine, cfg: Config) -> None:
    from engine.audit.crosscheck import cross_check

    run_book(db, cfg)
    with db.connect() as c:
        rows = list(c.execute(select(FIRING.c.id, FIRING.c.client_id, FIRING.c.facts_sha256).order_by(FIRING.c.id)))
        seq = c.execute(select(EVENT.c.seq).where(EVENT.c.firing_id == rows[0].id, EVENT.c.name == "rule.fired")).scalar_one()
        assert cross_check(c) == []
    other = next(r for r in rows if r.client_id != rows[0].client_id)
    with unprotected(db) as c:
        c.execute(BLOB.delete().where(BLOB.c.sha256 == rows[0].facts_sha256))
        elsewhere = next(r.facts_sha256 for r in rows if r.facts_sha256 != other.facts_sha256)
        c.execute(FIRING.update().where(FIRING.c.id == other.id).values(facts_sha256=elsewhere))
    with db.connect() as c:
        problems = cross_check(c)
    assert any(p.startswith(f"firing #{other.id} names facts snapshot") and "(firing row edited)" in p for p in problems)
    assert (f"facts snapshot audit_blob {rows[0].facts_sha256[:12]}… named by rule.fired event #{seq} (firing #{rows[0].id}) "
            "is missing (deleted)") in problems


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


# ------------------------------------------------------------------ list, show, export


def test_list_filters_by_every_key(db: Engine, cfg: Config, monkeypatch) -> None:
    from engine.supervision import browse as audit
    from engine.pipeline import policy

    monkeypatch.setattr(policy, "_STAGES", [])
    policy.register_stage(_BlockEnglish(), 900)
    rs, _ = run_book(db, cfg)
    with db.begin() as c:
        append(c, [Event("send.attempted", actor="dispatch", client_id="C002", advisor_id="A01", channel="sms",
                         status="sent", rule_id="dormant_activation", firing_id=2)])

    def ids(**kw):  # type: ignore[no-untyped-def]
        with db.connect() as c:
            return {(r.name, r.client_id) for r in audit.list_events(c, audit.EventFilter(**kw), cfg.tz, None)}

    assert ids(rule="dormant_activation", name="rule.fired") == {("rule.fired", "C002")}
    assert ids(rule_version=rs.get("concentrated_position").content_hash[:8], name="rule.fired") == {
        ("rule.fired", "C002"), ("rule.fired", "C003")}
    assert ids(reason="TEST_EN") == {("rule.fired", "C003")}
    with db.connect() as c:
        total = c.execute(select(func.count()).select_from(EVENT)).scalar()
    assert ids(status="sent") == {("send.attempted", "C002")}
    assert ids(client="C001", rule_class="service", channel="phone", name="rule.fired") == {("rule.fired", "C001")}
    assert ids(segment="maintenance", status="suppressed") == {("rule.fired", "C003")}
    assert ids(segment="dead") == set()
    assert ids(advisor="nobody") == set()
    today = clock.now().astimezone(cfg.tz).date()  # events are stamped by the test's clock
    with db.connect() as c:
        # firings by their evaluation day (the book's), other events by time (today)
        in_range = audit.list_events(c, audit.EventFilter(date_from=min(book.AS_OF, today - timedelta(days=1)),
                                                          date_to=today + timedelta(days=1)), cfg.tz, None)
    assert len(in_range) == total
    assert ids(date_to=book.date(2020, 1, 1)) == set()


def test_filter_errors_name_the_option() -> None:
    from engine.supervision import browse as audit

    with pytest.raises(ValueError, match="unknown event name 'rule.fird' \\(did you mean 'rule.fired'\\?\\)"):
        audit.EventFilter(name="rule.fird")
    with pytest.raises(ValueError, match="is after"):
        audit.EventFilter(date_from=book.date(2026, 2, 1), date_to=book.date(2026, 1, 1))


def test_show_gives_chain_position(sqlite_engine: Engine) -> None:
    from engine.supervision import browse as audit

    _chain(sqlite_engine, 3)
    with sqlite_engine.connect() as c:
        row, pos = audit.get_event(c, 2)
        assert (pos.seq, pos.total, pos.link_ok) == (2, 3, True) and row.name == "client.viewed"
        assert audit.get_event(c, 9) is None


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_reproduces_every_sent_message_byte_for_byte(sqlite_engine: Engine, cfg: Config, tmp_path, fmt) -> None:
    from engine.supervision import browse as audit

    run_book(sqlite_engine, cfg)
    out = tmp_path / "export"
    with sqlite_engine.begin() as c:
        m = audit.export(c, out, fmt, audit.EventFilter(), cfg.tz, "auditor1")
    with sqlite_engine.connect() as c:
        head = auditlog.head(c)
        messages = {r.id: r.message for r in c.execute(text("SELECT id, message FROM firing WHERE message IS NOT NULL"))}
        rules = c.execute(text("SELECT count(DISTINCT rule_id) FROM firing")).scalar()
    assert (m["chain_head"]["seq"], m["chain_head"]["hash"]) == head and m["chain_verified"]
    assert m["events"] == head[0]  # every event, the export's own client.exported included
    res = audit.check_export(out)
    assert res.problems == [] and res.reproduced == len(messages) >= 4
    # the export alone carries the words: compare with what the firing table holds
    _, rows, sources = audit.read_export(out)
    bodies = [json.loads(r["body"]) for r in rows]
    assert {b["firing_id"]: b["data"]["message"]["text"] for b in bodies
            if b["name"] == "rule.fired" and b["data"]["message"]} == messages
    assert len(sources) >= 2 * rules  # each fired rule's file and its template file(s), per locale used


def test_export_check_catches_changed_words(sqlite_engine: Engine, cfg: Config, tmp_path) -> None:
    from engine.supervision import browse as audit

    run_book(sqlite_engine, cfg)
    with sqlite_engine.begin() as c:
        audit.export(c, tmp_path / "export", "jsonl", audit.EventFilter(), cfg.tz, "auditor1")
    _, rows, sources = audit.read_export(tmp_path / "export")
    fired = {json.loads(r["body"])["firing_id"]: json.loads(r["body"]) for r in rows if r["name"] == "rule.fired"}
    fid, body = next((k, b) for k, b in fired.items() if b["data"]["message"])
    rendered = {"data": body["data"]["message"]}
    src = sources[rendered["data"]["template_source"]]
    facts = json.loads(sources[body["data"]["facts_sha256"]])  # the snapshot travels in sources.jsonl too
    assert audit.reproduce(fired[fid], rendered, src, facts)[1] == rendered["data"]["text"]
    rendered["data"]["text"] += " 保本"
    assert audit.reproduce(fired[fid], rendered, src, facts)[1] != rendered["data"]["text"]
    path = tmp_path / "export" / "events.jsonl"
    path.write_text(path.read_text(encoding="utf-8").replace("客户C001", "客户C00X"), encoding="utf-8")
    problems = audit.check_export(tmp_path / "export").problems
    assert "events.jsonl: sha256 differs from the manifest" in problems
    assert any("hash does not match its body" in p for p in problems)


def test_audit_commands(sqlite_engine: Engine, cfg: Config, tmp_path) -> None:
    from tests.test_cli import steward

    run_book(sqlite_engine, cfg)
    url = str(sqlite_engine.url)
    r = steward("--database", url, "audit", "list", "--event", "rule.fired", "--client", "C003")
    assert r.returncode == 0 and "C003" in r.stdout and "C001" not in r.stdout
    r = steward("--database", url, "audit", "list", "--event", "rule.fird")
    assert r.returncode == 2 and "unknown event name 'rule.fird' (did you mean 'rule.fired'?)" in " ".join(r.stderr.split())
    with sqlite_engine.connect() as c:
        n = auditlog.head(c)[0]
        messages = c.execute(text("SELECT count(*) FROM firing WHERE message IS NOT NULL")).scalar()
    r = steward("--database", url, "audit", "show", "2")
    assert r.returncode == 0 and f"position 2 of {n}; link OK" in r.stdout and "rule.fired" in r.stdout
    r = steward("--database", url, "audit", "verify")
    assert r.returncode == 0 and f"audit chain OK: {n + 1} events" in r.stdout  # show logged a client.viewed
    r = steward("--database", url, "audit", "export", "--out", str(tmp_path / "x"), "--format", "csv")
    assert r.returncode == 0 and "events written" in r.stdout
    r = steward("--database", url, "audit", "check-export", str(tmp_path / "x"))
    assert r.returncode == 0 and f"{messages} messages rendered again identically" in r.stdout
    r = steward("--database", url, "audit", "export", "--out", str(tmp_path / "y"), "--format", "xml")
    assert r.returncode == 2 and "--format: unknown format 'xml'" in r.stderr
    with unprotected(sqlite_engine) as c:
        c.execute(EVENT.delete().where(EVENT.c.seq == 5))
    r = steward("--database", url, "audit", "verify")
    assert r.returncode == 1 and "event #6" in r.stderr and "rows deleted" in r.stderr
