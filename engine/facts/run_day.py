"""Is a day fit to evaluate? The trading calendar must know it as open, and the data should reach it.

`steward run` refuses a closed day or one past the calendar's coverage (unless `--force`) and
warns when the newest positions are older than the day, so a run on a Sunday or on a date
typed a year ahead does not quietly evaluate stale data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from engine.facts import trading_calendar
from engine.models import CashBalance, Holding

_H = Holding.__table__  # type: ignore[attr-defined]
_C = CashBalance.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class DayCheck:
    refusal: str | None
    """Why the day should not be evaluated, or None."""
    warnings: tuple[str, ...] = ()


def newest_data_day(conn: Connection) -> date | None:
    days = [conn.execute(select(func.max(t.c.as_of))).scalar() for t in (_H, _C)]
    known = [d for d in days if d is not None]
    return max(known) if known else None


def _refusal(conn: Connection, exchange: str, day: date) -> str | None:
    state = trading_calendar.day_state(conn, exchange, day)
    if state is True:
        return None
    if state is None:
        first, last = trading_calendar.coverage(conn, exchange)
        reach = f"covers {first} .. {last}" if last else "is empty"
        return (f"{day} is outside the {exchange} trading calendar (it {reach}): add the exchange's published "
                "closures with `steward calendar import FILE` (or `steward calendar set`), or pass --force to run anyway")
    try:
        after = f"; the next trading day is {trading_calendar.next_trading_day(conn, exchange, day)}"
    except trading_calendar.CalendarGap:
        after = ""
    return f"{day} ({day:%A}) is not a trading day on {exchange}{after}. Pass --force to evaluate it anyway"


def check(conn: Connection, exchange: str, day: date) -> DayCheck:
    warnings = []
    newest = newest_data_day(conn)
    if newest is not None and newest < day:
        warnings.append(f"the newest positions and balances are from {newest}, older than the evaluation day {day}: "
                        "facts are computed on stale data; import the day's files first (`steward import`)")
    return DayCheck(_refusal(conn, exchange, day), tuple(warnings))
