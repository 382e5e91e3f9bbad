"""CSV import of the playbook tables: products, risk assessments, client profiles, AML reviews."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from engine.facts import base as facts
from engine.facts import trading_calendar
from engine.config.base import Config
from engine.facts.importer import import_dir
from engine.facts.tables import RiskAssessment
from tests.test_importer import SAMPLE, counts, dump, problems

PLAYBOOK = Path(__file__).parent / "data" / "import_playbook"
AS_OF = date(2026, 11, 20)
COUNTS = {"product": 3, "risk_assessment": 2, "client_profile": 2, "aml_review": 2}


@pytest.fixture
def loaded(db: Engine) -> Engine:
    import_dir(db, SAMPLE)
    return db


def test_import_is_counted_and_idempotent(loaded: Engine) -> None:
    assert import_dir(loaded, PLAYBOOK).counts == COUNTS
    first = dump(loaded)
    import_dir(loaded, PLAYBOOK)
    assert dump(loaded) == first
    assert {k: v for k, v in counts(loaded).items() if k in COUNTS} == COUNTS


def test_imported_rows_reach_the_facts(loaded: Engine, full_cfg: Config) -> None:
    import_dir(loaded, PLAYBOOK)
    with loaded.begin() as c:
        trading_calendar.ensure(c, "XSHG", date(2026, 8, 1), AS_OF)
        c001 = facts.facts_for(c, full_cfg, AS_OF, "C001")
        c003 = facts.facts_for(c, full_cfg, AS_OF, "C003")
    assert c001 is not None and c003 is not None
    assert c001["aml_review_open"] is True and c003["aml_review_open"] is False  # C003's review closed
    assert (c001["risk_capacity_score"], c001["recommended_high_share"]) == (35, 0.3)
    assert c001["top_product_risk"] == "R3"  # 600519 in the product master
    assert c003["related_party"] is True and c003["investor_class"] == "professional"
    assert c001["annual_income"] == 360000
    # share count in the product master: 100 of 2,500 shares (a made-up count) is a 4% stake
    assert (c001["max_stake"], c001["stake_symbol"]) == (0.04, "600519")
    assert (c001["third_party_custody"], c001["experience_years"], c001["serious_default"]) == (True, 5.5, False)
    assert (c003["third_party_custody"], c003["experience_years"], c003["serious_default"]) == (None, None, None)


def test_new_assessments_are_numbered_after_the_imported_ones(loaded: Engine) -> None:
    import_dir(loaded, PLAYBOOK)
    t = RiskAssessment.__table__  # type: ignore[attr-defined]
    with loaded.begin() as c:
        new_id = c.execute(t.insert().returning(t.c.id).values(
            client_id="C001", assessed_on=AS_OF, capacity_score=50, tolerance_score=50, capacity_level="medium",
            tolerance_level="medium", alloc_low=0, alloc_medium=50, alloc_high=50, answers={})).scalar_one()
        assert new_id == 3
        assert c.execute(select(t.c.answers).where(t.c.id == 1)).scalar_one() == {"age": 67, "job": "stable_salary"}


def _folder(tmp_path: Path, name: str, text: str) -> Path:
    d = tmp_path / "in"
    d.mkdir(exist_ok=True)
    (d / name).write_text(text, encoding="utf-8")
    return d


RA_HEADER = "id,client_id,assessed_on,capacity_score,tolerance_score,capacity_level,tolerance_level,alloc_low,alloc_medium,alloc_high,answers\n"


@pytest.mark.parametrize(("name", "text", "message"), [
    ("products.csv", "symbol,name,risk,type\n600519,贵州茅台,R6,stock\n",
     "risk: expected one of R1, R2, R3, R4, R5 (got 'R6')"),
    ("products.csv", "symbol,name,risk,type\n600519,贵州茅台,R3,exchange_traded_fund\n",
     "type: String should have at most 16 characters (got 'exchange_traded_fund')"),
    ("risk_assessments.csv", RA_HEADER + "1,C001,2025-06-01,35,42,medium-low,medium,20,50,40,\n",
     "alloc_low + alloc_medium + alloc_high must add up to 100, not 110"),
    ("risk_assessments.csv", RA_HEADER + "1,C001,2025-06-01,101,42,medium-low,medium,20,50,30,\n",
     "capacity_score: expected a number <= 100 (got '101')"),
    ("risk_assessments.csv", RA_HEADER + "1,C001,2025-06-01,35,42,mid,medium,20,50,30,\n",
     "capacity_level: expected one of low, medium-low, medium, medium-high, high (got 'mid')"),
    ("risk_assessments.csv", RA_HEADER + "1,C001,2025-06-01,35,42,low,low,20,50,30,{age: 5}\n",
     "answers: expected a JSON object such as {\"job\": \"stable_salary\"} (Expecting property name enclosed in double quotes) (got '{age: 5}')"),
    ("risk_assessments.csv", RA_HEADER + "1,C001,2025-06-01,35,42,low,low,20,50,30,[1]\n",
     "answers: expected a JSON object ({...}), not a list or a single value (got '[1]')"),
    ("client_profiles.csv", "client_id,investor_class\nC001,retail\n",
     "investor_class: expected one of ordinary, professional (got 'retail')"),
    ("client_profiles.csv", "client_id,related_party\nC999,false\n",
     "client_id: no such client in clients.csv or the database (got 'C999')"),
    ("aml_reviews.csv", "id,client_id,opened_on,closed_on\nX1,C001,2026-11-02,2026-11-01\n",
     "closed_on 2026-11-01 is before opened_on 2026-11-02"),
])
def test_cell_problems(loaded: Engine, tmp_path: Path, name: str, text: str, message: str) -> None:
    d = _folder(tmp_path, name, text)
    assert problems(loaded, d) == [f"{d}/{name}:2: {message}"]


def test_one_bad_file_writes_nothing(loaded: Engine, tmp_path: Path) -> None:
    d = tmp_path / "in"
    shutil.copytree(PLAYBOOK, d)
    (d / "aml_reviews.csv").write_text("id,client_id,opened_on\nX1,C001,2026/11/02\n", encoding="utf-8")
    assert len(problems(loaded, d)) == 1
    assert {k: v for k, v in counts(loaded).items() if k in COUNTS} == dict.fromkeys(COUNTS, 0)
