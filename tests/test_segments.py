"""Segment models, previous_segment, festivals and birthdays."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import Engine

from engine.facts import festivals
from engine.facts import segments
from engine.facts import trading_calendar
from engine.config.base import Config
from engine.facts.base import iter_batches
from engine.models import Holding, Trade
from engine.config.servicing import CapitalTurnoverConfig, ValueQuadrantConfig
from tests import book

CT = CapitalTurnoverConfig()
VQ = ValueQuadrantConfig()


@pytest.mark.parametrize(("mv", "vol", "cell"), [
    (1_000_000, 1_000_000, "large_short_term"), (999_999, 99_999, "medium_static"),
    (100_000, 10_000, "medium_stable"), (99_999, 200_000, "small_short_term"),
    (0, 0, "small_static"), (0, 5, "small_short_term"), (2_000_000, 200_000, "large_stable"),
])
def test_capital_turnover_cells(mv: float, vol: float, cell: str) -> None:
    assert segments.capital_turnover(mv, vol, CT) == cell


def test_important_cells_are_configuration() -> None:
    from engine.config.servicing import ServicingConfig
    cells = ServicingConfig().important_cells
    assert {"large_short_term", "medium_stable", "medium_static", "small_short_term"} <= set(cells)
    assert "small_static" not in cells and "small_stable" not in cells
    assert ServicingConfig.model_validate({"important_cells": ["large_short_term"]}).important_cells == ("large_short_term",)
    with pytest.raises(ValueError, match="important_cells"):
        ServicingConfig.model_validate({"important_cells": ["huge_short_term"]})


@pytest.mark.parametrize(("mv", "vol", "income", "flow", "age", "quadrant"), [
    (600_000, 0, 400_000, 0, 60, "gold"), (600_000, 0, None, 0, 60, "maintain"),
    (10_000, 0, None, 150_000, 60, "rising_star"), (10_000, 0, None, 1, 30, "rising_star"),
    (10_000, 0, None, 0, 30, "give_up"), (10_000, 2_000_000, None, -5, None, "maintain"),
])
def test_value_quadrant(mv: float, vol: float, income: float | None, flow: float, age: int | None, quadrant: str) -> None:
    assert segments.value_quadrant(mv, vol, income, flow, age, VQ) == quadrant


@pytest.mark.parametrize(("age", "stage"), [(0, "growth"), (25, "growth"), (26, "youth"), (35, "youth"), (36, "adult"),
                                            (45, "adult"), (46, "mature"), (55, "mature"), (56, "stable"),
                                            (65, "stable"), (66, "retired"), (None, None)])
def test_life_stage_edges(age: int | None, stage: str | None) -> None:
    assert segments.life_stage(age, (25, 35, 45, 55, 65)) == stage


def test_downgrade_order() -> None:
    assert segments.downgraded("core", "maintenance") and segments.downgraded("dormant", "settled")
    assert not segments.downgraded("maintenance", "core") and not segments.downgraded(None, "dead")


@pytest.mark.parametrize(("year", "spring", "autumn"), [
    (2025, date(2025, 1, 29), date(2025, 10, 6)), (2026, date(2026, 2, 17), date(2026, 9, 25)),
    (2027, date(2027, 2, 6), date(2027, 9, 15)), (2030, date(2030, 2, 3), date(2030, 9, 12)),
])
def test_festival_dates_come_from_the_lunar_calendar(year: int, spring: date, autumn: date) -> None:
    assert festivals.festival_date("spring_festival", year) == spring
    assert festivals.festival_date("mid_autumn", year) == autumn


def test_festival_greeted_on_the_last_session_before() -> None:
    # Spring Festival 2027 is Saturday 6 February; the market reopens after the holiday week.
    assert festivals.due_before(date(2027, 2, 5), date(2027, 2, 15)) == "spring_festival"
    assert festivals.due_before(date(2027, 2, 4), date(2027, 2, 5)) is None


def test_leap_day_birthday() -> None:
    assert festivals.next_birthday(date(1980, 2, 29), date(2027, 1, 1)) == date(2027, 2, 28)
    assert festivals.next_birthday(date(1980, 2, 29), date(2028, 1, 1)) == date(2028, 2, 29)
    assert festivals.next_birthday(date(1980, 5, 17), date(2026, 5, 18)) == date(2027, 5, 17)


def _facts(eng: Engine, cfg: Config, as_of: date) -> dict[str, dict]:  # type: ignore[type-arg]
    with eng.connect() as c:
        return {f["client_id"]: f for b in iter_batches(c, cfg, as_of, batch_size=2) for f in b}


def test_previous_segment_from_the_previous_day(db: Engine, cfg: Config) -> None:
    book.build(db)
    f = _facts(db, cfg, book.AS_OF)
    # C003 held nothing the day before (no snapshot) but traded: settled then, maintenance now
    assert f["C003"]["previous_segment"] == "settled" and f["C003"]["segment"] == "maintenance"
    assert f["C003"]["segment_downgraded"] is False
    assert f["C001"]["previous_segment"] == "dormant"  # new accounts start dormant
    assert f["C003"]["capital_turnover"] == "medium_stable" and f["C001"]["life_stage"] == "mature"


def test_segment_downgrade_from_data(db: Engine, cfg: Config) -> None:
    book.build(db)
    prev = book.AS_OF - timedelta(days=1)  # Thursday, the previous trading day
    with db.begin() as c:
        first = trading_calendar.trading_days_back(c, "XSHG", prev, cfg.evaluation.activity_days)[0]
        # the day before, C002 held 50,000 and had a trade inside that day's window only: maintenance
        c.execute(Holding.__table__.insert(), [  # type: ignore[attr-defined]
            {"as_of": prev, "client_id": "C002", "symbol": "601398", "quantity": 10000, "cost": 6.0, "close_price": 5.0}])
        c.execute(Trade.__table__.insert(), [  # type: ignore[attr-defined]
            {"id": "TX", "client_id": "C002", "trade_date": first, "symbol": "601398", "side": "buy",
             "quantity": 4000, "price": 5.0, "amount": 20000.0}])
    f = _facts(db, cfg, book.AS_OF)
    assert f["C002"]["previous_segment"] == "maintenance" and f["C002"]["segment"] == "dormant"
    assert f["C002"]["segment_downgraded"] is True
