"""durable-rules' limits, each gone past through the event engine, with nothing lost."""

from __future__ import annotations

import shutil
import threading
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from engine.config.base import Config
from engine.events.durable import WrongThreadError, get_engine
from engine.language.event_rules import load_event_rules
from engine.events.service import EventService
from engine.events.tables import StoredEvent
from engine.models import Advisor, Client
from tests import book
from tests.events_helpers import approve, deadlines, firings, margin, service, statuses, trade

ROOT = Path(__file__).resolve().parent.parent


def _clients(eng: Engine, n: int) -> list[str]:
    ids = [f"K{i:05d}" for i in range(n)]
    with eng.begin() as c:
        c.execute(Advisor.__table__.insert(), [{"id": "A01", "name": "李明", "email": None, "supervisor_id": None, "daily_capacity": 20}])  # type: ignore[attr-defined]
        c.execute(Client.__table__.insert(), [  # type: ignore[attr-defined]
            book.client(cid, date(2020, 1, 1)) for cid in ids])
    return ids


def test_5000_clients_active_in_one_day_lose_nothing(sqlite_engine: Engine, cfg: Config) -> None:
    ids = _clients(sqlite_engine, 5000)
    s = service(sqlite_engine, cfg)
    s.start()
    # every client reports a ratio: every 50th under the close-out line (fires), every 10th under the warning line (deadline)
    ratios = {cid: 1.2 if i % 50 == 0 else 1.45 if i % 10 == 0 else 1.8 for i, cid in enumerate(ids)}
    s.post([margin(f"m-{cid}", "2026-11-20 10:00", r, client=cid) for cid, r in ratios.items()])
    while s.drain():
        pass
    assert s.counters.processed == 5000 and s.counters.failed == 0
    assert set(statuses(sqlite_engine).values()) == {"processed"}
    assert len(firings(sqlite_engine, "margin_closeout_event")) == 100
    assert len(deadlines(sqlite_engine)) == 500  # 1.2 and 1.45 are both under 150%
    assert get_engine().live_sessions == 0  # one short session per event: the bound is never approached


def test_only_the_owner_thread_processes_and_other_threads_lose_nothing(db: Engine, cfg: Config) -> None:
    book.build(db)
    s = service(db, cfg)
    s.start()  # this thread owns the engine from now on
    errors: list[BaseException] = []

    def intruder() -> None:
        s.post([trade("t1", "2026-11-20 10:01", price=1.0, market=100.0)])  # posting from any thread is fine
        try:
            s.drain()
        except WrongThreadError as e:
            errors.append(e)

    th = threading.Thread(target=intruder, name="intruder")
    th.start()
    th.join()
    assert errors and "owned by thread" in str(errors[0])
    assert statuses(db) == {"t1": "stored"}
    assert s.drain() == 1 and len(firings(db)) == 1


def test_a_new_rule_version_takes_effect_in_a_fresh_engine_only(db: Engine, cfg: Config, tmp_path: Path) -> None:
    book.build(db)
    rules = tmp_path / "events"
    shutil.copytree(ROOT / "rules" / "events", rules)
    c = cfg.model_copy(update={"events": cfg.events.model_copy(update={"rules_dir": str(rules)})})
    approve(db, c)
    old = EventService(db, c)
    old.start()
    f = rules / "margin_closeout_event.yaml"
    f.write_text(f.read_text(encoding="utf-8").replace("< 130%", "< 140%"), encoding="utf-8")
    t = rules / "tests" / "margin_closeout_event.yaml"  # the author moves the rule's test with it (approval runs it)
    t.write_text(t.read_text(encoding="utf-8").replace("maintenance_ratio: 1.3}", "maintenance_ratio: 1.4}"), encoding="utf-8")
    approve(db, c)  # the edit is approved: it still waits for a fresh engine
    old.post([margin("m1", "2026-11-20 10:00", 1.35)])
    old.drain()
    assert firings(db, "margin_closeout_event") == []  # the running engine keeps the version it started with
    new = EventService(db, c)
    assert new.rules.version != old.rules.version
    new.start()
    new.post([margin("m2", "2026-11-20 10:05", 1.35)])
    new.drain()
    assert len(firings(db, "margin_closeout_event")) == 1
    t = StoredEvent.__table__  # type: ignore[attr-defined]
    with db.connect() as conn:
        versions = {r[0]: r[1] for r in conn.execute(select(t.c.event_id, t.c.rules_version))}
    assert versions == {"m1": old.rules.version, "m2": new.rules.version}


def test_rules_load_without_durable_rules_regex_and_reject_python_313(cfg: Config) -> None:
    # Conditions use engine.language.expr (no regex operator): durable's %-escaped regexes are never generated.
    rs = load_event_rules(cfg)
    assert all("matches" not in (r.rule.spec.when or "") for r in rs.rules)
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'requires-python = ">=3.11,<3.13"' in text  # durable-rules 2.0.28 does not build on 3.13


@pytest.mark.parametrize("n", [300])
def test_more_clients_than_the_live_session_bound_in_one_burst(sqlite_engine: Engine, cfg: Config, n: int) -> None:
    from engine.events.durable import MAX_LIVE_SESSIONS

    ids = _clients(sqlite_engine, n)
    assert n > MAX_LIVE_SESSIONS
    s = service(sqlite_engine, cfg)
    s.start()
    s.post([margin(f"m-{cid}", "2026-11-20 10:00", 1.45, client=cid) for cid in ids])
    assert s.drain() == n and s.counters.failed == 0
    assert len(deadlines(sqlite_engine)) == n and get_engine().live_sessions == 0
