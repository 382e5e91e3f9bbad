"""Supervisory review sample: rates by risk, never the sender, decisions and overdue reviews."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from engine.config.base import SupervisionConfig
from engine import clock
from engine.supervision import sampling as supervision
from engine.errors import StewardError
from engine.models import Advisor
from engine.pipeline.recording import FIRING
from engine.supervision.sampling import REVIEW, draw
from tests.audit_helpers import events

DAY = date(2026, 11, 20)
ADV = Advisor.__table__  # type: ignore[attr-defined]


def _firing(i: int, advisor: str, rule_class: str = "marketing", action: str = "message", status: str = "sent",
            age: int = 40, day: date = DAY) -> dict[str, Any]:
    return {"id": i, "run_id": 1, "as_of": day, "client_id": f"C{i:05}", "advisor_id": advisor, "rule_id": f"r_{rule_class}",
            "rule_hash": "h" * 64, "template_hash": None, "rule_class": rule_class, "action_type": action,
            "channel": "phone" if action == "task" else "sms", "priority": 50, "locale": "zh-CN", "subject": None,
            "message": "hi", "due_on": None, "status": status, "error": None, "reason": None, "policy": [],
            "facts": {"age": age, "risk_level": "C3", "lowest_category": False}, "created_at": clock.now()}


def _setup(eng: Engine, firings: list[dict[str, Any]], advisors: list[tuple[str, str | None]]) -> None:
    with eng.begin() as c:
        c.execute(ADV.insert(), [{"id": a, "name": a, "email": None, "supervisor_id": s, "daily_capacity": 20}
                                 for a, s in advisors])
        c.execute(FIRING.insert(), firings)


def _sample(eng: Engine, cfg: SupervisionConfig, day: date = DAY) -> supervision.SampleResult:
    with eng.begin() as c:
        return supervision.sample(c, day, cfg)


def test_sample_follows_the_configured_rate_per_risk(db: Engine) -> None:
    fs = [_firing(i, "A01", "marketing") for i in range(1, 401)]
    fs += [_firing(i, "A01", "service") for i in range(401, 801)]
    fs += [_firing(i, "A01", "service", action="task", status="done") for i in range(801, 1001)]
    fs += [_firing(i, "A01", "service", age=70) for i in range(1001, 1201)]
    fs += [_firing(i, "A01", "marketing", status="pending") for i in range(1201, 1301)]  # not sent: never sampled
    _setup(db, fs, [("A01", "S1"), ("S1", None)])
    cfg = SupervisionConfig(marketing_rate=0.3, service_rate=0.05, task_rate=0.1, high_risk_rate=0.6)
    res = _sample(db, cfg)
    rate = {"marketing": 0.3, "service": 0.05, "task": 0.1, "high_risk": 0.6}
    kinds = {range(1, 401): "marketing", range(401, 801): "service", range(801, 1001): "task", range(1001, 1201): "high_risk"}
    expected = {i for r, k in kinds.items() for i in r if draw(DAY, i) < rate[k]}
    with db.connect() as c:
        got = {r.firing_id: r for r in c.execute(select(REVIEW))}
    assert set(got) == expected and res.sampled == len(expected) and res.candidates == 1200
    for r, k in kinds.items():  # the draw is uniform: each share lands near its rate
        share = sum(i in got for i in r) / len(r)
        assert abs(share - rate[k]) < 0.08, (k, share)
        assert all(got[i].risk == k for i in r if i in got)
    assert {r.supervisor_id for r in got.values()} == {"S1"}
    assert _sample(db, cfg).sampled == 0  # idempotent: a firing is sampled at most once
    with db.connect() as c:
        assert len(events(c, "review.assigned")) == len(expected)


def test_rates_zero_and_one() -> None:
    assert all(draw(DAY, i) < 1.0 for i in range(500)) and not any(draw(DAY, i) < 0.0 for i in range(500))


def test_a_sender_never_reviews_their_own_message(sqlite_engine: Engine) -> None:
    # S1 supervises A01 but also sends; S2 supervises nobody but holds the role through A02's chain.
    fs = [_firing(i, "S1") for i in range(1, 60)] + [_firing(i, "A01") for i in range(60, 120)]
    fs += [_firing(i, "A02") for i in range(120, 180)]
    _setup(sqlite_engine, fs, [("A01", "S1"), ("S1", None), ("A02", "S2"), ("S2", None)])
    _sample(sqlite_engine, SupervisionConfig(marketing_rate=1.0))
    with sqlite_engine.connect() as c:
        rows = list(c.execute(select(REVIEW)))
    assert len(rows) == 179 and all(r.sender != r.supervisor_id for r in rows)
    assert {r.supervisor_id for r in rows if r.sender == "A01"} == {"S1"}  # own supervisor first
    assert {r.supervisor_id for r in rows if r.sender == "S1"} == {"S2"}  # never themselves


def test_no_other_supervisor_leaves_the_item_unassigned(sqlite_engine: Engine) -> None:
    _setup(sqlite_engine, [_firing(1, "S1")], [("A01", "S1"), ("S1", None)])
    res = _sample(sqlite_engine, SupervisionConfig(marketing_rate=1.0))
    assert res.sampled == 0 and res.unassigned == [1]


def test_users_with_the_supervisor_role_take_reviews(sqlite_engine: Engine) -> None:
    _setup(sqlite_engine, [_firing(1, "A01"), _firing(2, "A01")], [("A01", None)])
    with sqlite_engine.begin() as c:
        c.execute(text("INSERT INTO app_user (name, display_name, roles, active, created_at, created_by) "
                       "VALUES ('sup9', NULL, '[\"supervisor\"]', 1, '2026-01-01 00:00:00', 'admin')"))
    assert _sample(sqlite_engine, SupervisionConfig(marketing_rate=1.0)).sampled == 2
    with sqlite_engine.connect() as c:
        assert {r.supervisor_id for r in c.execute(select(REVIEW))} == {"sup9"}


def test_review_records_decision_and_overdue_is_visible(db: Engine) -> None:
    _setup(db, [_firing(1, "A01"), _firing(2, "A01")], [("A01", "S1"), ("S1", None)])
    _sample(db, SupervisionConfig(marketing_rate=1.0, review_days=2))
    with db.connect() as c:
        first, second = supervision.queue(c, "S1")
        assert [r.id for r in supervision.overdue(c, DAY + timedelta(days=2))] == []
        assert [r.id for r in supervision.overdue(c, DAY + timedelta(days=3))] == [first.id, second.id]
    with db.begin() as c:
        with pytest.raises(StewardError, match="A01 sent firing 1 and cannot review it"):
            supervision.decide(c, first.id, "A01", "ok", None)
        with pytest.raises(StewardError, match="is assigned to S1, not S9"):
            supervision.decide(c, first.id, "S9", "ok", None)
        with pytest.raises(StewardError, match="--comment: a escalate decision needs a comment"):
            supervision.decide(c, first.id, "S1", "escalate", "  ")
        with pytest.raises(StewardError, match="--decision: expected one of ok, follow_up, escalate, got 'fine'"):
            supervision.decide(c, first.id, "S1", "fine", None)
    with db.begin() as c:
        supervision.decide(c, first.id, "S1", "follow_up", "asks the client to trade more; coach A01")
    with db.connect() as c:
        row = c.execute(select(REVIEW).where(REVIEW.c.id == first.id)).one()
        assert (row.decision, row.decided_by) == ("follow_up", "S1") and "coach" in row.comment
        assert [r.id for r in supervision.overdue(c, DAY + timedelta(days=3))] == [second.id]
        decided = events(c, "review.decided")
        assert [(e.actor, e.status, e.firing_id) for e in decided] == [("S1", "follow_up", 1)]
    with db.begin() as c, pytest.raises(StewardError, match="already decided"):
        supervision.decide(c, first.id, "S1", "ok", None)
