"""Trading days, kept in the `trading_day` table and seeded from exchange-calendars.

Only this module imports exchange_calendars. An administrator can override a
day (`source = 'admin'`) for closures the package does not know yet; syncing
never overwrites an admin row.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from engine.errors import StewardError
from engine.models import TradingDay

_T = TradingDay.__table__  # type: ignore[attr-defined]


class CalendarGap(StewardError):
    pass


def exchange_sessions(exchange: str, start: date, end: date) -> list[date]:
    import exchange_calendars as xcals  # slow import: only when syncing

    cal = xcals.get_calendar(exchange)
    first, last = cal.first_session.date(), cal.last_session.date()
    lo, hi = max(start, first), min(end, last)
    if lo > hi:
        return []
    return [d.date() for d in cal.sessions_in_range(lo.isoformat(), hi.isoformat())]


def known_range(exchange: str) -> tuple[date, date]:
    import exchange_calendars as xcals

    cal = xcals.get_calendar(exchange)
    return cal.first_session.date(), cal.last_session.date()


def sync(conn: Connection, exchange: str, start: date, end: date) -> int:
    """Write every calendar day in [start, end] that exchange-calendars knows; keep admin rows."""
    sessions = set(exchange_sessions(exchange, start, end))
    first, last = known_range(exchange)
    lo, hi = max(start, first), min(end, last)
    admin = {
        r.day
        for r in conn.execute(
            select(_T.c.day).where(_T.c.exchange == exchange, _T.c.source == "admin", _T.c.day.between(lo, hi))
        )
    }
    conn.execute(_T.delete().where(_T.c.exchange == exchange, _T.c.source != "admin", _T.c.day.between(lo, hi)))
    rows = []
    d = lo
    while d <= hi:
        if d not in admin:
            rows.append({"exchange": exchange, "day": d, "source": "exchange-calendars", "is_open": d in sessions})
        d += timedelta(days=1)
    if rows:
        conn.execute(_T.insert(), rows)
    return len(rows)


def set_day(conn: Connection, exchange: str, day: date, is_open: bool) -> None:
    conn.execute(_T.delete().where(_T.c.exchange == exchange, _T.c.day == day))
    conn.execute(_T.insert(), [{"exchange": exchange, "day": day, "source": "admin", "is_open": is_open}])


def coverage(conn: Connection, exchange: str) -> tuple[date | None, date | None]:
    row = conn.execute(select(func.min(_T.c.day), func.max(_T.c.day)).where(_T.c.exchange == exchange)).one()
    return row[0], row[1]


def ensure(conn: Connection, exchange: str, start: date, end: date) -> None:
    """Seed the table for [start, end] when it does not cover that range yet."""
    lo, hi = coverage(conn, exchange)
    if lo is None or hi is None or lo > start or hi < end:
        first, last = known_range(exchange)
        sync(conn, exchange, min(start, lo or start), max(end, hi or end))


def is_trading_day(conn: Connection, exchange: str, day: date) -> bool:
    row = conn.execute(select(_T.c.is_open).where(_T.c.exchange == exchange, _T.c.day == day)).first()
    if row is None:
        raise CalendarGap(f"trading calendar for {exchange} has no entry for {day}: run 'steward calendar sync'")
    return bool(row[0])


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
