"""The client dynamic record: outcomes with a need and a follow-up, follow-up tasks; win-back and referral facts."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from engine.config.base import Config
from engine.errors import StewardError
from engine.facts.base import iter_batches
from engine.facts.tables import ClientRecord
from engine.language.loading import load_ruleset
from engine.models import CashMovement, Firing
from engine.pipeline.recording import FIRING
from engine.pipeline.run import run
from engine.servicing.task_outcomes import record_outcome
from tests import book
from tests.test_cli import steward

D = book.AS_OF
RECORD = ClientRecord.__table__  # type: ignore[attr-defined]


def _facts(eng: Engine, cfg: Config, as_of: date) -> dict[str, dict[str, Any]]:
    with eng.connect() as c:
        return {f["client_id"]: f for b in iter_batches(c, cfg, as_of, batch_size=10) for f in b}


def _task(eng: Engine, cid: str, rule: str = "losing_client_care", day: date = D) -> int:
    with eng.begin() as c:
        return int(c.execute(FIRING.insert().returning(FIRING.c.id), [{
            "run_id": 1, "as_of": day, "client_id": cid, "advisor_id": "A01", "rule_id": rule, "rule_hash": "h",
            "rule_class": "service", "action_type": "task", "channel": "phone", "priority": 50, "locale": "zh-CN",
            "due_on": day + timedelta(days=3), "status": "open", "policy": [], "facts": {}, "created_at": book.now()}]).scalar_one())


def _fired(eng: Engine, cfg: Config, as_of: date) -> dict[str, set[str]]:
    run(eng, cfg, load_ruleset(cfg), as_of)
    with eng.connect() as c:
        rows = c.execute(select(FIRING.c.rule_id, FIRING.c.client_id).where(FIRING.c.as_of == as_of)).all()
    out: dict[str, set[str]] = {}
    for rule, cid in rows:
        out.setdefault(rule, set()).add(cid)
    return out


def test_a_follow_up_becomes_a_task_on_its_day_and_a_reached_call_closes_it(db: Engine, full_cfg: Config) -> None:
    book.build(db)
    task = _task(db, "C002")
    due = D + timedelta(days=3)  # Monday
    with db.begin() as c:
        record_outcome(c, task, "reached", "A01", D, note="asked about retirement", need="退休规划", follow_up=due)
        rows = {r.kind: r for r in c.execute(select(RECORD).where(RECORD.c.client_id == "C002"))}
    assert set(rows) == {"service", "need", "follow_up"}
    assert rows["service"].text == "losing_client_care: reached (asked about retirement)"
    assert rows["follow_up"].due_on == due and rows["follow_up"].firing_id == task
    assert _facts(db, full_cfg, D)["C002"]["follow_up_due"] is False  # not yet due
    f = _facts(db, full_cfg, due)["C002"]
    assert (f["follow_up_due"], f["follow_up_days_overdue"], f["follow_up_need"]) == (True, 0, "退休规划")
    assert "C002" in _fired(db, full_cfg, due).get("follow_up_call", set())
    with db.connect() as c:
        follow = c.execute(select(FIRING.c.id).where(FIRING.c.rule_id == "follow_up_call")).scalar_one()
    with db.begin() as c:
        record_outcome(c, follow, "no_answer", "A01", due)  # an attempt leaves it open
    assert _facts(db, full_cfg, due + timedelta(days=1))["C002"]["follow_up_days_overdue"] == 1
    with db.begin() as c:
        record_outcome(c, follow, "positive", "A01", due + timedelta(days=1))
        assert c.execute(select(RECORD.c.done_on).where(RECORD.c.kind == "follow_up")).scalar_one() == due + timedelta(days=1)
    f = _facts(db, full_cfg, due + timedelta(days=2))["C002"]
    assert f["follow_up_due"] is False and f["days_since_positive_outcome"] == 1


def test_outcome_problems_are_reported_and_nothing_is_written(db: Engine) -> None:
    book.build(db)
    task = _task(db, "C002")
    with db.begin() as c:
        with pytest.raises(StewardError, match="--follow-up 2026-11-20 must be after the day of the call"):
            record_outcome(c, task, "reached", "A01", D, follow_up=D)
        with pytest.raises(StewardError, match="--need is empty"):
            record_outcome(c, task, "reached", "A01", D, need="  ")
        assert c.execute(select(RECORD)).first() is None
        assert c.execute(select(Firing.__table__.c.status).where(  # type: ignore[attr-defined]
            Firing.__table__.c.id == task)).scalar_one() == "open"  # type: ignore[attr-defined]


def test_winback_attempts_stop_and_outcome(db: Engine, full_cfg: Config) -> None:
    book.build(db)
    out_day = D - timedelta(days=20)
    with db.begin() as c:
        c.execute(CashMovement.__table__.insert(), [  # type: ignore[attr-defined]
            {"id": "W1", "client_id": "C002", "moved_on": out_day, "kind": "transfer_out", "amount": 500_000.0},
            {"id": "W2", "client_id": "C002", "moved_on": D - timedelta(days=2), "kind": "deposit", "amount": 30_000.0}])
    f = _facts(db, full_cfg, D)["C002"]
    assert (f["days_since_transfer_out"], f["winback_attempts"], f["winback_declined"]) == (20, 0, False)
    assert f["inflow_since_transfer_out"] == 30_000.0
    with db.begin() as c:
        c.execute(FIRING.insert(), [{
            "run_id": 1, "as_of": out_day + timedelta(days=k), "client_id": "C002", "advisor_id": "A01",
            "rule_id": "winback_call", "rule_hash": "h", "rule_class": "marketing", "action_type": "task",
            "channel": "phone", "priority": 45, "locale": "zh-CN", "status": status, "policy": [], "facts": {},
            "created_at": book.now()} for k, status in ((7, "done"), (9, "suppressed"))])
    assert _facts(db, full_cfg, D)["C002"]["winback_attempts"] == 1  # the suppressed one never reached the list
    task = _task(db, "C002", "winback_call", D - timedelta(days=1))
    with db.begin() as c:
        record_outcome(c, task, "declined", "A01", D - timedelta(days=1))
    assert _facts(db, full_cfg, D)["C002"]["winback_declined"] is True
    assert _facts(db, full_cfg, D)["C003"]["winback_attempts"] == 0  # never transferred out


def test_cli_records_need_and_follow_up(tmp_path: Path, cfg: Config) -> None:
    from engine.db import make_engine, upgrade
    url = f"sqlite:///{tmp_path / 'o.db'}"
    eng = make_engine(url)
    upgrade(eng)
    book.build(eng)
    task = _task(eng, "C002")
    from engine.pipeline.recording import FIRING
    from tests.identity_helpers import cli_token
    with eng.connect() as c:
        owner = c.execute(select(FIRING.c.advisor_id).where(FIRING.c.id == task)).scalar()
    env = {"STEWARD_TOKEN": cli_token(eng, "adv1", ["advisor"], owner)}
    eng.dispose()
    r = steward("--database", url, "outcome", str(task), "--outcome", "reached", "--on", D.isoformat(),
                "--need", "education fund", "--follow-up", "2026-12-04", env=env)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "follow-up due 2026-12-04 (evaluation date, Asia/Shanghai)" in out
    r = steward("--database", url, "outcome", str(task), "--outcome", "reached", "--follow-up", "4 Dec", env=env)
    assert r.returncode != 0 and "--follow-up: expected a date as YYYY-MM-DD, got '4 Dec'" in r.stderr
    r = steward("outcome", "--help")
    assert "--follow-up 2026-12-04" in " ".join(r.stdout.split())
