"""Suitability gate (policy stage, order 100): a product offer reaches only suitable clients.

A rule that offers a product declares `product_risk: R1..R5`. The gate fails closed: the
offer is suppressed, with a reason code, for a client

- without a risk level or an assessment date      SUIT_ASSESSMENT_MISSING
- whose risk level is not one of C1..C5            SUIT_RISK_LEVEL_UNKNOWN
- whose assessment is older than the validity      SUIT_ASSESSMENT_EXPIRED
  (`compliance.assessment_validity_months`, default 24)
- in the lowest category, for a product above R1   SUIT_LOWEST_CATEGORY
- whose level is below the product's (C2 vs R3)    SUIT_LEVEL_BELOW_PRODUCT
- aged `compliance.senior_age` (65) or over, for a  SUIT_SENIOR_PRODUCT_RISK
  product above `compliance.senior_max_product_risk` (R3): extra care for seniors
- of unknown age, for such a product                SUIT_AGE_UNKNOWN

Rules that offer no product (service notices, greetings) pass untouched. The stage needs
only the client's facts, so dry runs apply it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

from engine.pipeline.policy import Decision, StageContext, register_stage

NAME = "suitability"
ORDER = 100
LEVELS = {f"C{i}": i for i in range(1, 6)}
MISSING = "SUIT_ASSESSMENT_MISSING"
UNKNOWN = "SUIT_RISK_LEVEL_UNKNOWN"
EXPIRED = "SUIT_ASSESSMENT_EXPIRED"
LOWEST = "SUIT_LOWEST_CATEGORY"
BELOW = "SUIT_LEVEL_BELOW_PRODUCT"
SENIOR = "SUIT_SENIOR_PRODUCT_RISK"
AGE_UNKNOWN = "SUIT_AGE_UNKNOWN"
REASONS = (MISSING, UNKNOWN, EXPIRED, LOWEST, BELOW, SENIOR, AGE_UNKNOWN)


def add_months(d: date, months: int) -> date:
    """The same day `months` later, clamped to the month's end (2024-02-29 + 12 -> 2025-02-28)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    for day in range(d.day, 27, -1):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    return date(year, month, min(d.day, 28))


def assessment_expired(assessed_days: int, as_of: date, validity_months: int) -> bool:
    """An assessment is valid until the day before its anniversary `validity_months` later."""
    assessed_on = as_of - timedelta(days=assessed_days)
    return as_of >= add_months(assessed_on, validity_months)


def verdict(facts: Mapping[str, Any], product_risk: str, as_of: date, validity_months: int,
            senior_age: int = 65, senior_max_risk: str = "R5") -> tuple[str | None, str]:
    """(reason code or None when suitable, human detail) for one client and one product."""
    level, days, lowest = facts.get("risk_level"), facts.get("risk_assessed_days"), facts.get("lowest_category")
    product = int(product_risk[1])
    if level is None or days is None or lowest is None:
        return MISSING, f"no valid risk assessment on file; product {product_risk}"
    if level not in LEVELS:
        return UNKNOWN, f"risk level {level!r} is not one of C1..C5"
    if assessment_expired(int(days), as_of, validity_months):
        return EXPIRED, f"risk assessment {days} days old (valid {validity_months} months)"
    if lowest and product > 1:
        return LOWEST, f"lowest-category client; product {product_risk} is above R1"
    if LEVELS[level] < product:
        return BELOW, f"client {level} below product {product_risk}"
    if product > int(senior_max_risk[1]):
        age = facts.get("age")
        if age is None:
            return AGE_UNKNOWN, f"age unknown; product {product_risk} is above {senior_max_risk}, the senior limit"
        if age >= senior_age:
            return SENIOR, f"client aged {age}; products above {senior_max_risk} are not offered from age {senior_age}"
    return None, f"client {level} may be offered {product_risk}"


class SuitabilityStage:
    name = NAME
    needs_db = False
    """Only the client's facts: dry runs (`steward evaluate`) apply it too."""

    def prepare(self, ctx: StageContext) -> None:
        return None

    def apply(self, ctx: StageContext, decisions: list[Decision]) -> None:
        comp = ctx.cfg.compliance
        months = comp.assessment_validity_months
        for d in decisions:
            risk = getattr(d.match.rule.spec, "product_risk", None)
            if not d.live or risk is None:
                continue
            reason, detail = verdict(d.match.facts, risk, ctx.as_of, months, comp.senior_age, comp.senior_max_product_risk)
            if reason is None:
                d.passed(NAME, detail)
            else:
                d.block(NAME, "suppressed", reason, detail)


def register() -> None:
    """Called once by engine.composition.install()."""
    register_stage(SuitabilityStage(), ORDER)
