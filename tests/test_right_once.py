"""Issue 12, right message once (items 9, 11, 12), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from engine.compliance import suitability as suit
from engine.config.base import Config
from engine.language.loading import load_ruleset
from engine.models import Client
from engine.pipeline.recording import FIRING
from engine.pipeline.run import run
from tests import book
from tests.compliance_helpers import OPT_OUT, SIG, pack_config, rule_yaml, write_pack
from tests.dispatch_helpers import Gateway, Mailbox, add_client, with_dispatch

CLIENT = Client.__table__  # type: ignore[attr-defined]


@pytest.fixture
def offer_pack(tmp_path: Path, cfg: Config) -> Config:
    write_pack(tmp_path, {"fund_offer.yaml": rule_yaml(
        "fund_offer", when="days_since_open >= 0", extra="product: 稳健基金\nproduct_risk: R3\n").replace(
        "cooldown: 1d", "cooldown: 30d")},
        {"fund_offer/zh-CN.j2": f"{SIG}{{{{ client.name }}}}您好，稳健基金现已发售。投资有风险，不保本。{OPT_OUT}"})
    return pack_config(cfg, tmp_path)


def test_a_firing_blocked_by_a_gate_does_not_start_the_cooldown(db: Engine, offer_pack: Config,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.pipeline import policy

    # the suitability gate alone, so the verdicts here are its own (S02 has no assets: a segment stage would drop it)
    monkeypatch.setattr(policy, "_STAGES", [(o, s) for o, s in policy._STAGES if s.name == "suitability"])
    book.build(db)
    with db.begin() as c:
        c.execute(CLIENT.insert(), [book.client("S02", date(2020, 1, 1), risk_level="C2")])
    ruleset = load_ruleset(offer_pack)
    run(db, offer_pack, ruleset, book.AS_OF)
    with db.begin() as c:
        c.execute(update(CLIENT).where(CLIENT.c.id == "S02").values(risk_level="C4"))
    nxt = book.AS_OF + timedelta(days=1)
    s = run(db, offer_pack, ruleset, nxt)
    with db.connect() as c:
        rows = {r.as_of: r for r in c.execute(select(FIRING).where(FIRING.c.client_id == "S02"))}
    assert rows[book.AS_OF].status == "suppressed" and rows[book.AS_OF].reason == suit.BELOW
    assert nxt in rows and rows[nxt].status != "suppressed" and rows[nxt].message, (rows[nxt].reason, rows[nxt].policy)  # upgraded: offered the next day
    assert s.skipped_cooldown > 0  # clients that did get the offer yesterday stay in cooldown
    run(db, offer_pack, ruleset, nxt + timedelta(days=1))
    with db.connect() as c:  # and S02's own cooldown now runs from the day it was really offered
        assert len(list(c.execute(select(FIRING.c.id).where(FIRING.c.client_id == "S02")))) == 2


# ------------------------------------------------------------------ item 12

STARTER = """
import sys, time
from datetime import date
from engine.db import make_engine
from engine.pipeline import recording
eng = make_engine(sys.argv[1])
with eng.begin() as c:
    rid = recording.start_run(c, date(2026, 11, 19), "run", "v-killed")
print(rid, flush=True)
time.sleep(120)
"""


def test_a_killed_run_is_marked_failed_at_the_next_start_and_a_live_one_is_not(db: Engine, cfg: Config) -> None:
    import subprocess
    import sys

    from engine.pipeline.recording import RUN

    book.build(db)
    url = db.url.render_as_string(hide_password=False)
    procs = [subprocess.Popen([sys.executable, "-c", STARTER, url], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        killed, live = (int(p.stdout.readline()) for p in procs)  # type: ignore[union-attr]
        procs[0].kill()
        procs[0].wait(timeout=30)
        s = run(db, cfg, load_ruleset(cfg), book.AS_OF)
        with db.connect() as c:
            rows = {r.id: r for r in c.execute(select(RUN))}
        assert [(rid, day) for rid, day, _ in s.failed_runs] == [(killed, date(2026, 11, 19))]
        assert rows[killed].status == "failed" and "stopped before finishing" in (rows[killed].error or "")
        assert rows[live].status == "running"  # its process is alive: left alone
        assert rows[s.run_id].status == "finished"  # type: ignore[index]
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=30)
            p.stdout.close()  # type: ignore[union-attr]


# ------------------------------------------------------------------ item 9


def _queue(eng: Engine, n: int, channel_of: Callable[[int], str]) -> None:
    from engine.dispatch.outbox import OUTBOX, idempotency_key

    add_client(eng, "C1", phone="13800000001", email="c1@example.com")
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)  # long due: claimable by a pass at any later time
    rows = [{"idempotency_key": idempotency_key("r1", "h1", "C1", str(i)), "kind": "client", "firing_id": None,
             "rule_id": "r1", "rule_hash": "h1", "client_id": "C1", "rule_class": "service", "channel": channel_of(i),
             "locale": "zh-CN", "subject": f"第{i}号", "body": f"您好 {i}", "bypass_window": True, "outside_window": "hold",
             "state": "queued", "attempts": 0, "next_attempt_at": at, "trail": [], "created_at": at, "updated_at": at}
            for i in range(n)]
    with eng.begin() as c:
        c.execute(OUTBOX.insert(), rows)


class _Running:
    """A clock that starts at a fixed instant and runs with real elapsed time: leases must run out."""

    def __init__(self, start: datetime) -> None:
        self.start, self.t0 = start, time.monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.t0)


def _overlap(eng: Engine, cfg: Config, n: int, wait_for: Callable[[], bool]) -> list[Any]:
    """Dispatcher A starts; once `wait_for()` holds, B starts; both pass again until nothing is left."""
    from engine import clock
    from engine.dispatch.outbox import OUTBOX, dispatch_once

    with clock.using(_Running(datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc))):
        return _overlap_on(eng, cfg, n, wait_for, dispatch_once, OUTBOX)


def _overlap_on(eng: Engine, cfg: Config, n: int, wait_for: Callable[[], bool], dispatch_once: Any, OUTBOX: Any) -> list[Any]:  # noqa: N803

    summaries: list[Any] = []
    errors: list[BaseException] = []

    def loop(worker: str) -> None:
        try:
            end = time.monotonic() + 90
            while time.monotonic() < end:  # until every row is sent (bounded)
                s = dispatch_once(eng, cfg, worker=worker)
                summaries.append(s)
                with eng.connect() as c:
                    left = c.execute(select(OUTBOX.c.id).where(OUTBOX.c.state.in_(("queued", "sending"))).limit(1)).first()
                if left is None:
                    return
                if not s.claimed:
                    time.sleep(0.01)  # the other dispatcher holds the rest: poll again shortly
        except BaseException as e:  # noqa: BLE001 - reported by the test
            errors.append(e)

    a = threading.Thread(target=loop, args=("A",))
    a.start()
    deadline = time.monotonic() + 60
    while not wait_for() and time.monotonic() < deadline and a.is_alive():
        time.sleep(0.005)
    b = threading.Thread(target=loop, args=("B",))
    b.start()
    a.join(120)
    b.join(120)
    assert not errors, errors
    with eng.connect() as c:
        states = [r[0] for r in c.execute(select(OUTBOX.c.state))]
    assert states.count("sent") == n, {s: states.count(s) for s in set(states)}
    return summaries


def test_overlapping_dispatchers_with_a_short_lease_post_each_message_once(db: Engine, cfg: Config) -> None:
    n = 40
    _queue(db, n, lambda i: "sms")
    with Gateway() as gw:
        gw.delay = 0.03  # a slow provider: A's lease (0.3 s) runs out while it still holds claimed rows
        c = with_dispatch(cfg, gateway={"url": gw.url}, retry={"lease_seconds": 0.3, "batch_size": n})
        sums = _overlap(db, c, n, lambda: gw.requests >= 5)
    assert gw.requests == len(gw.receipts) == n  # no key POSTed twice
    assert sum(s.lost for s in sums) > 0  # the overlap really happened: A skipped rows B took over


def test_a_thousand_messages_over_http_and_smtp_with_overlap_have_no_duplicates(sqlite_engine: Engine, cfg: Config) -> None:
    n = 1000
    _queue(sqlite_engine, n, lambda i: "email" if i % 2 else "sms")
    with Gateway() as gw, Mailbox() as box:
        gw.delay = 0.002
        c = with_dispatch(cfg, gateway={"url": gw.url}, email={"port": box.port},
                          retry={"lease_seconds": 0.5, "batch_size": 200})
        sums = _overlap(sqlite_engine, c, n, lambda: gw.requests + len(box.messages) >= 50)
        ids = [m["Message-ID"] for m in box.messages]
    assert gw.requests == len(gw.receipts) == n // 2
    assert len(ids) == len(set(ids)) == n // 2
    assert sum(s.lost for s in sums) > 0


# ------------------------------------------------------------------ item 10


def test_event_rules_pass_the_aml_gate_like_snapshot_rules(db: Engine, cfg: Config) -> None:
    from engine.compliance import aml
    from engine.facts.tables import AmlReview
    from tests.events_helpers import cash, firings, service

    book.build(db)
    with db.begin() as c:
        c.execute(AmlReview.__table__.insert(), [{"id": "AML1", "client_id": "C002", "opened_on": date(2026, 11, 1)}])  # type: ignore[attr-defined]
    svc = service(db, cfg)
    svc.post([cash("w1", "2026-11-16 10:01", "withdrawal", 200000.0, client="C002"),
              cash("x1", "2026-11-19 10:05", "transfer_out", 1000.0, client="C002"),
              cash("w2", "2026-11-16 10:01", "withdrawal", 200000.0, client="C003"),
              cash("x2", "2026-11-19 10:05", "transfer_out", 1000.0, client="C003")])
    svc.start()
    got = {f.client_id: f for f in firings(db, "withdrawal_then_transfer_out")}
    assert got["C002"].status == "suppressed" and got["C002"].reason == aml.OPEN and got["C002"].message is None
    assert any(t["stage"] == "aml" and t["outcome"] == "suppressed" for t in got["C002"].policy)
    assert {"stage": "aml", "outcome": "pass", "reason": None, "detail": "no AML review open"} in got["C003"].policy


def test_evaluate_applies_the_offline_gates_and_names_the_skipped_ones(offer_pack: Config, tmp_path: Path) -> None:
    import json

    from tests.test_cli import steward

    facts = tmp_path / "f.jsonl"
    base = {"days_since_open": 400, "risk_assessed_days": 30, "lowest_category": False, "age": 40, "name": "李娜"}
    facts.write_text("".join(json.dumps({**base, "client_id": cid, "risk_level": lvl}) + "\n"
                             for cid, lvl in (("U1", "C2"), ("S1", "C4"))), encoding="utf-8")
    r = steward("evaluate", "--facts", str(facts), "--as-of", "2026-11-20", "--rules", str(tmp_path / "rules"),
                "--templates", str(tmp_path / "templates"))
    assert r.returncode == 0, r.stderr
    lines = {x["client_id"]: x for x in map(json.loads, r.stdout.splitlines())}
    assert lines["U1"]["blocked"]["reason"] == suit.BELOW and "message" not in lines["U1"]
    assert "稳健基金" in lines["S1"]["message"]
    err = " ".join(r.stderr.split())
    assert "Gates applied: suitability, aml (1 firing(s) blocked)" in err
    assert "Skipped, they need the database: segment_playbook, consent, do_not_call" in err
