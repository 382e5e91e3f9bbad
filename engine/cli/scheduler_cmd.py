"""`steward scheduler` and `steward calendar sync|show|set`."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import date, timedelta
from typing import Any

import typer
from rich.table import Table

from engine.audit import log as auditlog
from engine.facts import trading_calendar
from engine.cli.common import cfg, console, err_console, open_db, parse_day, signed_in, state, user_errors
from engine.errors import StewardError

auditlog.register_event_name("calendar.overridden", "an operator set trading days open or closed by hand (which days, by whom)")
calendar_app = typer.Typer(no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("scheduler")(scheduler)
    app.add_typer(calendar_app, name="calendar", help="Trading days: sync from exchange-calendars, show, override.")


def scheduler() -> None:
    """Run the service: nightly and intraday evaluations, dispatcher, escalations (one leader per database)."""
    from scheduler import jobs, service

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    with user_errors():
        c = cfg()
        eng = open_db(c)
        with eng.begin() as conn:
            today = jobs.local_today(c)
            trading_calendar.ensure(conn, c.calendar.exchange, today - timedelta(days=90), today + timedelta(days=366))
    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        logging.getLogger("steward.scheduler").warning("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    config_path = str(state.config_path) if state.config_path else None
    code = service.run_service(eng, c, config_path, state.database, stop)
    raise typer.Exit(code)


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise StewardError(f"{option}: expected a date as YYYY-MM-DD, got {value!r}") from None


@calendar_app.command("sync")
def sync(start: str = typer.Option(None, "--from", help="first day YYYY-MM-DD (default: 90 days ago)"),
         end: str = typer.Option(None, "--to", help="last day YYYY-MM-DD (default: a year ahead)")) -> None:
    """Write the days exchange-calendars knows; days set by hand (`calendar set`) are kept."""
    from scheduler.jobs import coverage_warning

    with user_errors():
        c = cfg()
        today = parse_day(None, c)
        lo = _day(start, "--from") if start else today - timedelta(days=90)
        hi = _day(end, "--to") if end else today + timedelta(days=366)
        eng = open_db(c)
        with eng.begin() as conn:
            n = trading_calendar.sync(conn, c.calendar.exchange, lo, hi)
            first, last = trading_calendar.known_range(c.calendar.exchange)
        warning = coverage_warning(eng, c, today)
    console.print(f"{c.calendar.exchange}: wrote {n} days; exchange-calendars knows {first} .. {last}.")
    if warning:
        err_console.print(f"[bold red]{warning}[/]", highlight=False)


@calendar_app.command("show")
def show(start: str = typer.Option(None, "--from", help="first day (default: today)"),
         days: int = typer.Option(14, "--days", min=1, help="how many days")) -> None:
    """Days with open/closed and where that came from; warns when coverage runs short."""
    from scheduler.jobs import coverage_warning

    with user_errors():
        c = cfg()
        lo = _day(start, "--from") if start else parse_day(None, c)
        eng = open_db(c)
        with eng.connect() as conn:
            rows = trading_calendar.days(conn, c.calendar.exchange, lo, lo + timedelta(days=days - 1))
            first, last = trading_calendar.coverage(conn, c.calendar.exchange)
        warning = coverage_warning(eng, c, parse_day(None, c))
    t = Table(title=f"{c.calendar.exchange} trading days (table covers {first} .. {last})")
    for col in ("day", "weekday", "open", "source"):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r.day), f"{r.day:%a}", "open" if r.is_open else "[red]closed[/]", r.source)
    console.print(t)
    if warning:
        err_console.print(f"[bold red]{warning}[/]", highlight=False)


@calendar_app.command("set")
def set_(day: str = typer.Argument(..., help="YYYY-MM-DD"),
         is_open: bool = typer.Option(None, "--open/--closed", help="the exchange trades that day, or not"),
         through: str = typer.Option(None, "--through", help="set every day up to this one too"),
         weekdays: bool = typer.Option(False, "--weekdays", help="with --through: Saturdays and Sundays are set closed")) -> None:
    """Override days by hand (source 'admin'; `calendar sync` never overwrites them).

    Each override is an audit event (calendar.overridden) with the signed-in user.
    Example: steward calendar set 2026-10-09 --closed
    """
    with user_errors():
        if is_open is None:
            raise StewardError("say --open or --closed")
        c = cfg()
        lo = _day(day, "DATE")
        hi = _day(through, "--through") if through else lo
        if hi < lo:
            raise StewardError(f"--through {hi} is before {lo}")
        eng = open_db(c)
        n = 0
        with eng.begin() as conn:
            who = signed_in(conn, "calendar set").name
            d = lo
            days: dict[str, bool] = {}
            while d <= hi:
                days[d.isoformat()] = is_open and not (weekdays and d.weekday() >= 5)
                trading_calendar.set_day(conn, c.calendar.exchange, d, days[d.isoformat()])
                d += timedelta(days=1)
                n += 1
            auditlog.append(conn, [auditlog.Event("calendar.overridden", actor=who, data={
                "exchange": c.calendar.exchange, "days": days})])
    console.print(f"{c.calendar.exchange}: {n} day(s) from {lo} set by hand.")
