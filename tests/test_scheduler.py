"""Scheduler jobs: stored by reference, missed runs coalesce into one, the nightly slot runs once,
and closed days (Spring Festival) are skipped.

APScheduler takes no injected clock: it runs on the machine's clock, so the tests of missed
runs set and compare its stored times relative to that clock (`_scheduler_now`), never to a
date, and wait for the scheduler to have dealt with them instead of sleeping."""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import Engine, select

from engine.config.base import Config
from engine.dispatch.outbox import aware
from engine.dispatch.tables import JobRun
from scheduler import jobs
from scheduler.service import JobSpec, build_scheduler, ensure_jobs, job_specs

JOB_RUN = JobRun.__table__  # type: ignore[attr-defined]


def _wait_for(pred, seconds: float = 30.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return bool(pred())


def _scheduler_now(cfg: Config) -> datetime:
    """APScheduler's own clock: the machine's (see the module docstring)."""
    return datetime.now(cfg.tz)


def _missed_runs_handled(s: Any, cfg: Config) -> bool:
    """The scheduler has processed the missed runs: the stored next run time is in the future again."""
    nxt = s.get_job("nightly_evaluation").next_run_time
    return nxt is not None and nxt > _scheduler_now(cfg)


def _spec(cfg: Config, out: Path) -> JobSpec:
    return JobSpec("nightly_evaluation", "tests.scheduler_helpers:record_call", CronTrigger(hour=17, timezone=cfg.tz), {"path": str(out)})


def _grace(cfg: Config, seconds: int) -> Config:
    sched = cfg.dispatch.scheduler.model_copy(update={"misfire_grace_seconds": seconds})
    return cfg.model_copy(update={"dispatch": cfg.dispatch.model_copy(update={"scheduler": sched})})


def _restart_after_three_days_down(engine: Engine, cfg: Config, out: Path) -> Any:
    """Start a scheduler whose stored nightly job last ran three days ago (the machine was off).

    The stored next run time is set while the scheduler is paused, as it would be found
    in the job store after downtime; then job processing resumes."""
    s = build_scheduler(engine, cfg)
    s.start(paused=True)
    ensure_jobs(s, [_spec(cfg, out)], cfg)
    s.modify_job("nightly_evaluation", next_run_time=_scheduler_now(cfg) - timedelta(days=3))
    s.resume()
    return s


def test_an_unchanged_job_keeps_its_stored_next_run_time(sqlite_engine: Engine, cfg: Config, tmp_path: Path) -> None:
    first = build_scheduler(sqlite_engine, cfg)
    first.start()
    ensure_jobs(first, [_spec(cfg, tmp_path / "x")], cfg)
    stored = first.get_job("nightly_evaluation").next_run_time
    first.shutdown()
    second = build_scheduler(sqlite_engine, cfg)
    second.start(paused=True)
    try:
        assert ensure_jobs(second, [_spec(cfg, tmp_path / "x")], cfg) == []
        assert second.get_job("nightly_evaluation").next_run_time == stored
        moved = JobSpec("nightly_evaluation", "tests.scheduler_helpers:record_call", CronTrigger(hour=18, timezone=cfg.tz),
                        {"path": str(tmp_path / "x")})
        assert ensure_jobs(second, [moved], cfg) == ["nightly_evaluation"]  # a new time replaces the job
    finally:
        second.shutdown()


def test_jobs_are_stored_by_reference_with_explicit_ids(sqlite_engine: Engine, cfg: Config) -> None:
    s = build_scheduler(sqlite_engine, cfg)
    s.start(paused=True)
    try:
        assert sorted(ensure_jobs(s, job_specs(cfg, "config.yaml", None), cfg)) == [
            "calendar_check", "dispatcher", "intraday_urgent", "nightly_evaluation", "nightly_recovery", "task_escalation"]
        nightly = s.get_job("nightly_evaluation")
        assert nightly.func_ref == "scheduler.jobs:nightly" and nightly.kwargs == {"config_path": "config.yaml", "database_url": None}
        assert nightly.coalesce and nightly.max_instances == 1 and nightly.misfire_grace_time == 82800
        assert ensure_jobs(s, job_specs(cfg, "config.yaml", None), cfg) == []  # unchanged: kept as stored
    finally:
        s.shutdown()


def test_an_interval_job_built_later_is_the_same_job(sqlite_engine: Engine, cfg: Config) -> None:
    """APScheduler gives an IntervalTrigger the start date "now + interval" when it is built; a
    restart a second later must not count that as a changed dispatcher (CI failed on it once)."""
    from apscheduler.triggers.interval import IntervalTrigger
    s = build_scheduler(sqlite_engine, cfg)
    s.start(paused=True)
    try:
        def spec(start: datetime, seconds: int = 5) -> JobSpec:
            return JobSpec("dispatcher", "scheduler.jobs:dispatch",
                           IntervalTrigger(seconds=seconds, start_date=start, timezone=cfg.tz),
                           {"config_path": None, "database_url": None})
        first = datetime(2026, 3, 2, 9, 0, 0, tzinfo=cfg.tz)
        assert ensure_jobs(s, [spec(first)], cfg) == ["dispatcher"]
        assert ensure_jobs(s, [spec(first + timedelta(seconds=7))], cfg) == []  # built later: unchanged
        assert ensure_jobs(s, [spec(first, seconds=9)], cfg) == ["dispatcher"]  # a new interval replaces it
    finally:
        s.shutdown()


def test_a_run_missed_while_down_runs_once_on_restart(sqlite_engine: Engine, cfg: Config, tmp_path: Path) -> None:
    out = tmp_path / "calls.txt"
    s = _restart_after_three_days_down(sqlite_engine, _grace(cfg, 2 * 86400), out)  # the last missed 17:00 is < 2 days old
    try:
        assert _wait_for(lambda: out.exists() and _missed_runs_handled(s, cfg))
        s.shutdown()  # waits for the job runs it submitted
        assert out.read_text().count("ran") == 1  # three missed slots, coalesced into one run
    finally:
        if s.running:
            s.shutdown()


def test_a_run_missed_beyond_the_grace_time_is_skipped(sqlite_engine: Engine, cfg: Config, tmp_path: Path) -> None:
    out = tmp_path / "calls.txt"
    s = _restart_after_three_days_down(sqlite_engine, _grace(cfg, 60), out)
    try:
        assert _wait_for(lambda: _missed_runs_handled(s, cfg))
        s.shutdown()  # waits for the executor, which decides that the run is too late
        assert not out.exists()
    finally:
        if s.running:
            s.shutdown()


def _approved(engine: Engine, cfg: Config) -> Engine:
    from engine.compliance.review import demo_bootstrap

    assert demo_bootstrap(engine, cfg) is not None  # the shipped pack, submitted and approved
    return engine


def test_the_nightly_slot_runs_once_however_often_the_job_fires(sqlite_engine: Engine, cfg: Config) -> None:
    _approved(sqlite_engine, cfg)
    day = date(2026, 11, 20)
    assert jobs.nightly_slot(sqlite_engine, cfg, day).startswith("run ")
    assert jobs.nightly_slot(sqlite_engine, cfg, day) == "already run"
    with sqlite_engine.connect() as conn:
        rows = list(conn.execute(select(JOB_RUN)))
    assert len(rows) == 1 and rows[0].status == "done" and rows[0].slot == "2026-11-20"


@pytest.mark.parametrize("day", [date(2026, 2, 16), date(2026, 2, 17), date(2026, 2, 20), date(2026, 2, 23)])
def test_spring_festival_week_is_skipped(sqlite_engine: Engine, cfg: Config, day: date) -> None:
    assert jobs.nightly_slot(sqlite_engine, cfg, day) == f"skipped: {day} is not a trading day on XSHG"


def test_the_first_session_after_spring_festival_runs(sqlite_engine: Engine, cfg: Config) -> None:
    _approved(sqlite_engine, cfg)
    assert jobs.nightly_slot(sqlite_engine, cfg, date(2026, 2, 24)).startswith("run ")


def test_nothing_runs_before_an_approval_and_the_slot_may_be_retried(sqlite_engine: Engine, cfg: Config) -> None:
    from engine.compliance.review import NothingApproved

    with pytest.raises(NothingApproved, match="nothing is approved yet"):
        jobs.nightly_slot(sqlite_engine, cfg, date(2026, 11, 20))
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(JOB_RUN.c.status)).scalar_one() == "failed"
    _approved(sqlite_engine, cfg)
    assert jobs.nightly_slot(sqlite_engine, cfg, date(2026, 11, 20)).startswith("run ")


def test_a_failed_nightly_may_run_again(sqlite_engine: Engine, cfg: Config) -> None:
    assert jobs.claim_slot(sqlite_engine, "nightly", "2026-11-20")
    jobs.finish_slot(sqlite_engine, "nightly", "2026-11-20", "failed", "boom")
    assert jobs.claim_slot(sqlite_engine, "nightly", "2026-11-20")
    assert not jobs.claim_slot(sqlite_engine, "nightly", "2026-11-20")


def test_a_night_left_running_by_a_dead_scheduler_is_taken_over_after_its_heartbeat_stops(
        sqlite_engine: Engine, cfg: Config, clock: Any) -> None:
    slot = "2026-11-20"
    assert jobs.claim_slot(sqlite_engine, "nightly", slot, stale_after=300, instance="old-host:1")  # then killed
    clock.advance(seconds=299)
    assert not jobs.claim_slot(sqlite_engine, "nightly", slot, stale_after=300, instance="new-host:2")  # maybe alive
    assert not jobs.claim_slot(sqlite_engine, "nightly", slot, instance="new-host:2")  # no staleness asked: never
    clock.advance(seconds=2)
    assert jobs.claim_slot(sqlite_engine, "nightly", slot, stale_after=300, instance="new-host:2")
    assert not jobs.claim_slot(sqlite_engine, "nightly", slot, stale_after=300, instance="third:3")  # fresh again
    with sqlite_engine.connect() as conn:
        row = conn.execute(select(JOB_RUN)).one()
    assert row.status == "running" and row.instance == "new-host:2"
    assert "taken over by new-host:2" in row.detail and "old-host:1 had no heartbeat since 2026-" in row.detail


def test_a_late_finish_of_a_night_taken_over_leaves_the_new_holders_status(
        sqlite_engine: Engine, cfg: Config, clock: Any) -> None:
    """A scheduler alive but stalled past job_stale_seconds lost its night to a standby: its late
    finish must not overwrite the status of the night the standby is running."""
    slot = "2026-11-20"
    assert jobs.claim_slot(sqlite_engine, "nightly", slot, stale_after=300, instance="stalled:1")
    clock.advance(seconds=301)
    assert jobs.claim_slot(sqlite_engine, "nightly", slot, stale_after=300, instance="standby:2")
    assert not jobs.finish_slot(sqlite_engine, "nightly", slot, "failed", "late", instance="stalled:1")
    with sqlite_engine.connect() as conn:
        row = conn.execute(select(JOB_RUN)).one()
    assert row.status == "running" and row.instance == "standby:2" and "late" not in row.detail
    assert jobs.finish_slot(sqlite_engine, "nightly", slot, "done", "run 2", instance="standby:2")
    with sqlite_engine.connect() as conn:
        row = conn.execute(select(JOB_RUN)).one()
    assert row.status == "done" and row.detail.startswith("taken over by standby:2") and row.detail.endswith("; run 2")


def test_a_running_night_keeps_its_slot_while_its_heartbeat_beats(sqlite_engine: Engine, cfg: Config, clock: Any) -> None:
    slot = "2026-11-20"
    assert jobs.claim_slot(sqlite_engine, "nightly", slot, stale_after=300, instance="leader:1")
    clock.advance(seconds=600)  # a long night: its heartbeat keeps it
    with jobs.heartbeat(sqlite_engine, "nightly", slot, every=0.01, instance="leader:1"):
        for _ in range(500):
            with sqlite_engine.connect() as conn:
                beat = conn.execute(select(JOB_RUN.c.heartbeat_at)).scalar_one()
            if beat is not None and aware(beat) == clock.now():
                break
            time.sleep(0.01)
        assert not jobs.claim_slot(sqlite_engine, "nightly", slot, stale_after=300, instance="standby:2")


def test_the_nightly_job_completes_a_day_its_dead_predecessor_left_running(
        sqlite_engine: Engine, cfg: Config, clock: Any) -> None:
    _approved(sqlite_engine, cfg)
    day = date(2026, 11, 20)
    assert jobs.claim_slot(sqlite_engine, "nightly", day.isoformat(), instance="dead:1")
    assert jobs.nightly_slot(sqlite_engine, cfg, day) == "already run"  # the dead one's heartbeat is recent
    clock.advance(seconds=cfg.dispatch.scheduler.job_stale_seconds + 1)
    assert jobs.nightly_slot(sqlite_engine, cfg, day).startswith("run ")
    with sqlite_engine.connect() as conn:
        row = conn.execute(select(JOB_RUN)).one()
    assert row.status == "done" and row.instance != "dead:1"
    assert row.detail.startswith("taken over by ") and "dead:1 had no heartbeat" in row.detail and "; run " in row.detail


def test_the_leaders_watch_resumes_every_abandoned_night(sqlite_engine: Engine, cfg: Config, clock: Any) -> None:
    _approved(sqlite_engine, cfg)
    for day in ("2026-11-19", "2026-11-20"):
        assert jobs.claim_slot(sqlite_engine, "nightly", day, instance="dead:1")
    jobs.finish_slot(sqlite_engine, "nightly", "2026-11-19", "done", "run 1")
    assert jobs.abandoned_nights(sqlite_engine, cfg) == []  # still fresh
    clock.advance(seconds=cfg.dispatch.scheduler.job_stale_seconds)
    assert jobs.abandoned_nights(sqlite_engine, cfg) == [date(2026, 11, 20)]  # the finished night is not one
    done = jobs.recover_nights(sqlite_engine, cfg)
    assert list(done) == [date(2026, 11, 20)] and done[date(2026, 11, 20)].startswith("run ")
    assert jobs.abandoned_nights(sqlite_engine, cfg) == [] and jobs.recover_nights(sqlite_engine, cfg) == {}


def test_intraday_evaluates_only_urgent_rules(sqlite_engine: Engine, cfg: Config) -> None:
    from engine.pipeline.recording import FIRING
    from tests import book

    cfg = cfg.model_copy(update={"rules_dirs": ("rules", "rules/playbook")})  # the pack with urgent margin rules
    book.build(sqlite_engine)
    _approved(sqlite_engine, cfg)
    urgent = {r.id for r in jobs.approved_rules(sqlite_engine, cfg).rules if r.spec.urgent or "urgent" in r.spec.tags}
    assert jobs.evaluate_day(sqlite_engine, cfg, book.AS_OF, urgent_only=True).startswith("run ")
    with sqlite_engine.connect() as conn:
        fired = {r.rule_id for r in conn.execute(select(FIRING.c.rule_id))}
    assert fired and fired <= urgent
