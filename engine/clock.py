"""The one clock: every "now" in Steward comes from `clock.now()`.

Production runs on `SystemClock` (the machine's clock, in UTC). Entry points and test
fixtures may `install` another clock for the whole process, e.g. a `FixedClock` that
stands still until it is set or advanced, so that nothing depends on the day it runs.

    from engine import clock
    stamp = clock.now()                     # aware datetime, UTC on the system clock

    with clock.using(clock.FixedClock(datetime(2026, 11, 20, 1, tzinfo=timezone.utc))) as c:
        ...
        c.advance(minutes=5)

This module imports nothing from Steward, so any module may import it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant as a timezone-aware datetime."""
        ...


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a clock needs a timezone-aware datetime, got {at!r}")
    return at


class SystemClock:
    """The machine's clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def __repr__(self) -> str:
        return "SystemClock()"


class FixedClock:
    """A clock that stands still at `at` until it is `set` or `advance`d (thread-safe)."""

    def __init__(self, at: datetime) -> None:
        self._at = _aware(at)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._at

    def set(self, at: datetime) -> datetime:
        with self._lock:
            self._at = _aware(at)
            return self._at

    def advance(self, delta: timedelta | None = None, *, days: float = 0, hours: float = 0, minutes: float = 0,
                seconds: float = 0) -> datetime:
        """Move forward by `delta` plus the keyword amounts; returns the new instant."""
        step = (delta or timedelta()) + timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
        with self._lock:
            self._at += step
            return self._at

    def __repr__(self) -> str:
        return f"FixedClock({self._at.isoformat()})"


SYSTEM = SystemClock()
_current: Clock = SYSTEM


def now() -> datetime:
    """The current instant on the installed clock (aware)."""
    return _current.now()


def current() -> Clock:
    return _current


def install(c: Clock) -> Clock:
    """Make `c` the process-wide clock; returns the clock it replaces."""
    global _current
    previous, _current = _current, c
    return previous


@contextmanager
def using(c: Clock) -> Iterator[Clock]:
    """Install `c` for the duration of the block, then put the previous clock back."""
    previous = install(c)
    try:
        yield c
    finally:
        install(previous)


__all__ = ["SYSTEM", "Clock", "FixedClock", "SystemClock", "current", "install", "now", "using"]
