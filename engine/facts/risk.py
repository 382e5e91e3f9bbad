"""Risk profile scoring (DOMAIN.md): answer sheet -> capacity and tolerance -> allocation.

Risk capacity = A (age) + B (five answers); risk tolerance = C (largest accepted
loss) + D (five answers). Each score maps to five levels by `servicing.risk.bands`;
the recommended allocation is a cell of `servicing.risk.allocation` (config data).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import Problem, SourceErrors, did_you_mean, rel
from engine.config.servicing import RiskConfig
from engine.yamlio import LineDict, line_of, loads

LEVELS = ("low", "medium-low", "medium", "medium-high", "high")
POINTS = (10, 8, 6, 4, 2)

# item -> answers in the order of DOMAIN.md's columns (10, 8, 6, 4, 2 points)
CAPACITY_ITEMS: dict[str, tuple[str, ...]] = {
    "job": ("stable_salary", "ordinary_income", "commission_income", "self_employed", "unemployed"),
    "family": ("single", "dual_income_no_children", "dual_income_children", "single_income_children",
               "single_income_three_generations"),
    "housing": ("investment_property", "own_home_no_mortgage", "mortgage_under_half", "mortgage_over_half", "renting"),
    "experience": ("over_10_years", "6_to_10_years", "2_to_5_years", "up_to_1_year", "none"),
    "knowledge": ("professional", "finance_degree", "skilled_trader", "average", "novice"),
}
TOLERANCE_ITEMS: dict[str, tuple[str, ...]] = {
    "goal": ("capital_gains", "swing_trading", "rights_and_dividends", "beat_inflation", "keep_principal"),
    "stop_loss": ("preset", "executed", "partial", "hold_on", "average_down"),
    "if_money_is_lost": ("a_lesson", "calm", "upset", "hard_to_accept", "cannot_sleep"),
    "watches_market": ("now_and_then", "monthly", "weekly", "only_the_close", "all_the_time"),
    "own_performance": ("fully_in_control", "partly", "relies_on_experts", "relies_on_luck", "no_luck_at_all"),
}
ITEMS = {**CAPACITY_ITEMS, **TOLERANCE_ITEMS}


class AnswerSheet(BaseModel):
    """One questionnaire, as read from a YAML or JSON file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    client_id: str | None = None
    assessed_on: date | None = None
    age: int = Field(ge=0, le=130)
    max_loss_pct: int = Field(ge=0, le=100)
    """Largest loss the client accepts, in whole percent."""
    job: str
    family: str
    housing: str
    experience: str
    knowledge: str
    goal: str
    stop_loss: str
    if_money_is_lost: str
    watches_market: str
    own_performance: str


def suitability_level(p: "RiskProfile", cfg: RiskConfig) -> str:
    """The client's level C1..C5 from the profile, through `servicing.risk.suitability` (docs/risk.md)."""
    return cfg.suitability[LEVELS.index(p.tolerance_level)][LEVELS.index(p.capacity_level)]


@dataclass(frozen=True)
class RiskProfile:
    items: tuple[tuple[str, str, int], ...]
    """(item, answer, points) in questionnaire order, A and C included."""
    capacity: int
    tolerance: int
    capacity_level: str
    tolerance_level: str
    allocation: tuple[int, int, int]
    """Recommended low / medium / high risk product shares, %."""


def age_points(age: int) -> int:
    """A: under 25 -> 50; 25..74 -> 75 - age; 75 and over -> 0."""
    if age < 25:
        return 50
    return max(75 - age, 0)


def loss_points(max_loss_pct: int) -> int:
    """C: two points per whole percent of accepted loss, at most 50."""
    return min(2 * max(max_loss_pct, 0), 50)


def answer_points(item: str, answer: str) -> int:
    return POINTS[ITEMS[item].index(answer)]


def level_index(score: int, bands: tuple[int, ...] = (20, 40, 60, 80)) -> int:
    """0..4: below bands[0] low, ..., bands[3] and up high."""
    return sum(score >= b for b in bands)


def allocation_for(tolerance_level: int, capacity_level: int, cfg: RiskConfig) -> tuple[int, int, int]:
    return tuple(cfg.allocation[tolerance_level][capacity_level])  # type: ignore[return-value]


def score(sheet: AnswerSheet, cfg: RiskConfig) -> RiskProfile:
    a = age_points(sheet.age)
    c = loss_points(sheet.max_loss_pct)
    items: list[tuple[str, str, int]] = [("age", str(sheet.age), a)]
    items += [(k, getattr(sheet, k), answer_points(k, getattr(sheet, k))) for k in CAPACITY_ITEMS]
    items.append(("max_loss_pct", str(sheet.max_loss_pct), c))
    items += [(k, getattr(sheet, k), answer_points(k, getattr(sheet, k))) for k in TOLERANCE_ITEMS]
    capacity = a + sum(p for k, _, p in items if k in CAPACITY_ITEMS)
    tolerance = c + sum(p for k, _, p in items if k in TOLERANCE_ITEMS)
    ci, ti = level_index(capacity, cfg.bands), level_index(tolerance, cfg.bands)
    return RiskProfile(tuple(items), capacity, tolerance, LEVELS[ci], LEVELS[ti], allocation_for(ti, ci, cfg))


def _answer_problems(data: LineDict, path: str) -> list[Problem]:
    out = []
    for item, answers in ITEMS.items():
        value = data.get(item)
        if isinstance(value, str) and value not in answers:
            out.append(Problem(path, data.key_lines.get(item), item,
                               f"unknown answer {value!r}{did_you_mean(value, answers)}; "
                               f"choose one of {', '.join(answers)}"))
    return out


def parse_sheet(text: str, path: str) -> AnswerSheet:
    """A YAML or JSON answer sheet -> AnswerSheet; every problem named with its line."""
    data = loads(text, path)  # JSON is YAML: one strict loader for both
    if not isinstance(data, LineDict):
        raise SourceErrors([Problem(path, 1, "", "an answer sheet is a mapping of item: answer")])
    problems = _answer_problems(data, path)
    try:
        sheet = AnswerSheet.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            loc = tuple(err["loc"])
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = f"unknown item '{loc[-1]}'{did_you_mean(str(loc[-1]), AnswerSheet.model_fields)}"
            elif err["type"] == "missing":
                msg = "required item is missing"
            elif "input" in err:
                msg = f"{msg} (got {err['input']!r})"
            problems.append(Problem(path, line_of(data, loc) if err["type"] != "missing" else data.line,
                                    ".".join(map(str, loc)), msg))
        raise SourceErrors(problems) from e
    if problems:
        raise SourceErrors(problems)
    return sheet


def load_sheet(path: Path) -> AnswerSheet:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SourceErrors([Problem(rel(path), None, "", f"cannot read the answer sheet: {e}")]) from e
    return parse_sheet(text, rel(path))


def profile_json(p: RiskProfile) -> dict[str, Any]:
    low, medium, high = p.allocation
    return {
        "items": [{"item": k, "answer": a, "points": n} for k, a, n in p.items],
        "capacity": {"score": p.capacity, "level": p.capacity_level},
        "tolerance": {"score": p.tolerance, "level": p.tolerance_level},
        "allocation": {"low": low, "medium": medium, "high": high},
    }


def dumps(p: RiskProfile) -> str:
    return json.dumps(profile_json(p), ensure_ascii=False, indent=2)
