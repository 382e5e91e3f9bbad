"""The `servicing:` section of config.yaml: segment models, risk profile, call list, playbooks.

Every figure DOMAIN.md leaves to the firm lives here, in the models' defaults;
docs/config.md documents each key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SegmentName = Literal["core", "maintenance", "dormant", "settled", "dead"]
Channel = Literal["phone", "sms", "email", "im"]
Bucket = Literal["low", "medium", "high"]
Cell = Literal["large_short_term", "large_stable", "large_static", "medium_short_term", "medium_stable",
               "medium_static", "small_short_term", "small_stable", "small_static"]
Quadrant = Literal["gold", "rising_star", "maintain", "give_up"]
DEFAULT_IMPORTANT_CELLS: tuple[Cell, ...] = (
    "large_short_term", "large_stable", "large_static", "medium_short_term", "medium_stable", "medium_static",
    "small_short_term")
"""Large, medium and short-term cells are "important" (DOMAIN.md, 002)."""

# Rows: tolerance level low..high; columns: capacity level low..high; cells: low/medium/high %.
# The cell depends only on the sum of the two level indexes (DOMAIN.md).
_DIAGONAL = ((70, 20, 10), (50, 40, 10), (40, 40, 20), (20, 50, 30), (0, 50, 50),
             (0, 40, 60), (0, 30, 70), (0, 20, 80), (0, 10, 90))
DEFAULT_ALLOCATION = tuple(tuple(_DIAGONAL[t + c] for c in range(5)) for t in range(5))


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CapitalTurnoverConfig(_M):
    """Capital size x turnover grid (nine cells)."""

    capital_large: float = 1_000_000.0
    capital_medium: float = 100_000.0
    turnover_short_term: float = 1.0
    """volume_20d / market_value at or above which a client trades short-term."""
    turnover_stable: float = 0.1
    """Turnover at or above which a client is stable (below: static)."""

    @model_validator(mode="after")
    def _ordered(self) -> CapitalTurnoverConfig:
        if self.capital_large <= self.capital_medium:
            raise ValueError("capital_large must be greater than capital_medium")
        if self.turnover_short_term <= self.turnover_stable:
            raise ValueError("turnover_short_term must be greater than turnover_stable")
        return self


class ValueQuadrantConfig(_M):
    """Current x future value quadrant."""

    current_value_min: float = 500_000.0
    current_volume_min: float = 1_000_000.0
    future_income_min: float = 300_000.0
    future_inflow_min: float = 100_000.0
    future_age_max: int = Field(45, ge=0)


DEFAULT_SUITABILITY = tuple(tuple(f"C{min(t, c) + 1}" for c in range(5)) for t in range(5))


class RiskConfig(_M):
    bands: tuple[int, int, int, int] = (20, 40, 60, 80)
    """Lower bounds of medium-low, medium, medium-high and high (scores 0-100)."""
    allocation: tuple[tuple[tuple[int, int, int], ...], ...] = DEFAULT_ALLOCATION
    """5 x 5 table: row = tolerance level, column = capacity level, cell = low/medium/high %."""
    product_buckets: dict[str, Bucket] = Field(
        default_factory=lambda: dict[str, Bucket](R1="low", R2="low", R3="medium", R4="high", R5="high"))
    suitability: tuple[tuple[str, ...], ...] = DEFAULT_SUITABILITY
    """5 x 5 table: row = tolerance level, column = capacity level, cell = the client's level C1..C5
    (docs/risk.md). Default: the lower of the two levels, so neither capacity nor tolerance is exceeded."""

    @model_validator(mode="after")
    def _shape(self) -> RiskConfig:
        if list(self.bands) != sorted(set(self.bands)) or not 0 < self.bands[0] or self.bands[-1] > 100:
            raise ValueError(f"bands must rise strictly within 1..100, got {list(self.bands)}")
        if len(self.allocation) != 5 or any(len(row) != 5 for row in self.allocation):
            raise ValueError("allocation must be 5 rows (tolerance) of 5 cells (capacity)")
        for t, row in enumerate(self.allocation):
            for c, cell in enumerate(row):
                if sum(cell) != 100:
                    raise ValueError(f"allocation[{t}][{c}] = {list(cell)} must add up to 100")
        if len(self.suitability) != 5 or any(len(row) != 5 for row in self.suitability):
            raise ValueError("suitability must be 5 rows (tolerance) of 5 cells (capacity)")
        bad = sorted({c for row in self.suitability for c in row} - {"C1", "C2", "C3", "C4", "C5"})
        if bad:
            raise ValueError(f"suitability cells are C1..C5, got {', '.join(bad)}")
        if set(self.product_buckets) != {"R1", "R2", "R3", "R4", "R5"}:
            raise ValueError("product_buckets must map each of R1..R5 to low, medium or high")
        return self


class BudgetGroup(_M):
    segments: tuple[SegmentName, ...]
    share: float = Field(ge=0, le=1)


def _quadrant_bonus() -> dict[Quadrant, int]:
    return {"gold": 10, "rising_star": 10}


class CallListConfig(_M):
    budget: tuple[BudgetGroup, ...] = (
        BudgetGroup(segments=("core", "dormant"), share=0.6),
        BudgetGroup(segments=("maintenance",), share=0.3),
        BudgetGroup(segments=("settled",), share=0.1),
    )
    aging_per_day: int = Field(5, ge=0)
    """Priority points a task gains per trading day it waits, so nothing waits forever."""
    urgent_priority: int = Field(90, ge=0, le=101)
    """Tasks of this priority or higher go on the list first, before the segment shares (101: none)."""
    important_bonus: int = Field(10, ge=0, le=100)
    """Score points for a task whose client is in an important capital x turnover cell."""
    quadrant_bonus: dict[Quadrant, int] = Field(
        default_factory=lambda: _quadrant_bonus())
    """Score points per current x future value quadrant of the task's client (others: 0)."""
    advisor_minutes: int = Field(0, ge=0)
    """Minutes of calls per advisor and day; > 0 puts the segment budget in minutes, 0 in task slots."""
    default_task_minutes: int = Field(10, ge=1)
    """Minutes a call task takes unless task_minutes names its rule."""
    task_minutes: dict[str, int] = Field(default_factory=dict)
    """Minutes per rule id, e.g. {core_monthly_report: 30, dormant_phone_visit: 20}."""

    @model_validator(mode="after")
    def _sum(self) -> CallListConfig:
        total = sum(g.share for g in self.budget)
        if total > 1.0 + 1e-9:
            raise ValueError(f"budget shares add up to {total:.2f}; they must not exceed 1")
        seen = [s for g in self.budget for s in g.segments]
        if len(seen) != len(set(seen)):
            raise ValueError("a segment may appear in one budget group only")
        return self


class SegmentPlaybook(_M):
    marketing: bool = True
    """False: only service notices reach clients of this segment."""
    rules: tuple[str, ...] = ("*",)
    """Marketing rules that apply (rule ids, or `*` for all)."""
    channels: tuple[Channel, ...] = ("phone", "sms", "email", "im")
    cadence_days: int = Field(0, ge=0)
    """At most one marketing firing per this many days (0: no limit beyond each rule's cooldown)."""
    exceptions: tuple[str, ...] = ()
    """Marketing rules that reach the segment even when `marketing` is false or `rules` does not list them."""


def _default_playbooks() -> dict[SegmentName, SegmentPlaybook]:
    return {
        "core": SegmentPlaybook(channels=("phone", "email", "im", "sms"), cadence_days=7),
        "maintenance": SegmentPlaybook(channels=("sms", "email", "im", "phone"), cadence_days=30),
        "dormant": SegmentPlaybook(channels=("phone", "sms", "im"), cadence_days=14),
        "settled": SegmentPlaybook(channels=("sms", "email", "im"), cadence_days=30,
                                   rules=("birthday_greeting", "festival_greeting")),
        "dead": SegmentPlaybook(marketing=False, rules=(), channels=(), exceptions=("winback_call",)),
    }


class ReviewConfig(_M):
    cycle: Literal["weekly", "monthly", "quarterly"] = "weekly"
    """Cycle of the effect review (`steward report effect`)."""


def _give_up_channels() -> dict[Quadrant, tuple[Channel, ...]]:
    return {"give_up": ("sms", "email", "im")}


class ServicingConfig(_M):
    capital_turnover: CapitalTurnoverConfig = CapitalTurnoverConfig()
    value_quadrant: ValueQuadrantConfig = ValueQuadrantConfig()
    life_stage_ages: tuple[int, int, int, int, int] = (25, 35, 45, 55, 65)
    """Last age of growth, youth, adult, mature and stable; older is retired."""
    risk: RiskConfig = RiskConfig()
    call_list: CallListConfig = CallListConfig()
    playbooks: dict[SegmentName, SegmentPlaybook] = Field(default_factory=_default_playbooks)
    important_cells: tuple[Cell, ...] = DEFAULT_IMPORTANT_CELLS
    """Capital x turnover cells whose clients are important (fact `important_cell`)."""
    quadrant_channels: dict[Quadrant, tuple[Channel, ...]] = Field(
        default_factory=lambda: _give_up_channels())
    """Channels marketing may use per value quadrant (give-up clients: self-service, no advisor's call)."""
    quadrant_exempt_tags: tuple[str, ...] = ("retention", "activation")
    """Rules with one of these tags ignore quadrant_channels: keeping and waking clients is not developing them."""
    activation_sequence: tuple[str, ...] = ("dormant_activation", "dormant_research_share", "dormant_phone_visit")
    """Rule ids of the dormant activation steps, in order (fact `activation_step`)."""
    review: ReviewConfig = ReviewConfig()
    winback_rules: tuple[str, ...] = ("winback_call",)
    """Rule ids whose firings count as win-back attempts (fact `winback_attempts`)."""

    @model_validator(mode="after")
    def _ages(self) -> ServicingConfig:
        if list(self.life_stage_ages) != sorted(set(self.life_stage_ages)):
            raise ValueError(f"life_stage_ages must rise strictly, got {list(self.life_stage_ages)}")
        return self
