"""Segment models beyond the value x activity grid (engine.facts.base.segment_of).

Pure functions over facts and `servicing:` config, so the same code serves the
fact provider, rule tests and the call list. DOMAIN.md gives the shapes; the
thresholds are configuration.
"""

from __future__ import annotations

from engine.config.servicing import CapitalTurnoverConfig, ValueQuadrantConfig

SEGMENT_RANK = {"core": 4, "maintenance": 3, "dormant": 2, "settled": 1, "dead": 0}
"""Higher is more valuable; a fall in rank is a downgrade."""
LIFE_STAGES = ("growth", "youth", "adult", "mature", "stable", "retired")
QUADRANTS = ("gold", "rising_star", "maintain", "give_up")


def capital_size(market_value: float, cfg: CapitalTurnoverConfig) -> str:
    if market_value >= cfg.capital_large:
        return "large"
    return "medium" if market_value >= cfg.capital_medium else "small"


def turnover_style(volume: float, market_value: float, cfg: CapitalTurnoverConfig) -> str:
    """static / stable / short_term by turnover = volume over the window / market value."""
    if market_value <= 0:
        return "short_term" if volume > 0 else "static"
    turnover = volume / market_value
    if turnover >= cfg.turnover_short_term:
        return "short_term"
    return "stable" if turnover >= cfg.turnover_stable else "static"


def capital_turnover(market_value: float, volume: float, cfg: CapitalTurnoverConfig) -> str:
    """One of nine cells, e.g. `large_short_term` (the most valuable) or `small_static`."""
    return f"{capital_size(market_value, cfg)}_{turnover_style(volume, market_value, cfg)}"


def value_quadrant(market_value: float, volume: float, annual_income: float | None, net_flow: float,
                   age: int | None, cfg: ValueQuadrantConfig) -> str:
    """gold (high now, high later), rising_star (low, high), maintain (high, low), give_up (low, low)."""
    current = market_value >= cfg.current_value_min or volume >= cfg.current_volume_min
    future = ((annual_income or 0) >= cfg.future_income_min or net_flow >= cfg.future_inflow_min
              or (age is not None and age <= cfg.future_age_max and net_flow > 0))
    if current:
        return "gold" if future else "maintain"
    return "rising_star" if future else "give_up"


def life_stage(age: int | None, last_ages: tuple[int, ...]) -> str | None:
    if age is None:
        return None
    for stage, last in zip(LIFE_STAGES, last_ages):
        if age <= last:
            return stage
    return LIFE_STAGES[-1]


def downgraded(previous: str | None, current: str | None) -> bool:
    if previous is None or current is None:
        return False
    return SEGMENT_RANK[current] < SEGMENT_RANK[previous]
