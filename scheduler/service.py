"""`steward scheduler`: APScheduler 3.x behind one adapter.

Jobs are stored in the database (SQLAlchemyJobStore, table `apscheduler_jobs`, created
by APScheduler on first start) by reference and plain arguments. On start, a job whose
schedule is unchanged keeps its stored next run time, so a run missed while every
scheduler was down is seen as missed: `coalesce` folds all missed runs into one and
`misfire_grace_time` says how late it may still start.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from engine.config.base import Config
from engine.config.dispatch import parse_clock
from scheduler import jobs, leader

log = logging.getLogger("steward.scheduler")


@dataclass(frozen=True)
class JobSpec:
    id: str
    func: str
    """module:function, resolved by APScheduler when the job runs."""
    trigger: BaseTrigger
    kwargs: dict[str, Any] = field(default_factory=dict)


def _daily(at: str, cfg: Config) -> CronTrigger:
    t = parse_clock(at)
    return CronTrigger(hour=t.hour, minute=t.minute, second=t.second, timezone=cfg.tz)


def job_specs(cfg: Config, config_path: str | None, database_url: str | None) -> list[JobSpec]:
    """The service's jobs. Nightly and intraday fire every day; the job itself skips closed days
    (the trading_day table decides, not the weekday)."""
    s = cfg.dispatch.scheduler
    kw = {"config_path": config_path, "database_url": database_url}
    return [
        JobSpec("nightly_evaluation", "scheduler.jobs:nightly", _daily(s.nightly_at, cfg), kw),
        JobSpec("intraday_urgent", "scheduler.jobs:intraday",
                CronTrigger(hour=s.intraday_hours, minute=f"*/{s.intraday_every_minutes}", timezone=cfg.tz), kw),
        JobSpec("dispatcher", "scheduler.jobs:dispatch", IntervalTrigger(seconds=s.dispatch_every_seconds, timezone=cfg.tz), kw),
        JobSpec("task_escalation", "scheduler.jobs:escalate", _daily(s.escalation_at, cfg), kw),
        JobSpec("calendar_check", "scheduler.jobs:calendar_check", _daily("08:00", cfg), kw),
        JobSpec("nightly_recovery", "scheduler.jobs:recover",
                IntervalTrigger(seconds=max(1, int(s.job_stale_seconds // 2)), timezone=cfg.tz), kw),
    ]


def build_scheduler(engine: Engine, cfg: Config) -> BackgroundScheduler:
    s = cfg.dispatch.scheduler
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs")},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": s.misfire_grace_seconds},
        timezone=cfg.tz,
    )


def _trigger_key(trigger: Any) -> str:
    """What makes two triggers the same schedule. An IntervalTrigger's repr carries its start date,
    which APScheduler sets to "now + interval" when the trigger is built, so two builds a second
    apart would look like a changed job (and reset its next run); compare its interval instead."""
    if isinstance(trigger, IntervalTrigger):
        return f"interval:{trigger.interval!r}:{trigger.timezone}:{trigger.end_date!r}:{trigger.jitter!r}"
    return repr(trigger)


def _same(job: Any, spec: JobSpec) -> bool:
    return bool(job.func_ref == spec.func and job.kwargs == spec.kwargs
                and _trigger_key(job.trigger) == _trigger_key(spec.trigger))


def ensure_jobs(sched: BackgroundScheduler, specs: list[JobSpec], cfg: Config) -> list[str]:
    """Add or update the jobs; unchanged jobs keep their stored next run time. Returns the ids changed."""
    changed = []
    grace = cfg.dispatch.scheduler.misfire_grace_seconds
    for spec in specs:
        job = sched.get_job(spec.id)
        if job is not None and _same(job, spec):
            continue
        sched.add_job(spec.func, spec.trigger, id=spec.id, name=spec.id, kwargs=spec.kwargs, replace_existing=True,
                      coalesce=True, max_instances=1, misfire_grace_time=grace)
        changed.append(spec.id)
    return changed


def run_service(engine: Engine, cfg: Config, config_path: str | None, database_url: str | None,
                stop: threading.Event) -> int:
    """Wait for leadership, run the jobs until `stop` or the lock is lost. Returns an exit code."""
    s = cfg.dispatch.scheduler
    jobs.record_calendar_status(engine, cfg, jobs.local_today(cfg))
    lock = leader.lock_for(engine, s.lock_key, cfg.path(s.lock_file))
    if not leader.wait_for_leadership(lock, s.standby_poll_seconds, stop):
        return 0
    log.warning("leader: this scheduler (pid %s) runs the jobs", os.getpid())
    sched = build_scheduler(engine, cfg)
    sched.start(paused=True)
    try:
        changed = ensure_jobs(sched, job_specs(cfg, config_path, database_url), cfg)
        log.info("jobs: %s (changed: %s)", ", ".join(j.id for j in sched.get_jobs()), ", ".join(changed) or "none")
        sched.resume()
        while not stop.wait(s.standby_poll_seconds):
            if not lock.alive():
                log.error("lost the leader lock (database connection gone): stopping so another scheduler takes over")
                return 3
        return 0
    finally:
        sched.shutdown(wait=True)
        lock.release()


def default_lock_file(cfg: Config) -> Path:
    return cfg.path(cfg.dispatch.scheduler.lock_file)
