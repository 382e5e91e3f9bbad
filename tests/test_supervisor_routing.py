"""Rules tagged `assign:supervisor` put the task on the supervisor's list, not the advisor's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select

from engine.audit import facts_store
from engine.servicing import calllist
from engine.config.base import Config
from engine.language.loading import load_ruleset
from engine.models import Advisor, Client
from engine.pipeline.run import run
from engine.pipeline.recording import FIRING
from tests import book

D = book.AS_OF


def build(eng: Engine) -> None:
    book.build(eng)  # advisor A01, no supervisor
    with eng.begin() as c:
        c.execute(Advisor.__table__.insert(), [  # type: ignore[attr-defined]
            {"id": "S01", "name": "王芳", "email": None, "supervisor_id": None, "daily_capacity": 5},
            {"id": "A02", "name": "张强", "email": None, "supervisor_id": "S01", "daily_capacity": 20}])
        c.execute(Client.__table__.insert(), [  # type: ignore[attr-defined]
            book.client("R01", D - timedelta(days=35), advisor_id="A02"),  # callback overdue, advisor has a supervisor
            book.client("R02", D - timedelta(days=35)),  # callback overdue, A01 has no supervisor
        ])


def firings(eng: Engine) -> dict[tuple[str, str], Any]:
    with eng.connect() as c:
        return {(r.rule_id, r.client_id): r for r in facts_store.with_facts(c, list(c.execute(select(FIRING))))}


def test_escalation_goes_to_the_supervisor(db: Engine, full_cfg: Config) -> None:
    build(db)
    run(db, full_cfg, load_ruleset(full_cfg), D)
    f = firings(db)
    overdue = f["new_account_callback_overdue", "R01"]
    assert overdue.status == "open" and overdue.advisor_id == "S01"
    assert overdue.facts["advisor_id"] == "A02"  # the snapshot still names the client's advisor
    assert f["new_account_checkin", "R01"].advisor_id == "A02"  # untagged rules stay with the advisor
    assert f["new_account_callback_overdue", "R02"].advisor_id == "A01"  # no supervisor: the advisor keeps it
    with db.begin() as c:
        assert [e.task.client_id for e in calllist.build(c, full_cfg, "S01", D).entries] == ["R01"]
        assert "R01" in [e.task.client_id for e in calllist.build(c, full_cfg, "A02", D).entries]
