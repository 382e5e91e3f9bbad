"""Trading days, kept in the `trading_day` table and seeded from exchange-calendars.

Only this module imports exchange_calendars. Days also come from an exchange's published
closures (`source = 'import'`, engine.facts.calendar_file) and from an administrator
(`source = 'admin'`); syncing never overwrites either. `calendar.exchange` may be any name
exchange-calendars accepts, or one of SHARED_CALENDARS (XSHE trades on XSHG's days).
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from engine.errors import StewardError, did_you_mean
from engine.models import TradingDay

_T = TradingDay.__table__  # type: ignore[attr-defined]


KEPT_SOURCES = ("admin", "import")
"""Sources `sync` never overwrites: set by hand, or imported from an exchange's published closures."""
SHARED_CALENDARS = {"XSHE": "XSHG", "SZSE": "XSHG"}
"""Exchanges exchange-calendars has no calendar of its own for, and whose days they share:
the Shenzhen Stock Exchange closes on exactly the Shanghai Stock Exchange's holidays."""


class CalendarGap(StewardError):
    pass


class UnknownCalendar(StewardError):
    pass


@lru_cache(maxsize=8)
def _calendar(exchange: str) -> Any:
    import exchange_calendars as xcals  # slow import: only when syncing

    name = SHARED_CALENDARS.get(exchange.upper(), exchange)
    try:
        return xcals.get_calendar(name)
    except xcals.errors.InvalidCalendarName:
        names = [*xcals.get_calendar_names(include_aliases=True), *SHARED_CALENDARS]
        raise UnknownCalendar(
            f"calendar.exchange: unknown trading calendar {exchange!r}{did_you_mean(exchange.upper(), names)}; "
            f"use an exchange-calendars name (XSHG, XSHE, XHKG, XNYS, ...: `python -c \"import exchange_calendars as x; "
            f"print(x.get_calendar_names())\"`)") from None


def source_calendar(exchange: str) -> str:
    """The exchange-calendars calendar whose sessions `exchange` uses."""
    return str(_calendar(exchange).name)


def exchange_sessions(exchange: str, start: date, end: date) -> list[date]:
    cal = _calendar(exchange)
    first, last = cal.first_session.date(), cal.last_session.date()
    lo, hi = max(start, first), min(end, last)
    if lo > hi:
        return []
    return [d.date() for d in cal.sessions_in_range(lo.isoformat(), hi.isoformat())]


def known_range(exchange: str) -> tuple[date, date]:
    cal = _calendar(exchange)
    return cal.first_session.date(), cal.last_session.date()


def sync(conn: Connection, exchange: str, start: date, end: date) -> int:
    """Write every calendar day in [start, end] that exchange-calendars knows; keep admin and imported rows."""
    sessions = set(exchange_sessions(exchange, start, end))
    first, last = known_range(exchange)
    lo, hi = max(start, first), min(end, last)
    kept = {
        r.day
        for r in conn.execute(
            select(_T.c.day).where(_T.c.exchange == exchange, _T.c.source.in_(KEPT_SOURCES), _T.c.day.between(lo, hi))
        )
    }
    conn.execute(_T.delete().where(_T.c.exchange == exchange, _T.c.source.not_in(KEPT_SOURCES), _T.c.day.between(lo, hi)))
    rows = []
    d = lo
    while d <= hi:
        if d not in kept:
            rows.append({"exchange": exchange, "day": d, "source": "exchange-calendars", "is_open": d in sessions})
        d += timedelta(days=1)
    if rows:
        conn.execute(_T.insert(), rows)
    return len(rows)


def set_day(conn: Connection, exchange: str, day: date, is_open: bool, source: str = "admin") -> None:
    conn.execute(_T.delete().where(_T.c.exchange == exchange, _T.c.day == day))
    conn.execute(_T.insert(), [{"exchange": exchange, "day": day, "source": source, "is_open": is_open}])


def sources(conn: Connection, exchange: str) -> list[Any]:
    """How far each source reaches in the table: (source, first, last, days), earliest first."""
    q = (select(_T.c.source, func.min(_T.c.day).label("first"), func.max(_T.c.day).label("last"),
                func.count().label("days"))
         .where(_T.c.exchange == exchange).group_by(_T.c.source).order_by(func.min(_T.c.day)))
    return list(conn.execute(q))


def day_state(conn: Connection, exchange: str, day: date) -> bool | None:
    """True open, False closed, None when the table does not know the day."""
    row = conn.execute(select(_T.c.is_open).where(_T.c.exchange == exchange, _T.c.day == day)).first()
    return None if row is None else bool(row[0])


def coverage(conn: Connection, exchange: str) -> tuple[date | None, date | None]:
    row = conn.execute(select(func.min(_T.c.day), func.max(_T.c.day)).where(_T.c.exchange == exchange)).one()
    return row[0], row[1]


def ensure(conn: Connection, exchange: str, start: date, end: date) -> None:
    """Seed the table for [start, end] when it does not cover that range yet."""
    lo, hi = coverage(conn, exchange)
    if lo is None or hi is None or lo > start or hi < end:
        sync(conn, exchange, min(start, lo or start), max(end, hi or end))


def is_trading_day(conn: Connection, exchange: str, day: date) -> bool:
    state = day_state(conn, exchange, day)
    if state is None:
        raise CalendarGap(f"trading calendar for {exchange} has no entry for {day}: run 'steward calendar sync', "
                          "or add the exchange's published closures with 'steward calendar import FILE'")
    return state


def trading_days_back(conn: Connection, exchange: str, as_of: date, n: int) -> list[date]:
    """The n most recent trading days on or before as_of, oldest first."""
    days = [
        r[0]
        for r in conn.execute(
            select(_T.c.day)
            .where(_T.c.exchange == exchange, _T.c.is_open.is_(True), _T.c.day <= as_of)
            .order_by(_T.c.day.desc())
            .limit(n)
        )
    ]
    if len(days) < n:
        raise CalendarGap(
            f"trading calendar for {exchange} has {len(days)} trading days up to {as_of}, {n} needed: "
            "run 'steward calendar sync --from YYYY-MM-DD'"
        )
    return sorted(days)


def next_trading_day(conn: Connection, exchange: str, after: date) -> date:
    row = conn.execute(
        select(func.min(_T.c.day)).where(_T.c.exchange == exchange, _T.c.is_open.is_(True), _T.c.day > after)
    ).one()
    if row[0] is None:
        raise CalendarGap(f"trading calendar for {exchange} ends before the next trading day after {after}")
    return row[0]  # type: ignore[no-any-return]


def days(conn: Connection, exchange: str, start: date, end: date) -> list[Any]:
    """The table's rows for [start, end] (day, is_open, source), in order."""
    q = select(_T.c.day, _T.c.is_open, _T.c.source).where(_T.c.exchange == exchange, _T.c.day.between(start, end))
    return list(conn.execute(q.order_by(_T.c.day)))
