"""Event store, intake, replay, idempotency, facts updates and single-event rules (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from engine.audit import log as auditlog
from engine.audit.log import AuditEvent
from engine.config.base import Config
from engine.errors import SourceErrors
from engine.events import store
from engine.language.event_schema import parse_jsonl
from engine.events.service import EventService
from engine.facts.base import facts_for
from engine.models import Trade
from tests import book
from tests.events_helpers import approve, at, cash, ev, firings, margin, service, statuses, trade


@pytest.fixture
def booked(db: Engine) -> Engine:
    book.build(db)
    return db


def test_a_second_post_of_an_id_stores_nothing_and_flags_changed_content(booked: Engine, cfg: Config) -> None:
    s = service(booked, cfg)
    first = s.post([trade("t1", "2026-11-20 10:01")])
    again = s.post([trade("t1", "2026-11-20 10:01"), trade("t1", "2026-11-20 10:01", price=11.0)])
    assert len(first.new) == 1 and again.new == [] and again.duplicates == 2
    assert again.conflicts == ["t1"]
    assert list(statuses(booked)) == ["t1"]


def test_jsonl_errors_name_line_key_and_value_and_store_nothing(tmp_path: Path) -> None:
    text = "\n".join([
        '{"id": "a", "type": "trade", "client_id": "C1", "at": "2026-11-20T10:01:00+08:00", "symbol": "1", "side": "sel", "quantity": 1, "price": 1}',
        "not json",
        '{"id": "b", "type": "login", "client_id": "C1", "at": "2026-11-20T10:01:00", "channel": "app"}',
        '{"id": "c", "type": "deposit"}',
    ])
    with pytest.raises(SourceErrors) as e:
        parse_jsonl(text, "day.jsonl")
    lines = [str(p) for p in e.value.problems]
    assert "day.jsonl:1: side: Input should be 'buy' or 'sell' (got 'sel')" in lines
    assert any(x.startswith("day.jsonl:2: not JSON") for x in lines)
    assert "day.jsonl:3: at: add a UTC offset, e.g. 2026-11-20T10:01:00+08:00 (got '2026-11-20T10:01:00')" in lines
    assert any(x.startswith("day.jsonl:4: type: unknown event type 'deposit'") for x in lines)


def test_single_event_rule_fires_through_policy_rendering_recording_and_audit(booked: Engine, cfg: Config) -> None:
    s = service(booked, cfg)
    s.start()
    s.post([trade("t1", "2026-11-20 10:01", price=1.0, market=100.0), trade("t2", "2026-11-20 10:02")])
    assert s.drain() == 2
    rows = firings(booked)
    assert [r.rule_id for r in rows] == ["trade_off_market_alert"]
    f = rows[0]
    assert f.as_of == date(2026, 11, 20) and f.status == "open" and f.advisor_id == "A01"
    assert "99%" in f.message and "10:01" in f.message  # C003 reads English
    assert f.facts["event_id"] == "t1" and f.facts["client_id"] == "C003"
    # the event engine records through the nightly path: the snapshot by reference, stored once
    assert f.facts_sha256 == auditlog.sha256_text(auditlog.canonical(f.facts))
    assert f.policy and all(step["outcome"] == "pass" for step in f.policy)
    t = AuditEvent.__table__  # type: ignore[attr-defined]
    with booked.connect() as c:
        names = [r[0] for r in c.execute(select(t.c.name).where(t.c.firing_id == f.id))]
    assert "rule.fired" in names


def test_same_rule_same_client_same_day_fires_once(booked: Engine, cfg: Config) -> None:
    s = service(booked, cfg)
    s.post([margin("m1", "2026-11-20 10:01", 1.2), margin("m2", "2026-11-20 10:30", 1.1)])
    s.start()
    assert len(firings(booked, "margin_closeout_event")) == 1
    assert statuses(booked) == {"m1": "processed", "m2": "processed"}


def test_restart_replays_stored_events_and_nothing_fires_twice(booked: Engine, cfg: Config) -> None:
    crashed = service(booked, cfg)
    crashed.post([trade("t1", "2026-11-20 10:01", price=1.0, market=100.0)])  # stored, never processed
    assert statuses(booked) == {"t1": "stored"}
    restarted = service(booked, cfg)
    assert restarted.start() == 1
    assert statuses(booked) == {"t1": "processed"}
    again = service(booked, cfg)
    assert again.start() == 0
    crashed.drain()  # the first process's queue still names t1: claimed already, skipped
    assert len(firings(booked)) == 1


def test_a_failing_event_rolls_back_its_facts_and_is_kept_for_retry(booked: Engine, cfg: Config) -> None:
    s = service(booked, cfg)
    s.post([ev("o1", "task_outcome", "2026-11-20 11:00", "C001", outcome="reached", task_id=999)])
    s.start()
    assert statuses(booked) == {"o1": "failed"}
    assert s.counters.failed == 1 and "no task with id 999" in s.counters.errors[0]
    with booked.connect() as c:
        assert facts_for(c, cfg, book.AS_OF, "C001")["callback_done"] is False  # type: ignore[index]
        assert store.retry_failed(c) == 1
        c.commit()
    assert statuses(booked) == {"o1": "stored"}


def test_events_update_the_facts_snapshot_rules_see(booked: Engine, cfg: Config) -> None:
    s = service(booked, cfg)
    s.post([ev("o1", "task_outcome", "2026-11-20 11:00", "C001", outcome="reached", by_user="u9"),
            trade("t9", "2026-11-20 13:00", client="C002"),
            cash("d1", "2026-11-20 13:05", "deposit", 7000.0, client="C002")])
    s.start()
    with booked.connect() as c:
        f1 = facts_for(c, cfg, book.AS_OF, "C001")
        f2 = facts_for(c, cfg, book.AS_OF, "C002")
        trades = list(c.execute(select(Trade.__table__).where(Trade.__table__.c.id == "t9")))  # type: ignore[attr-defined]
    assert f1 is not None and f1["callback_done"] is True
    assert f2 is not None and f2["days_since_last_trade"] == 0 and f2["net_flow_20d"] == 7000.0
    assert trades[0].amount == 1000.0 and trades[0].trade_date == book.AS_OF


def test_python_api_posts_from_jsonl_and_unknown_clients_are_noted(booked: Engine, cfg: Config) -> None:
    approve(booked, cfg)
    s = EventService(booked, cfg)
    line = f'{{"id": "x1", "type": "login", "client_id": "NOPE", "at": "{at("2026-11-20 09:00")}", "channel": "app"}}'
    line2 = f'{{"id": "x2", "type": "margin_ratio", "client_id": "NOPE", "at": "{at("2026-11-20 09:00")}", "maintenance_ratio": 1.0}}'
    assert len(s.post_jsonl(line + "\n\n" + line2 + "\n", "api").new) == 2
    s.start()
    assert statuses(booked) == {"x1": "processed", "x2": "processed"}
    assert firings(booked) == []
