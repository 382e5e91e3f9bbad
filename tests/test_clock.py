"""One clock: engine.clock's behaviour, and a guard that nothing else reads the wall clock."""

from __future__ import annotations

import ast
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine import clock

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2027, 7, 15, 1, 30, tzinfo=timezone.utc)

WALL_CLOCK_READERS = {
    ("engine/clock.py", "now"),  # SystemClock.now: the one production read
    ("tests/faketoday.py", "shift_days"),  # moves the machine's clock, so it reads it
    ("tests/faketoday.py", "start"),
    ("tests/conftest.py", "pytest_report_header"),
    ("tests/test_scheduler.py", "_scheduler_now"),  # APScheduler takes no injected clock
    ("tests/test_scheduler_leader.py", "_machine_now"),  # nor do the scheduler processes
}
"""(file, function) pairs allowed to read the wall clock; everything else asks engine.clock."""


def test_fixed_clock_stands_still_until_set_or_advanced() -> None:
    c = clock.FixedClock(T0)
    assert c.now() == c.now() == T0
    assert c.advance(minutes=5) == T0 + timedelta(minutes=5)
    assert c.advance(timedelta(days=1), seconds=1) == T0 + timedelta(days=1, minutes=5, seconds=1)
    assert c.set(T0) == c.now() == T0
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.FixedClock(datetime(2027, 7, 15))
    with pytest.raises(ValueError, match="timezone-aware"):
        c.set(datetime(2027, 7, 15))


def test_installed_clock_is_the_one_everyone_reads_and_using_puts_it_back() -> None:
    outer = clock.current()
    with clock.using(clock.FixedClock(T0)) as c:
        assert clock.current() is c and clock.now() == T0
    assert clock.current() is outer
    previous = clock.install(clock.SYSTEM)
    try:
        now = clock.now()
        assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    finally:
        clock.install(previous)


def test_the_tests_run_on_the_fixed_test_clock(clock: clock.FixedClock) -> None:
    from tests.conftest import TEST_NOW

    assert clock.now() == TEST_NOW
    clock.advance(hours=1)
    from engine import clock as engine_clock

    assert engine_clock.now() == TEST_NOW + timedelta(hours=1)


def _wall_clock_reads(path: Path) -> list[tuple[str, int]]:
    """(enclosing function, line) of each datetime.now/utcnow/today, date.today, time.time(_ns) call."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, func: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                owner = child.func.value
                owner_name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) else ""
                if (owner_name, child.func.attr) in {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"),
                                                     ("date", "today"), ("time", "time"), ("time", "time_ns")}:
                    found.append((func, child.lineno))
            visit(child, name)

    visit(tree, "<module>")
    return found


def test_nothing_reads_the_wall_clock_but_engine_clock() -> None:
    offenders = []
    for folder in ("engine", "scheduler", "tests", "bench"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            offenders += [f"{rel}:{line} in {func}()" for func, line in _wall_clock_reads(path)
                          if (rel, func) not in WALL_CLOCK_READERS]
    assert not offenders, "read the time from engine.clock (tests: the `clock` fixture), not the wall clock:\n" + "\n".join(offenders)
