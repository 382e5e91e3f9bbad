"""The demo book feeds the whole playbook pack: every rule fires (festivals only near a festival)."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy import Engine, select

from engine.demo import book as demo
from engine.servicing import calllist
from engine.facts import risk
from engine.config.base import Config
from engine.language.loading import load_ruleset
from engine.pipeline.run import RunSummary, run
from engine.facts.tables import AmlReview, ClientProfile, RiskAssessment
from tests.test_demo import AS_OF, fresh

DATE_BOUND = {"festival_greeting"}
"""Rules that fire only on certain dates."""


@pytest.fixture
def evaluated(db: Engine, full_cfg: Config) -> tuple[Engine, RunSummary]:
    demo.build_book(db, full_cfg, clients=300, seed=7, as_of=AS_OF)
    return db, run(db, full_cfg, load_ruleset(full_cfg), AS_OF)


def test_every_rule_of_the_pack_fires(evaluated: tuple[Engine, RunSummary], full_cfg: Config) -> None:
    _, s = evaluated
    ids = {r.id for r in load_ruleset(full_cfg).rules}
    silent = sorted(r for r in ids - DATE_BOUND if s.per_rule.get(r, 0) == 0)
    assert not silent, f"no firings on the demo book for {silent}"
    assert s.failed == 0


def test_call_lists_respect_capacity(evaluated: tuple[Engine, RunSummary], full_cfg: Config) -> None:
    eng, _ = evaluated
    with eng.begin() as c:
        lists = calllist.build_all(c, full_cfg, AS_OF)
    assert lists and all(len(cl.entries) <= cl.capacity for cl in lists)
    assert sum(len(cl.carried) for cl in lists) > 0


def _rows(eng: Engine, model: Any) -> list[Any]:
    with eng.connect() as c:
        return list(c.execute(select(model.__table__)))


def test_assessments_are_scored_questionnaires(tmp_path: Any, full_cfg: Config) -> None:
    eng = fresh(tmp_path, "r.db")
    demo.build_book(eng, full_cfg, clients=120, seed=3, as_of=AS_OF)
    rows = _rows(eng, RiskAssessment)
    assert len(rows) > 90
    for r in rows:
        sheet = risk.AnswerSheet.model_validate(r.answers)
        p = risk.score(sheet, full_cfg.servicing.risk)
        assert (p.capacity, p.tolerance, p.capacity_level, p.tolerance_level) == (
            r.capacity_score, r.tolerance_score, r.capacity_level, r.tolerance_level)
        assert p.allocation == (r.alloc_low, r.alloc_medium, r.alloc_high)
        assert sheet.client_id == r.client_id and sheet.assessed_on == r.assessed_on
    assert any(r.related_party for r in _rows(eng, ClientProfile))
    reviews = _rows(eng, AmlReview)
    assert any(r.closed_on is None for r in reviews) and all(r.opened_on <= AS_OF for r in reviews)
    assert all(r.closed_on is None or r.closed_on >= r.opened_on for r in reviews)


def test_a_weekend_date_still_builds(tmp_path: Any, full_cfg: Config) -> None:
    eng = fresh(tmp_path, "w.db")
    s = demo.build_book(eng, full_cfg, clients=60, seed=2, as_of=date(2026, 11, 22))
    assert s.rows["risk_assessment"] > 0


def test_the_default_date_is_the_latest_trading_day() -> None:
    assert demo.latest_session("XSHG", date(2026, 11, 22)) == date(2026, 11, 20)  # Sunday -> Friday
    assert demo.latest_session("XSHG", date(2026, 11, 20)) == date(2026, 11, 20)
    assert demo.latest_session("XSHG", date(2099, 1, 5)) == date(2099, 1, 5)  # beyond the calendar: as given
