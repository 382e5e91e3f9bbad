"""Trading calendar commands, the coverage warning, and contact windows in a DST-free zone."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from engine.dispatch import contact_policy
from engine.facts import trading_calendar
from engine.cli.app import app
from engine.config.base import Config
from scheduler.jobs import coverage_warning
from tests.identity_helpers import cli_token

runner = CliRunner()


def _cli(eng: Engine, *args: str) -> tuple[int, str]:
    url = eng.url.render_as_string(hide_password=False)
    r = runner.invoke(app, ["--database", url, *args])
    return r.exit_code, r.output


def test_exchange_calendars_knows_spring_festival_2026(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as conn:
        trading_calendar.sync(conn, "XSHG", date(2026, 2, 10), date(2026, 2, 28))
        closed = [r.day for r in trading_calendar.days(conn, "XSHG", date(2026, 2, 10), date(2026, 2, 28)) if not r.is_open]
        assert trading_calendar.next_trading_day(conn, "XSHG", date(2026, 2, 13)) == date(2026, 2, 24)
    assert {date(2026, 2, d) for d in range(16, 24)} <= set(closed)


def test_coverage_warning_is_loud_and_says_how_to_add_the_year(sqlite_engine: Engine, cfg: Config) -> None:
    with sqlite_engine.begin() as conn:
        trading_calendar.sync(conn, "XSHG", date(2026, 11, 1), date(2027, 3, 1))  # the package stops at 2026-12-31
    assert coverage_warning(sqlite_engine, cfg, date(2026, 11, 22)) is None  # 39 days left
    msg = coverage_warning(sqlite_engine, cfg, date(2026, 12, 5))
    assert msg is not None and msg.startswith("TRADING CALENDAR GAP") and "ends on 2026-12-31" in msg
    assert "steward calendar set 2027-01-01 --through YYYY-12-31 --open --weekdays" in msg


def test_calendar_set_adds_a_year_by_hand_and_sync_keeps_it(sqlite_engine: Engine, cfg: Config,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = _cli(sqlite_engine, "calendar", "set", "2027-01-01", "--open")
    assert code == 2 and "steward login" in out  # a person's decision: signed in, operator role
    monkeypatch.setenv("STEWARD_TOKEN", cli_token(sqlite_engine, "op", ["operator"]))
    code, out = _cli(sqlite_engine, "calendar", "set", "2027-01-01", "--through", "2027-01-31", "--open", "--weekdays")
    assert code == 0 and "31 day(s)" in out
    code, _ = _cli(sqlite_engine, "calendar", "set", "2027-01-01", "--closed")  # New Year's Day
    assert code == 0
    with sqlite_engine.begin() as conn:
        trading_calendar.sync(conn, "XSHG", date(2026, 12, 1), date(2027, 1, 31))
        assert not trading_calendar.is_trading_day(conn, "XSHG", date(2027, 1, 1))
        assert not trading_calendar.is_trading_day(conn, "XSHG", date(2027, 1, 2))  # a Saturday
        assert trading_calendar.is_trading_day(conn, "XSHG", date(2027, 1, 4))
        assert trading_calendar.coverage(conn, "XSHG")[1] == date(2027, 1, 31)
    code, out = _cli(sqlite_engine, "calendar", "show", "--from", "2027-01-01", "--days", "4")
    assert code == 0 and "admin" in out and "closed" in out


def test_calendar_set_errors_say_what_to_do(sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_TOKEN", cli_token(sqlite_engine, "op", ["operator"]))
    code, out = _cli(sqlite_engine, "calendar", "set", "2027-01-01")
    assert code == 2 and "say --open or --closed" in out
    code, out = _cli(sqlite_engine, "calendar", "set", "2027-13-01", "--open")
    assert code == 2 and "DATE: expected a date as YYYY-MM-DD, got '2027-13-01'" in out
    code, out = _cli(sqlite_engine, "calendar", "set", "2027-02-01", "--through", "2027-01-01", "--open")
    assert code == 2 and "before" in out


@pytest.mark.parametrize("utc, inside", [
    (datetime(2026, 11, 1, 0, 59, tzinfo=timezone.utc), False),  # 08:59 Shanghai, the day US clocks fall back
    (datetime(2026, 11, 1, 1, 0, tzinfo=timezone.utc), True),    # 09:00
    (datetime(2026, 3, 8, 11, 59, tzinfo=timezone.utc), True),   # 19:59, the day US clocks spring forward
    (datetime(2026, 3, 8, 12, 0, tzinfo=timezone.utc), False),   # 20:00 (end is exclusive)
])
def test_shanghai_window_has_no_dst_shift(cfg: Config, utc: datetime, inside: bool) -> None:
    assert contact_policy.in_window(cfg, utc) is inside


def test_next_window_opening_in_shanghai_is_always_01_utc(cfg: Config) -> None:
    for day in (date(2026, 3, 7), date(2026, 3, 8), date(2026, 10, 31), date(2026, 11, 1)):
        late = datetime(day.year, day.month, day.day, 15, 0, tzinfo=timezone.utc)  # 23:00 Shanghai
        assert contact_policy.next_open(cfg, late).hour == 1


def test_us_window_follows_new_york_dst(cfg: Config) -> None:
    us = cfg.model_copy(update={"timezone": "America/New_York", "regulator_profile": "us"})
    # 08:00 New York is 12:00 UTC in summer (EDT) and 13:00 UTC in winter (EST)
    assert contact_policy.in_window(us, datetime(2026, 10, 30, 12, 0, tzinfo=timezone.utc))
    assert not contact_policy.in_window(us, datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc))
    assert contact_policy.next_open(us, datetime(2026, 10, 31, 3, 0, tzinfo=timezone.utc)) == datetime(2026, 10, 31, 12, 0, tzinfo=timezone.utc)
    assert contact_policy.next_open(us, datetime(2026, 11, 1, 3, 0, tzinfo=timezone.utc)) == datetime(2026, 11, 1, 13, 0, tzinfo=timezone.utc)


def test_window_config_errors_name_the_key(tmp_path: Path) -> None:
    from engine.config.base import load_config
    from engine.errors import SourceErrors

    p = tmp_path / "config.yaml"
    p.write_text("dispatch:\n  contact_windows:\n    cn: {start: '20:00', end: '09:00'}\n  scheduler:\n    nightly_at: '5pm'\n    nightly_att: x\n",
                 encoding="utf-8")
    with pytest.raises(SourceErrors) as e:
        load_config(p)
    text = str(e.value)
    assert "dispatch.contact_windows.cn: end must be later than start" in text
    assert "dispatch.scheduler.nightly_at: expected a local time HH:MM or HH:MM:SS, got '5pm'" in text
    assert "unknown key 'nightly_att' (did you mean 'nightly_at'?)" in text
