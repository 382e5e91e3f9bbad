"""Operator pages without a browser: scheduler status from the real job store, leader lock and
job_run table; calendar overrides set and removed, audited."""

from __future__ import annotations

import html
from datetime import date
from pathlib import Path

from sqlalchemy import Engine, select

from engine.audit import log as auditlog
from engine.config.base import Config
from engine.facts import trading_calendar
from scheduler import jobs, leader, service
from tests.identity_helpers import make_user
from tests.web_helpers import Clock, client, csrf, sign_in


def _project(cfg: Config, tmp_path: Path) -> Config:
    return cfg.model_copy(update={"base_dir": tmp_path})


def _events(eng: Engine, name: str) -> list[dict]:  # type: ignore[type-arg]
    with eng.connect() as conn:
        return [auditlog.body_of(r) for r in conn.execute(select(auditlog.EVENT).where(auditlog.EVENT.c.name == name))]


def test_scheduler_status_shows_leader_next_runs_and_last_results(sqlite_engine: Engine, cfg: Config,
                                                                   tmp_path: Path) -> None:
    project = _project(cfg, tmp_path)
    make_user(sqlite_engine, "chen.op", ["operator"])
    c = client(sqlite_engine, project, Clock())
    assert sign_in(c, "chen.op") == 303
    page = c.get("/scheduler").text
    assert "no scheduler holds the leader lock" in page and "not in the job store yet" in page
    assert "No job has run yet" in page
    # a real APScheduler job store, as the service leaves it, and a held leader lock
    sched = service.build_scheduler(sqlite_engine, project)
    sched.start(paused=True)
    try:
        service.ensure_jobs(sched, service.job_specs(project, None, None), project)
        nightly = sched.get_job("nightly_evaluation").next_run_time
    finally:
        sched.shutdown(wait=False)
    lock = leader.FileLock(service.default_lock_file(project))
    assert lock.try_acquire()
    try:
        assert jobs.claim_slot(sqlite_engine, "nightly", "2026-11-19")
        jobs.finish_slot(sqlite_engine, "nightly", "2026-11-19", "failed", "CalendarGap: no entry for 2026-11-19")
        page = c.get("/scheduler").text
    finally:
        lock.release()
    assert "Leader: <strong>pid " in page
    row = page[page.index('id="job-nightly_evaluation"'):].split("</tr>")[0]
    assert f"{nightly.astimezone(project.tz):%Y-%m-%d %H:%M} Asia/Shanghai" in row
    assert "2026-11-19" in row and 'class="err">failed' in row and "CalendarGap" in row
    assert 'id="calendar-gap"' in page  # the calendar table is empty: the gap alert shows
    assert "no scheduler holds the leader lock" in c.get("/scheduler").text  # released


def test_an_operator_overrides_a_day_and_removes_the_override(sqlite_engine: Engine, cfg: Config,
                                                              tmp_path: Path) -> None:
    project = _project(cfg, tmp_path)
    ex = project.calendar.exchange
    make_user(sqlite_engine, "chen.op", ["operator"])
    with sqlite_engine.begin() as conn:
        trading_calendar.sync(conn, ex, date(2026, 11, 1), date(2027, 1, 31))
    c = client(sqlite_engine, project, Clock())
    assert sign_in(c, "chen.op") == 303
    r = c.post("/calendar", data={"day": "2026-12-24", "state": "closed", "csrf_token": csrf(c)})
    assert r.status_code == 200 and 'id="override-2026-12-24"' in r.text
    r = c.post("/calendar", data={"day": "2026-12-26", "through": "2026-12-28", "state": "open", "weekdays": "1",
                                  "csrf_token": csrf(c)})
    assert "3 day(s) from 2026-12-26" in r.text
    with sqlite_engine.connect() as conn:
        assert trading_calendar.day_state(conn, ex, date(2026, 12, 24)) is False
        assert trading_calendar.day_state(conn, ex, date(2026, 12, 27)) is False  # a Sunday, weekends closed
        assert trading_calendar.day_state(conn, ex, date(2026, 12, 28)) is True
    [first, _] = _events(sqlite_engine, "calendar.set")
    assert first["actor"] == "chen.op" and first["data"]["days"] == {"2026-12-24": False}
    r = c.post("/calendar/remove", data={"day": "2026-12-24", "csrf_token": csrf(c)})
    assert r.status_code == 200 and 'id="override-2026-12-24"' not in r.text and "says open" in r.text
    with sqlite_engine.connect() as conn:
        assert trading_calendar.day_state(conn, ex, date(2026, 12, 24)) is True
    [unset] = _events(sqlite_engine, "calendar.unset")
    assert unset["actor"] == "chen.op" and unset["data"] == {"exchange": ex, "day": "2026-12-24", "was_open": False,
                                                             "open": True}


def test_calendar_form_errors_are_located_and_change_nothing(sqlite_engine: Engine, cfg: Config,
                                                             tmp_path: Path) -> None:
    project = _project(cfg, tmp_path)
    make_user(sqlite_engine, "chen.op", ["operator"])
    c = client(sqlite_engine, project, Clock())
    assert sign_in(c, "chen.op") == 303
    for form, message in (({"day": "2026-13-01", "state": "open"}, "day: expected a date as YYYY-MM-DD, got '2026-13-01'"),
                          ({"day": "2026-12-02", "through": "2026-12-01", "state": "open"}, "through: 2026-12-01 is before"),
                          ({"day": "2026-12-01"}, "open or closed"),
                          ({"day": "2026-12-01", "through": "2028-12-01", "state": "open"}, "at most 366 days")):
        r = c.post("/calendar", data={**form, "csrf_token": csrf(c)})
        assert r.status_code == 400 and message in html.unescape(r.text), form
    r = c.post("/calendar/remove", data={"day": "2026-12-01", "csrf_token": csrf(c)})
    assert r.status_code == 400 and "has no hand override" in r.text
    assert _events(sqlite_engine, "calendar.set") == [] and _events(sqlite_engine, "calendar.unset") == []


def test_the_outbox_masks_client_ids_for_operators(sqlite_engine: Engine, cfg: Config) -> None:
    from tests.dispatch_helpers import add_client, add_message

    add_client(sqlite_engine, "C7654321")
    add_message(sqlite_engine, "C7654321", state="dead", reason="GATEWAY_NOT_CONFIGURED")
    make_user(sqlite_engine, "chen.op", ["operator"])
    make_user(sqlite_engine, "zhao.lei", ["supervisor"])
    op, sup = client(sqlite_engine, cfg, Clock()), client(sqlite_engine, cfg, Clock())
    assert sign_in(op, "chen.op") == 303 and sign_in(sup, "zhao.lei") == 303
    assert "C7****21" in op.get("/outbox").text and "C7654321" not in op.get("/outbox").text
    assert "C7654321" in sup.get("/outbox").text
