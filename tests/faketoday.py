"""Run the suite as if the machine's calendar said another day: `STEWARD_FAKE_TODAY=2027-07-15`.

The conftest calls `start()` for the whole session: time-machine moves the process's wall
clock (datetime.now, date.today, time.time) by whole days to that date, keeping the real
time of day, and lets it tick. The shift is exported as STEWARD_FAKE_SHIFT_DAYS so that
xdist workers and the subprocesses tests start see the same calendar: `python_m(module)`
gives the command line that runs `module` under the same shift (`python -m tests.faketoday
module args...`), or plain `python -m module` when the clock is not faked.

Not faked: PostgreSQL's server-side now() (Steward never reads it) and time.monotonic()
(durations and timeouts, which do not depend on the date).
"""

from __future__ import annotations

import os
import runpy
import sys
from datetime import date, datetime, timedelta, timezone
from typing import Any

TODAY_VAR = "STEWARD_FAKE_TODAY"
SHIFT_VAR = "STEWARD_FAKE_SHIFT_DAYS"

_travel: Any = None


def shift_days() -> int | None:
    """Days to add to the machine's clock, or None when the clock is not faked."""
    shift = os.environ.get(SHIFT_VAR)
    if shift:
        return int(shift)
    today = os.environ.get(TODAY_VAR)
    if not today:
        return None
    n = (date.fromisoformat(today) - datetime.now(timezone.utc).date()).days
    os.environ[SHIFT_VAR] = str(n)  # fixed once: workers and subprocesses inherit it
    return n


def start() -> str | None:
    """Start travelling if asked to; returns a line describing the fake clock, or None."""
    global _travel
    n = shift_days()
    if n is None or _travel is not None:
        return None
    import time_machine

    _travel = time_machine.travel(datetime.now(timezone.utc) + timedelta(days=n), tick=True)
    _travel.start()
    return f"fake today: {datetime.now(timezone.utc).date()} (machine clock shifted by {n:+d} days, ticking)"


def stop() -> None:
    global _travel
    if _travel is not None:
        _travel.stop()
        _travel = None


def python_m(module: str) -> list[str]:
    """`python -m module` for a subprocess, under the same fake clock as this process if there is one."""
    if shift_days() is None:
        return [sys.executable, "-m", module]
    return [sys.executable, "-m", "tests.faketoday", module]


def main() -> None:
    """`python -m tests.faketoday MODULE ARGS...`: run MODULE as __main__ on the shifted clock."""
    module = sys.argv[1]
    start()
    sys.argv = [module, *sys.argv[2:]]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        stop()


if __name__ == "__main__":
    main()
