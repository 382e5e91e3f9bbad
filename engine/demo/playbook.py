"""Rows of the demo book for the playbook tables: products, risk assessments, profiles, AML reviews.

engine.demo.book decides who gets what (archetypes and traits); this module builds the rows
from the same seeded rng, so the book stays deterministic per seed. Risk assessments
are scored by the real scoring code (engine.facts.risk) from generated answer sheets.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta
from typing import Any

from engine.facts import risk
from engine.config.servicing import RiskConfig

HIGH_RISK_PREFIXES = ("300", "688")
"""ChiNext (300) and STAR (688) shares: product risk R4 in the demo; other A-shares R3."""


def product_risk(symbol: str) -> str:
    return "R4" if symbol.startswith(HIGH_RISK_PREFIXES) else "R3"


SMALL_CAP = ("002999", "示例精工", 18.5)
"""A small listed company (5 million shares) in which the demo's large holders approach 5%."""
SMALL_CAP_SHARES = 5_000_000.0
LARGE_CAP_SHARES = 2_000_000_000.0


def product_rows(symbols: tuple[tuple[str, str, float], ...]) -> list[dict[str, Any]]:
    return [{"symbol": s, "name": name, "risk": product_risk(s), "type": "stock",
             "shares_outstanding": SMALL_CAP_SHARES if s == SMALL_CAP[0] else LARGE_CAP_SHARES}
            for s, name, _ in symbols]


def _answer(rng: random.Random, item: str, lo: int, hi: int) -> str:
    """An answer of `item` among columns lo..hi (0 = 10 points ... 4 = 2 points)."""
    return risk.ITEMS[item][lo + int(rng.random() * (hi - lo + 1))]


def assessment_row(rng: random.Random, row_id: int, cid: str, on: date, born: date, cautious: bool,
                   cfg: RiskConfig) -> dict[str, Any]:
    """A generated questionnaire scored as `steward risk score` would; `cautious` answers keep
    the recommended high-risk share low (the allocation-drift population)."""
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    lo, hi = (3, 4) if cautious else (0, 4)
    answers: dict[str, Any] = {"client_id": cid, "assessed_on": on.isoformat(), "age": age,
                               "max_loss_pct": int(rng.random() * (5 if cautious else 40))}
    answers.update({k: _answer(rng, k, lo, hi) for k in risk.ITEMS})
    capacity = risk.age_points(age) + sum(risk.answer_points(k, answers[k]) for k in risk.CAPACITY_ITEMS)
    tolerance = risk.loss_points(answers["max_loss_pct"]) + sum(
        risk.answer_points(k, answers[k]) for k in risk.TOLERANCE_ITEMS)
    ci, ti = risk.level_index(capacity, cfg.bands), risk.level_index(tolerance, cfg.bands)
    low, medium, high = risk.allocation_for(ti, ci, cfg)
    return {"id": row_id, "client_id": cid, "assessed_on": on, "capacity_score": capacity,
            "tolerance_score": tolerance, "capacity_level": risk.LEVELS[ci], "tolerance_level": risk.LEVELS[ti],
            "alloc_low": low, "alloc_medium": medium, "alloc_high": high, "answers": answers}


def profile_row(rng: random.Random, cid: str, kind: str, related: bool) -> dict[str, Any]:
    rich = kind in ("core", "hnw")
    income = math.exp(rng.gauss(13.3 if rich else 11.9, 0.6))
    return {"client_id": cid, "investor_class": "professional" if rich and rng.random() < 0.3 else "ordinary",
            "related_party": related, "annual_income": round(income, -3),
            "third_party_custody": None, "experience_years": None, "serious_default": None}


def margin_fields(rng: random.Random, ready: bool) -> dict[str, Any]:
    """Margin eligibility fields of a profile (drawn from the book's second rng)."""
    if ready:
        return {"third_party_custody": True, "experience_years": float(2 + int(rng.random() * 14)),
                "serious_default": False}
    return {"third_party_custody": rng.random() < 0.9, "experience_years": float(int(rng.random() * 20)),
            "serious_default": rng.random() < 0.02}


def aml_row(rng: random.Random, cid: str, as_of: date, still_open: bool) -> dict[str, Any]:
    opened = as_of - timedelta(days=1 + int(rng.random() * (30 if still_open else 300)))
    closed = None if still_open else min(as_of, opened + timedelta(days=5 + int(rng.random() * 40)))
    return {"id": f"{cid}-AML1", "client_id": cid, "opened_on": opened, "closed_on": closed}


def weekday_before(day: date) -> date:
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day
