"""Operator pages: the scheduler's status and the trading calendar's hand overrides.

Scheduler status reads what the service leaves behind: the leader lock (scheduler.leader.holder),
APScheduler's job store (`apscheduler_jobs`: each job's next run) and the `job_run` table (each
job's last result, the calendar check's alert). Calendar overrides are `trading_day` rows with
source `admin`, set and removed as `steward calendar set` does, audited as calendar.set and
calendar.unset in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import Float, String, column, inspect, select, table

from engine.compliance import calendar_review
from engine.errors import StewardError
from engine.facts import trading_calendar
from engine.models import TradingDay
from engine.web.app import console, render, user_of
from scheduler import jobs, leader, service

_JOBS = table("apscheduler_jobs", column("id", String), column("next_run_time", Float))
TRADING_DAY = TradingDay.__table__  # type: ignore[attr-defined]
RECENT_RUNS = 30
SHOW_DAYS = 21
MAX_RANGE = 366


@dataclass(frozen=True)
class JobStatus:
    id: str
    schedule: str
    next_run: datetime | None
    stored: bool
    """False: the job store has no row for it (the service has not started since it was added)."""
    last: Any


def job_statuses(request: Request) -> tuple[str | None, list[JobStatus], list[Any], str | None]:
    """(leader, each configured job with its next and last run, the newest job_run rows, calendar warning)."""
    c = console(request)
    s = c.cfg.dispatch.scheduler
    who = leader.holder(c.engine, s.lock_key, service.default_lock_file(c.cfg))
    with c.engine.connect() as conn:
        nxt: dict[str, float | None] = {}
        if inspect(conn).has_table("apscheduler_jobs"):
            nxt = {r.id: r.next_run_time for r in conn.execute(select(_JOBS))}
        recent = list(conn.execute(select(jobs.JOB_RUN).order_by(jobs.JOB_RUN.c.id.desc()).limit(RECENT_RUNS)))
    last = {r.job_id: r for r in jobs.last_runs(c.engine)}
    slot_of = {"nightly_evaluation": "nightly"}  # the job whose job_run rows use a shorter name
    out = []
    for spec in service.job_specs(c.cfg, None, None):
        t = nxt.get(spec.id)
        out.append(JobStatus(spec.id, str(spec.trigger), datetime.fromtimestamp(t, timezone.utc) if t else None,
                             spec.id in nxt, last.get(slot_of.get(spec.id, spec.id))))
    warning = jobs.coverage_warning(c.engine, c.cfg, c.clock().astimezone(c.cfg.tz).date())
    return who, out, recent, warning


def _day(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise StewardError(f"{field}: expected a date as YYYY-MM-DD, got {value!r}") from None


def set_days(request: Request, form: Any) -> str:
    """`steward calendar set` from the form: one day or a range, open or closed, weekends optionally closed."""
    c = console(request)
    lo = _day(str(form.get("day", "")), "day")
    hi = _day(str(form.get("through")), "through") if str(form.get("through", "")).strip() else lo
    if hi < lo:
        raise StewardError(f"through: {hi} is before {lo}")
    if (hi - lo).days >= MAX_RANGE:
        raise StewardError(f"through: at most {MAX_RANGE} days at once ({lo} .. {hi} is {(hi - lo).days + 1})")
    state = str(form.get("state", ""))
    if state not in ("open", "closed"):
        raise StewardError("say whether the exchange is open or closed on those days")
    is_open, weekdays = state == "open", form.get("weekdays") == "1"
    ex = c.cfg.calendar.exchange
    days: dict[str, bool] = {}
    with c.engine.begin() as conn:
        d = lo
        while d <= hi:
            days[d.isoformat()] = is_open and not (weekdays and d.weekday() >= 5)
            trading_calendar.set_day(conn, ex, d, days[d.isoformat()])
            d += timedelta(days=1)
        calendar_review.record_set(conn, user_of(request).name, ex, lo, hi, is_open, weekdays, days)
    return f"{ex}: {len(days)} day(s) from {lo} set by hand"


def unset_day(request: Request, value: str) -> str:
    """Remove a hand override: the exchange's own day (exchange-calendars) comes back."""
    c = console(request)
    day, ex = _day(value, "day"), c.cfg.calendar.exchange
    first, last = trading_calendar.known_range(ex)
    if not first <= day <= last:
        raise StewardError(f"exchange-calendars knows {ex} only from {first} to {last}, so {day} would have no "
                           f"state: set it open or closed instead")
    with c.engine.begin() as conn:
        row = conn.execute(select(TRADING_DAY.c.is_open, TRADING_DAY.c.source).where(
            TRADING_DAY.c.exchange == ex, TRADING_DAY.c.day == day)).first()
        if row is None or row.source != "admin":
            raise StewardError(f"{day} has no hand override on {ex}")
        now_open = day in set(trading_calendar.exchange_sessions(ex, day, day))
        trading_calendar.set_day(conn, ex, day, now_open, source="exchange-calendars")
        calendar_review.record_unset(conn, user_of(request).name, ex, day, bool(row.is_open), now_open)
    return f"{ex}: override on {day} removed; the exchange's calendar says {'open' if now_open else 'closed'}"


def _calendar_page(request: Request, status: int = 200, error: str | None = None, done: str | None = None) -> Response:
    c = console(request)
    ex, today = c.cfg.calendar.exchange, c.clock().astimezone(c.cfg.tz).date()
    start = _day(request.query_params["from"], "from") if request.query_params.get("from") else today
    with c.engine.connect() as conn:
        overrides = list(conn.execute(select(TRADING_DAY.c.day, TRADING_DAY.c.is_open).where(
            TRADING_DAY.c.exchange == ex, TRADING_DAY.c.source == "admin").order_by(TRADING_DAY.c.day.desc()).limit(500)))
        upcoming = trading_calendar.days(conn, ex, start, start + timedelta(days=SHOW_DAYS - 1))
        reach = trading_calendar.sources(conn, ex)
    warning = jobs.coverage_warning(c.engine, c.cfg, today)
    return render(request, "calendar.html", status=status, error=error, done=done, exchange=ex, overrides=overrides,
                  upcoming=upcoming, reach=reach, warning=warning, start=start)


def routes(app: FastAPI) -> None:
    @app.get("/scheduler", response_class=HTMLResponse)
    def scheduler_status(request: Request) -> Response:
        who, specs, recent, warning = job_statuses(request)
        return render(request, "scheduler.html", leader=who, jobs=specs, recent=recent, warning=warning)

    @app.get("/calendar", response_class=HTMLResponse)
    def calendar(request: Request) -> Response:
        return _calendar_page(request)

    @app.post("/calendar", response_class=HTMLResponse)
    async def calendar_set(request: Request) -> Response:
        form = await request.form()
        try:
            done = set_days(request, form)
        except StewardError as e:
            return _calendar_page(request, status=400, error=str(e))
        return _calendar_page(request, done=done)

    @app.post("/calendar/remove", response_class=HTMLResponse)
    async def calendar_remove(request: Request) -> Response:
        form = await request.form()
        try:
            done = unset_day(request, str(form.get("day", "")))
        except StewardError as e:
            return _calendar_page(request, status=400, error=str(e))
        return _calendar_page(request, done=done)
