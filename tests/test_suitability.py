"""Suitability gate: product offers only to suitable clients, fail closed, every block recorded."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from engine.compliance import suitability as suit
from engine.config.base import Config
from engine.language.loading import load_ruleset
from engine.models import Client
from engine.pipeline.run import run
from engine.pipeline.recording import FIRING
from tests import book
from tests.compliance_helpers import OPT_OUT, SIG, pack_config, rule_yaml, write_pack

AS_OF = book.AS_OF  # 2026-11-20


def facts(level: str | None = "C3", days: int | None = 100, lowest: bool | None = False) -> dict:
    return {"risk_level": level, "risk_assessed_days": days, "lowest_category": lowest}


@pytest.mark.parametrize("f, product, reason", [
    (facts("C3"), "R3", None),
    (facts("C5"), "R5", None),
    (facts("C2"), "R3", suit.BELOW),
    (facts("C1", lowest=True), "R1", None),
    (facts("C4", lowest=True), "R2", suit.LOWEST),
    (facts(None), "R1", suit.MISSING),
    (facts(days=None), "R1", suit.MISSING),
    (facts(lowest=None), "R1", suit.MISSING),
    (facts("X9"), "R1", suit.UNKNOWN),
    (facts("C5", days=(AS_OF - date(2024, 11, 20)).days), "R1", suit.EXPIRED),   # 24 months to the day
    (facts("C5", days=(AS_OF - date(2024, 11, 21)).days), "R1", None),          # one day younger
])
def test_verdict(f: dict, product: str, reason: str | None) -> None:
    assert suit.verdict(f, product, AS_OF, 24)[0] == reason


def test_validity_comes_from_config() -> None:
    f = facts("C5", days=(AS_OF - date(2025, 12, 1)).days)
    assert suit.verdict(f, "R1", AS_OF, 24)[0] is None
    assert suit.verdict(f, "R1", AS_OF, 6)[0] == suit.EXPIRED


def test_add_months_clamps_to_month_end() -> None:
    assert suit.add_months(date(2024, 2, 29), 12) == date(2025, 2, 28)
    assert suit.add_months(date(2024, 8, 31), 6) == date(2025, 2, 28)
    assert suit.add_months(date(2024, 11, 20), 24) == date(2026, 11, 20)


CLIENTS = {
    "S01": {"risk_level": "C5"},
    "S02": {"risk_level": "C2"},
    "S03": {"risk_level": "C4", "lowest_category": True},
    "S04": {"risk_level": None, "risk_assessed_on": None},
    "S05": {"risk_level": "C5", "risk_assessed_on": date(2024, 11, 20)},
    "S06": {"risk_level": "C3", "risk_assessed_on": date(2024, 11, 21)},
}
EXPECTED = {"S01": None, "S02": suit.BELOW, "S03": suit.LOWEST, "S04": suit.MISSING, "S05": suit.EXPIRED, "S06": None}


@pytest.fixture
def offer_pack(tmp_path: Path, cfg: Config) -> Config:
    when = "days_since_open >= 0"
    write_pack(tmp_path, {
        "fund_offer.yaml": rule_yaml("fund_offer", when=when, extra="product: 稳健基金\nproduct_risk: R3\n"),
        "contract_notice.yaml": rule_yaml("contract_notice", cls="service", when=when),
    }, {
        "fund_offer/zh-CN.j2": f"{SIG}{{{{ client.name }}}}您好，稳健基金现已发售。投资有风险，不保本。{OPT_OUT}",
        "contract_notice/zh-CN.j2": "{{ client.name }}您好，您的服务协议将于下月更新。",
    })
    return pack_config(cfg, tmp_path)


def test_gate_blocks_with_reason_and_service_notices_flow(db: Engine, offer_pack: Config) -> None:
    book.build(db)
    with db.begin() as c:
        c.execute(Client.__table__.insert(), [book.client(cid, date(2020, 1, 1), **kw) for cid, kw in CLIENTS.items()])
    ruleset = load_ruleset(offer_pack)
    s = run(db, offer_pack, ruleset, AS_OF)
    with db.connect() as c:
        rows = {(r.rule_id, r.client_id): r for r in c.execute(select(FIRING))}
    for cid, reason in EXPECTED.items():
        offer, notice = rows["fund_offer", cid], rows["contract_notice", cid]
        assert notice.reason is None and notice.status == "pending"
        assert not any(t["stage"] == "suitability" for t in notice.policy)
        gate = [t for t in offer.policy if t["stage"] == "suitability"]
        assert len(gate) == 1
        if reason is None:
            assert gate[0]["outcome"] == "pass" and not (offer.reason or "").startswith("SUIT_")
        else:
            assert offer.status == "suppressed" and offer.reason == reason and offer.message is None
            assert gate[0] == {"stage": "suitability", "outcome": "suppressed", "reason": reason,
                               "detail": gate[0]["detail"]} and gate[0]["detail"]
    blocked = {r: n for r, n in s.per_reason.items() if r.startswith("SUIT_")}
    assert blocked == {suit.BELOW: 1, suit.LOWEST: 1, suit.MISSING: 1, suit.EXPIRED: 1}


SENIOR_BASE = {"risk_level": "C5", "risk_assessed_days": 30, "lowest_category": False}


@pytest.mark.parametrize(("age", "product", "reason"), [
    (64, "R4", None),
    (65, "R4", suit.SENIOR),
    (80, "R5", suit.SENIOR),
    (80, "R3", None),
    (None, "R4", suit.AGE_UNKNOWN),
    (None, "R3", None),
])
def test_seniors_get_stricter_suitability(age: int | None, product: str, reason: str | None) -> None:
    f = {**SENIOR_BASE, "age": age}
    assert suit.verdict(f, product, AS_OF, 24, senior_age=65, senior_max_risk="R3")[0] == reason


def test_senior_check_can_be_turned_off() -> None:
    f = {**SENIOR_BASE, "age": 90}
    assert suit.verdict(f, "R5", AS_OF, 24, senior_age=65, senior_max_risk="R5")[0] is None
