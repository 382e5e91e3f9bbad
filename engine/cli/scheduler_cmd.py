"""`steward scheduler [--status]` and `steward calendar sync|show|set|import|pending|approve|reject`."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from engine.facts import trading_calendar
from engine.cli.common import cfg, console, err_console, identity, open_db, parse_day, signed_in, state, user_errors
from engine.config.base import Config
from engine.errors import StewardError

calendar_app = typer.Typer(no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("scheduler")(scheduler)
    app.add_typer(calendar_app, name="calendar",
                  help="Trading days: sync from exchange-calendars, import published closures, show, override.")


def scheduler(status: bool = typer.Option(False, "--status", help="print each job's last run and any calendar alert, then exit")) -> None:
    """Run the service: nightly and intraday evaluations, dispatcher, escalations (one leader per database).

    Examples:

      steward scheduler            # run until Ctrl-C or SIGTERM

      steward scheduler --status   # last run of each job; TRADING CALENDAR GAP alerts
    """
    from scheduler import jobs, service

    if status:
        _status()
        return
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


def _status() -> None:
    from scheduler import jobs

    with user_errors():
        c = cfg()
        eng = open_db(c)
        runs = jobs.last_runs(eng)
        warning = jobs.coverage_warning(eng, c, parse_day(None, c))
    t = Table(title=f"Scheduler jobs: last run of each (times in {c.timezone})")
    for col in ("job", "slot", "status", "finished", "detail"):
        t.add_column(col)
    for r in runs:
        done = r.finished_at or r.started_at
        style = "bold red" if r.status in ("alert", "failed") else ""
        t.add_row(r.job_id, r.slot, f"[{style}]{r.status}[/]" if style else r.status,
                  done.astimezone(c.tz).strftime("%Y-%m-%d %H:%M %Z") if done and done.tzinfo else str(done or ""),
                  (r.detail or "")[:120])
    console.print(t)
    if not runs:
        console.print("No job has run yet: start the service with `steward scheduler`.")
    if warning:
        err_console.print(f"[bold red]{warning}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise StewardError(f"{option}: expected a date as YYYY-MM-DD, got {value!r}") from None


@calendar_app.command("sync")
def sync(start: str = typer.Option(None, "--from", help="first day YYYY-MM-DD (default: 90 days ago)"),
         end: str = typer.Option(None, "--to", help="last day YYYY-MM-DD (default: a year ahead)")) -> None:
    """Write the days exchange-calendars knows; days set by hand or imported are kept.

    Example:

      steward calendar sync --from 2026-01-01 --to 2026-12-31
    """
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
def show(start: str = typer.Option(None, "--from", help="first day YYYY-MM-DD (default: today)"),
         days: int = typer.Option(14, "--days", min=1, help="how many days to list")) -> None:
    """Days with open/closed and where that came from, how far each source reaches, and a
    warning when coverage ends within dispatch.scheduler.calendar_horizon_days (60).

    Examples:

      steward calendar show

      steward calendar show --from 2027-01-25 --days 21
    """
    from scheduler.jobs import coverage_warning

    with user_errors():
        c = cfg()
        lo = _day(start, "--from") if start else parse_day(None, c)
        eng = open_db(c)
        with eng.connect() as conn:
            rows = trading_calendar.days(conn, c.calendar.exchange, lo, lo + timedelta(days=days - 1))
            first, last = trading_calendar.coverage(conn, c.calendar.exchange)
            reach = trading_calendar.sources(conn, c.calendar.exchange)
        package = _package_reach(c)
        warning = coverage_warning(eng, c, parse_day(None, c))
    t = Table(title=f"{c.calendar.exchange} trading days (table covers {first} .. {last})")
    for col in ("day", "weekday", "open", "source"):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r.day), f"{r.day:%a}", "open" if r.is_open else "[red]closed[/]", r.source)
    console.print(t)
    if not rows:
        console.print(f"No days from {lo} in the table: `steward calendar sync`, or `steward calendar import FILE`.")
    s = Table(title="How far each source reaches")
    for col in ("source", "first day", "last day", "days"):
        s.add_column(col)
    for r in reach:
        s.add_row(r.source, str(r.first), str(r.last), f"{r.days:,}")
    s.add_row(f"(exchange-calendars package, {package[0]})", str(package[1]), str(package[2]), "not in table",
              style="dim")
    console.print(s)
    if warning:
        err_console.print(f"[bold red]{warning}[/]", highlight=False, soft_wrap=True)


def _package_reach(c: Config) -> tuple[str, date, date]:
    first, last = trading_calendar.known_range(c.calendar.exchange)
    return trading_calendar.source_calendar(c.calendar.exchange), first, last


@calendar_app.command("set")
def set_(day: str = typer.Argument(..., help="YYYY-MM-DD"),
         is_open: bool = typer.Option(None, "--open/--closed", help="the exchange trades that day, or not"),
         through: str = typer.Option(None, "--through", help="set every day up to this one too"),
         weekdays: bool = typer.Option(False, "--weekdays", help="with --through: Saturdays and Sundays are set closed")) -> None:
    """Override days by hand as the signed-in operator (source 'admin'; `calendar sync` and imports never
    overwrite them). Audited (calendar.set, with every day set).

    Examples:

      steward calendar set 2027-01-01 --through 2027-12-31 --open --weekdays

      steward calendar set 2027-02-08 --through 2027-02-12 --closed
    """
    from engine.compliance import calendar_review

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
            me = signed_in(conn, "calendar set").name
            d = lo
            days: dict[str, bool] = {}
            while d <= hi:
                days[d.isoformat()] = is_open and not (weekdays and d.weekday() >= 5)
                trading_calendar.set_day(conn, c.calendar.exchange, d, days[d.isoformat()])
                d += timedelta(days=1)
                n += 1
            calendar_review.record_set(conn, me, c.calendar.exchange, lo, hi, is_open, weekdays, days)
    console.print(f"{c.calendar.exchange}: {n} day(s) from {lo} set by hand.")


@calendar_app.command("import")
def import_(file: Path = typer.Argument(..., exists=True, dir_okay=False, help="the exchange's closures: .csv (date,status,name) or .ics"),
            start: str = typer.Option(None, "--from", help="first day the file covers (default: 1 January of its first year)"),
            through: str = typer.Option(None, "--through", help="last day it covers (default: 31 December of its last year)"),
            note: str = typer.Option("", "--note", help="where the list comes from, e.g. the exchange notice number")) -> None:
    """Propose an exchange's published closures for review, as the signed-in author; a compliance reviewer approves them
    with `steward calendar approve ID`. In the covered range weekdays are open and weekends
    closed, except the days the file names. Days set by hand are kept. Format: docs/operations.md.

    Examples:

      steward calendar import docs/examples/xshg-2027.csv --note "SSE notice 2026-12"

      steward calendar import closures.ics
    """
    from engine.compliance import calendar_review
    from engine.facts import calendar_file

    with user_errors():
        c = cfg()
        parsed = calendar_file.read_closures(file, _day(start, "--from") if start else None,
                                             _day(through, "--through") if through else None)
        eng = open_db(c)
        seq = calendar_review.propose(eng, identity(eng, "calendar import"), c.calendar.exchange, parsed, note)
    console.print(f"Calendar proposal {seq}: {c.calendar.exchange} {parsed.first} .. {parsed.last}, "
                  f"{len(parsed.closed)} closure(s), {len(parsed.opened)} extra open day(s) from {parsed.path} "
                  f"(sha256 {parsed.sha256[:12]}).", highlight=False)
    console.print(f"Next: a compliance reviewer runs [bold]steward calendar approve {seq} --comment TEXT[/].",
                  highlight=False)


@calendar_app.command("pending")
def pending(all_: bool = typer.Option(False, "--all", help="also list decided proposals")) -> None:
    """Calendar imports waiting for a decision.

    Example:

      steward calendar pending
    """
    from engine.compliance import calendar_review

    with user_errors():
        eng = open_db(cfg())
        with eng.connect() as conn:
            rows = calendar_review.proposals(conn, None if all_ else "pending")
    t = Table(title=f"Calendar proposals ({len(rows)})")
    for col in ("id", "exchange", "range", "closures", "author", "file", "status", "note"):
        t.add_column(col)
    for p in rows:
        t.add_row(str(p.seq), p.exchange, f"{p.file.first} .. {p.file.last}", str(len(p.file.closed)), p.author,
                  p.file.path, p.status, p.note)
    console.print(t)


def _decide(seq: int, comment: str, approve: bool) -> None:
    from engine.compliance import calendar_review

    with user_errors():
        eng = open_db(cfg())
        p, written = calendar_review.decide(eng, identity(eng, "calendar approve" if approve else "calendar reject"), seq, approve, comment)
    if approve:
        console.print(f"Approved calendar proposal {seq}: {written} day(s) of {p.exchange} written "
                      f"({p.file.first} .. {p.file.last}). `steward calendar show` lists them.", highlight=False)
    else:
        console.print(f"Rejected calendar proposal {seq}; nothing was written.", highlight=False)


@calendar_app.command("approve")
def approve(seq: int = typer.Argument(..., help="proposal id printed by `calendar import` (see `calendar pending`)"),
            comment: str = typer.Option(..., "--comment", help="why; kept with the approval record")) -> None:
    """Approve a calendar import and write its days (signed-in compliance role; never the author).

    Example:

      steward calendar approve 42 --comment "matches SSE notice"
    """
    _decide(seq, comment, True)


@calendar_app.command("reject")
def reject(seq: int = typer.Argument(..., help="proposal id (see `calendar pending`)"),
           comment: str = typer.Option(..., "--comment", help="why; kept with the record")) -> None:
    """Reject a calendar import (signed-in compliance role); nothing is written.

    Example:

      steward calendar reject 42 --comment "wrong year"
    """
    _decide(seq, comment, False)
