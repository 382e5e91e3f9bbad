"""Festival dates from the Chinese lunar calendar (lunardate), never a table of years.

Only this module imports lunardate. Spring Festival is lunar 1/1, Mid-Autumn
lunar 8/15; lunardate covers 1900-2099.
"""

from __future__ import annotations

from datetime import date, timedelta

from lunardate import LunarDate

FESTIVALS: dict[str, tuple[int, int]] = {"spring_festival": (1, 1), "mid_autumn": (8, 15)}
"""Festival -> (lunar month, lunar day)."""


def festival_date(name: str, year: int) -> date:
    """The Gregorian date of a festival in a Gregorian year."""
    month, day = FESTIVALS[name]
    # The lunar year starting in Jan/Feb of `year` holds both festivals inside `year`.
    return LunarDate(year, month, day).to_solar_date()  # type: ignore[no-any-return]


def next_festival(on: date) -> tuple[str, date]:
    """The first festival on or after `on` (name, date)."""
    found = [(festival_date(n, y), n) for y in (on.year, on.year + 1) for n in FESTIVALS]
    d, n = min((d, n) for d, n in found if d >= on)
    return n, d


def due_before(on: date, next_session: date) -> str | None:
    """A festival falling on `on` or before the next trading session: greet today.

    Markets close for both festivals, so the greeting goes out on the last
    trading day on or before the festival.
    """
    name, d = next_festival(on)
    return name if d < next_session or d == on else None


def next_birthday(born: date, on: date) -> date:
    """Next birthday on or after `on`; 29 February is celebrated on 28 February in common years."""
    for year in (on.year, on.year + 1):
        try:
            b = born.replace(year=year)
        except ValueError:
            b = date(year, 2, 28)
        if b >= on:
            return b
    raise AssertionError("unreachable")


def weekday_after(on: date) -> date:
    """Fallback next session when no calendar covers the date: the next weekday."""
    d = on + timedelta(days=1)
    while d.weekday() >= 5:
        d += timedelta(days=1)
    return d
