"""A saved questionnaire sets the client's level C1-C5 through servicing.risk.suitability;
an unknown client id saves nothing; docs/risk.md exists and `risk score --help` cites it."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from engine.audit import log as auditlog
from engine.cli.app import app
from engine.config.base import Config
from engine.config.servicing import RiskConfig
from engine.facts import risk
from engine.facts.tables import RiskAssessment
from engine.models import Client

ROOT = Path(__file__).resolve().parent.parent
SHEET = """client_id: {cid}
assessed_on: 2026-11-20
age: 42
max_loss_pct: 20
job: stable_salary
family: dual_income_children
housing: mortgage_under_half
experience: 2_to_5_years
knowledge: average
goal: beat_inflation
stop_loss: executed
if_money_is_lost: upset
watches_market: weekly
own_performance: partly
"""


def _cli(eng: Engine, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, ["--database", eng.url.render_as_string(hide_password=False), *args])
    return r.exit_code, r.output


def _client(eng: Engine) -> None:
    with eng.begin() as conn:
        conn.execute(Client.__table__.insert(), [{"id": "C001", "name": "王芳", "opened_on": date(2020, 1, 1)}])  # type: ignore[attr-defined]


def test_saved_questionnaire_sets_the_level_and_is_audited(sqlite_engine: Engine, tmp_path: Path, cfg: Config) -> None:
    _client(sqlite_engine)
    sheet = tmp_path / "answers.yaml"
    sheet.write_text(SHEET.format(cid="C001"), encoding="utf-8")
    code, out = _cli(sqlite_engine, "risk", "score", str(sheet), "--save")
    assert code == 0 and "risk level C4" in out, out
    with sqlite_engine.connect() as conn:
        row = conn.execute(select(Client.__table__).where(Client.__table__.c.id == "C001")).one()  # type: ignore[attr-defined]
        ev = conn.execute(select(auditlog.EVENT).where(auditlog.EVENT.c.name == "risk.assessed")).one()
    assert (row.risk_level, row.risk_assessed_on) == ("C4", date(2026, 11, 20))
    assert ev.client_id == "C001" and auditlog.body_of(ev)["data"]["risk_level"] == "C4"


def test_save_refuses_an_unknown_client_and_writes_nothing(sqlite_engine: Engine, tmp_path: Path) -> None:
    _client(sqlite_engine)
    sheet = tmp_path / "answers.yaml"
    sheet.write_text(SHEET.format(cid="C01"), encoding="utf-8")
    code, out = _cli(sqlite_engine, "risk", "score", str(sheet), "--save")
    assert code == 2 and "no client 'C01'" in out and "did you mean 'C001'" in out and "nothing was saved" in out
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(RiskAssessment.__table__)).scalar() == 0  # type: ignore[attr-defined]


def test_the_mapping_is_config_and_is_validated(tmp_path: Path) -> None:
    sheet = tmp_path / "a.yaml"
    sheet.write_text(SHEET.format(cid="C001"), encoding="utf-8")
    profile = risk.score(risk.load_sheet(sheet), RiskConfig())
    assert (profile.tolerance_level, profile.capacity_level) == ("medium-high", "medium-high")
    assert risk.suitability_level(profile, RiskConfig()) == "C4"
    strict = RiskConfig(suitability=tuple(tuple("C1" for _ in range(5)) for _ in range(5)))
    assert risk.suitability_level(profile, strict) == "C1"
    with pytest.raises(ValueError, match="suitability cells are C1..C5, got C9"):
        RiskConfig(suitability=tuple(tuple("C9" for _ in range(5)) for _ in range(5)))


def test_docs_risk_md_exists_and_the_help_cites_it() -> None:
    assert "servicing.risk.suitability" in (ROOT / "docs" / "risk.md").read_text(encoding="utf-8")
    r = CliRunner().invoke(app, ["risk", "score", "--help"])
    assert r.exit_code == 0 and "docs/risk.md" in r.output
