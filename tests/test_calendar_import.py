"""Trading calendar past what exchange-calendars knows: reviewed imports, coverage by source,
the scheduler's alert, `steward run` refusing closed or unknown days, every exchange name."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from engine.audit import log as auditlog
from engine.cli.app import app
from engine.compliance import users
from engine.config.base import Config
from engine.errors import SourceErrors
from engine.facts import calendar_file, run_day, trading_calendar
from scheduler import jobs
from tests.identity_helpers import cli_token

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "xshg-2027.csv"
runner = CliRunner()

ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
BEGIN:VEVENT\r
DTSTART;VALUE=DATE:20270101\r
SUMMARY:New Year\r
END:VEVENT\r
BEGIN:VEVENT\r
DTSTART;VALUE=DATE:20270205\r
DTEND;VALUE=DATE:20270213\r
SUMMARY:Spring\r
  Festival\r
END:VEVENT\r
END:VCALENDAR\r
"""


def _cli(eng: Engine, *args: str, config: Path | None = None) -> tuple[int, str]:
    url = eng.url.render_as_string(hide_password=False)
    pre = ["--config", str(config)] if config else []
    r = runner.invoke(app, [*pre, "--database", url, *args])
    return r.exit_code, r.output


def _users(eng: Engine) -> None:
    with eng.begin() as conn:
        users.add(conn, None, "admin", ["admin"])
        users.add(conn, "admin", "au", ["author"])
        users.add(conn, "admin", "rev", ["compliance"])


def test_csv_and_ics_closures_parse_to_the_same_days(tmp_path: Path) -> None:
    ics = tmp_path / "sse.ics"
    ics.write_text(ICS, encoding="utf-8")
    f = calendar_file.read_closures(ics)
    assert (f.first, f.last) == (date(2027, 1, 1), date(2027, 12, 31))
    assert f.closed[date(2027, 2, 5)] == "Spring Festival" and date(2027, 2, 12) in f.closed
    assert date(2027, 2, 13) not in f.closed  # DTEND is exclusive
    csv = calendar_file.read_closures(EXAMPLE)
    assert {d for d in csv.closed if d <= date(2027, 2, 12)} == {d for d in f.closed if d.weekday() < 5}
    assert not csv.is_open(date(2027, 2, 6)) and csv.is_open(date(2027, 2, 15))


def test_bad_closure_files_name_file_line_and_value(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("date,status\n2027-01-01,closed\n2027-13-01,closed\n2027-01-01,closed\n2027-02-01,shut\n", encoding="utf-8")
    with pytest.raises(SourceErrors) as e:
        calendar_file.read_closures(bad)
    text = [str(p) for p in e.value.problems]
    assert any(":3: date: expected a date YYYY-MM-DD, got '2027-13-01'" in t for t in text)
    assert any(":4: date: 2027-01-01 is listed twice" in t for t in text)
    assert any(":5: status: expected closed or open, got 'shut'" in t for t in text)
    ics = tmp_path / "bad.ics"
    ics.write_text("BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20270101T090000Z\nEND:VEVENT\nEND:VCALENDAR\n", encoding="utf-8")
    with pytest.raises(SourceErrors) as e:
        calendar_file.read_closures(ics)
    assert ":3: DTSTART: expected an all-day date" in str(e.value.problems[0])


def test_proposal_and_approval_on_both_databases(db: Engine) -> None:
    from engine.compliance import calendar_review

    _users(db)
    seq = calendar_review.propose(db, "au", "XSHG", calendar_file.read_closures(EXAMPLE), "")
    with pytest.raises(users.PermissionDenied, match="another compliance reviewer"):
        with db.begin() as conn:
            users.grant(conn, "admin", "au", "compliance")
        calendar_review.decide(db, "au", seq, True, "self")
    p, written = calendar_review.decide(db, "rev", seq, True, "ok")
    assert written == 365 and p.status == "pending"
    with db.connect() as conn:
        assert [q.status for q in calendar_review.proposals(conn)] == ["approved"]
        assert not trading_calendar.is_trading_day(conn, "XSHG", date(2027, 2, 5))
        assert auditlog.verify(conn).ok


def test_import_is_a_reviewed_audited_change(sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    db = sqlite_engine
    author, reviewer = cli_token(db, "au", ["author"]), cli_token(db, "rev", ["compliance"])
    code, out = _cli(db, "calendar", "import", str(EXAMPLE), "--note", "SSE notice")
    assert code == 2 and "steward login" in out  # not signed in: nothing proposed
    monkeypatch.setenv("STEWARD_TOKEN", author)
    code, out = _cli(db, "calendar", "import", str(EXAMPLE), "--note", "SSE notice")
    assert code == 0, out
    seq = int(out.split("Calendar proposal ")[1].split(":")[0])
    with db.connect() as conn:
        assert trading_calendar.day_state(conn, "XSHG", date(2027, 3, 1)) is None  # nothing written before approval
    code, out = _cli(db, "calendar", "approve", str(seq), "--comment", "mine")
    assert code == 2 and "may not run `steward calendar approve`" in out, out
    monkeypatch.setenv("STEWARD_TOKEN", reviewer)
    code, out = _cli(db, "calendar", "approve", str(seq), "--comment", "matches the notice")
    assert code == 0 and "365 day(s)" in out, out
    code, out = _cli(db, "calendar", "approve", str(seq), "--comment", "again")
    assert code == 2 and "already approved" in out
    with db.connect() as conn:
        assert trading_calendar.is_trading_day(conn, "XSHG", date(2027, 3, 1))
        assert not trading_calendar.is_trading_day(conn, "XSHG", date(2027, 10, 4))
        names = [r.name for r in conn.execute(select(auditlog.EVENT.c.name).where(auditlog.EVENT.c.name.like("calendar.%")).order_by(auditlog.EVENT.c.seq))]
        assert names == ["calendar.proposed", "calendar.approved"]
        assert auditlog.verify(conn).ok
        trading_calendar.sync(conn, "XSHG", date(2026, 12, 1), date(2027, 12, 31))  # sync keeps imported days
        assert trading_calendar.sources(conn, "XSHG")[-1].source == "import"
    code, out = _cli(db, "calendar", "show", "--from", "2027-10-01", "--days", "3")
    assert code == 0 and "How far each source reaches" in out and "2027-12-31" in out and "2026-12-31" in out


def test_calendar_set_is_audited(sqlite_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STEWARD_TOKEN", cli_token(sqlite_engine, "ops", ["operator"]))
    code, out = _cli(sqlite_engine, "calendar", "set", "2027-01-04", "--closed")
    assert code == 0, out
    with sqlite_engine.connect() as conn:
        row = conn.execute(select(auditlog.EVENT).where(auditlog.EVENT.c.name == "calendar.set")).one()
    assert row.actor == "ops" and auditlog.body_of(row)["data"]["first"] == "2027-01-04"


def test_scheduler_alerts_60_days_ahead_in_log_and_status(sqlite_engine: Engine, cfg: Config,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    with sqlite_engine.begin() as conn:
        trading_calendar.sync(conn, "XSHG", date(2026, 9, 1), date(2026, 12, 31))
    assert jobs.record_calendar_status(sqlite_engine, cfg, date(2026, 10, 31)) is None  # 61 days left
    with caplog.at_level("ERROR", logger="steward.scheduler"):
        msg = jobs.record_calendar_status(sqlite_engine, cfg, date(2026, 11, 2))
    assert msg and "TRADING CALENDAR GAP" in caplog.text and "steward calendar import FILE" in msg
    runs = {r.job_id: r for r in jobs.last_runs(sqlite_engine)}
    assert runs["calendar_check"].status == "alert" and runs["calendar_check"].slot == "2026-11-02"


def test_scheduler_status_command_shows_the_alert(sqlite_engine: Engine, cfg: Config) -> None:
    jobs.record_calendar_status(sqlite_engine, cfg, date(2026, 11, 2))  # empty calendar: alert
    code, out = _cli(sqlite_engine, "scheduler", "--status")
    assert code == 1 and "calendar_check" in out and "alert" in out and "TRADING CALENDAR GAP" in out


def _book(eng: Engine, day: date) -> None:
    from engine.models import Holding

    with eng.begin() as conn:
        trading_calendar.sync(conn, "XSHG", date(2026, 5, 1), date(2026, 12, 31))
        conn.execute(Holding.__table__.insert(), [{"client_id": "C1", "as_of": day, "symbol": "600000",  # type: ignore[attr-defined]
                                                   "quantity": 1, "cost": 1.0, "close_price": 1.0}])


def test_run_day_refuses_closed_and_unknown_days_and_warns_on_stale_data(sqlite_engine: Engine) -> None:
    _book(sqlite_engine, date(2026, 6, 12))
    with sqlite_engine.connect() as conn:
        sat = run_day.check(conn, "XSHG", date(2026, 6, 13))
        assert sat.refusal and "(Saturday) is not a trading day" in sat.refusal and "2026-06-15" in sat.refusal
        late = run_day.check(conn, "XSHG", date(2027, 6, 15))
        assert late.refusal and "outside the XSHG trading calendar" in late.refusal and "--force" in late.refusal
        ok = run_day.check(conn, "XSHG", date(2026, 6, 15))
        assert ok.refusal is None and "newest positions and balances are from 2026-06-12" in ok.warnings[0]
        assert run_day.check(conn, "XSHG", date(2026, 6, 12)) == run_day.DayCheck(None)


def test_steward_run_refuses_a_sunday_unless_forced(sqlite_engine: Engine) -> None:
    _book(sqlite_engine, date(2026, 6, 12))
    code, out = _cli(sqlite_engine, "run", "--as-of", "2026-06-14")
    assert code == 2 and "not a trading day on XSHG" in out
    code, out = _cli(sqlite_engine, "run", "--as-of", "2026-06-14", "--force")
    assert "evaluating anyway" in out and "not a trading day" in out  # then stops at 'nothing approved'


@pytest.mark.parametrize("name", ["XSHE", "XHKG", "NYSE", "XLON"])
def test_every_exchange_calendars_name_syncs(sqlite_engine: Engine, name: str) -> None:
    with sqlite_engine.begin() as conn:
        trading_calendar.sync(conn, name, date(2026, 9, 28), date(2026, 10, 9))
        if name == "XSHE":  # Shenzhen closes on Shanghai's holidays
            assert not trading_calendar.is_trading_day(conn, "XSHE", date(2026, 10, 1))
            assert trading_calendar.source_calendar("XSHE") == "XSHG"
        assert trading_calendar.is_trading_day(conn, name, date(2026, 9, 29))


def test_xshe_config_runs_calendar_commands(sqlite_engine: Engine, tmp_path: Path) -> None:
    conf = tmp_path / "config.yaml"
    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    assert "exchange: XSHG" in text
    conf.write_text(text.replace("exchange: XSHG", "exchange: XSHE"), encoding="utf-8")
    code, out = _cli(sqlite_engine, "calendar", "sync", "--from", "2026-09-28", "--to", "2026-10-09", config=conf)
    assert code == 0 and "XSHE: wrote 12 days" in out, out


def test_unknown_exchange_says_did_you_mean(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as conn, pytest.raises(trading_calendar.UnknownCalendar, match="did you mean 'XSHG'"):
        trading_calendar.sync(conn, "XSHQ", date(2026, 9, 28), date(2026, 10, 9))
