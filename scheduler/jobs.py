"""What the scheduler's jobs do. Each job is a module-level function taking only plain
arguments (config path and database URL), so the job store keeps a reference and two
strings, never a pickled object. Every job is safe to run twice: evaluations are keyed
by (rule, client, day), sends by idempotency key, and the nightly slot by `job_run`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError

from engine import db
from engine.audit import checkpoint
from engine.facts import trading_calendar
from engine.config.base import Config, load_config
from engine.dispatch.tables import JobRun
from engine.language.loading import RuleSet
from engine.dispatch.outbox import OUTBOX, aware, dispatch_once, worker_id
from engine import clock

log = logging.getLogger("steward.scheduler")
JOB_RUN = JobRun.__table__  # type: ignore[attr-defined]


def context(config_path: str | None, database_url: str | None) -> tuple[Config, Engine]:
    cfg = load_config(config_path)
    if database_url:
        cfg = cfg.model_copy(update={"database": cfg.database.model_copy(update={"url": database_url})})
    return cfg, db.engine_for(cfg)


def local_today(cfg: Config, now: datetime | None = None) -> date:
    return (now or clock.now()).astimezone(cfg.tz).date()


def claim_slot(engine: Engine, job_id: str, slot: str, stale_after: float | None = None,
               instance: str | None = None) -> bool:
    """Record that this instance runs `job_id` for `slot`; False if it ran (or runs) elsewhere.

    A failed run may be retried. A run still marked running whose heartbeat (or start, before its
    first heartbeat) is older than `stale_after` seconds belonged to a process that died: it is
    taken over, and the takeover is written into the slot's detail."""
    now, me = clock.now(), instance or worker_id()
    try:
        with engine.begin() as conn:
            conn.execute(JOB_RUN.insert(), [{"job_id": job_id, "slot": slot, "instance": me,
                                             "status": "running", "started_at": now, "heartbeat_at": now}])
        return True
    except IntegrityError:
        pass
    mine = (JOB_RUN.c.job_id == job_id, JOB_RUN.c.slot == slot)
    with engine.begin() as conn:
        res = conn.execute(update(JOB_RUN).where(*mine, JOB_RUN.c.status == "failed")
                           .values(status="running", instance=me, started_at=now, heartbeat_at=now, finished_at=None))
        if res.rowcount == 1 or stale_after is None:
            return res.rowcount == 1
        cutoff = now - timedelta(seconds=stale_after)
        old = conn.execute(select(JOB_RUN.c.instance, JOB_RUN.c.heartbeat_at, JOB_RUN.c.started_at)
                           .where(*mine, JOB_RUN.c.status == "running")).first()
        if old is None:
            return False
        last = _last_beat(old.heartbeat_at, old.started_at)
        if last > cutoff:
            return False
        note = f"taken over by {me} at {now.isoformat()}: {old.instance} had no heartbeat since {last.isoformat()}"
        res = conn.execute(update(JOB_RUN).where(*mine, JOB_RUN.c.status == "running", JOB_RUN.c.instance == old.instance)
                           .values(instance=me, started_at=now, heartbeat_at=now, detail=note))
    if res.rowcount == 1:
        log.warning("%s %s: %s", job_id, slot, note)
    return res.rowcount == 1


def _last_beat(heartbeat_at: datetime | None, started_at: datetime) -> datetime:
    """A running slot's last sign of life: its heartbeat, or its start before the first beat."""
    return aware(heartbeat_at or started_at) or started_at


@contextmanager
def heartbeat(engine: Engine, job_id: str, slot: str, every: float, instance: str | None = None) -> Iterator[None]:
    """Stamp the slot's heartbeat every `every` seconds while the block runs (a daemon thread), so a
    standby can tell a long night from a dead one."""
    me, stop = instance or worker_id(), threading.Event()

    def beat() -> None:
        lost = False
        while not stop.wait(every):
            try:
                with engine.begin() as conn:
                    res = conn.execute(update(JOB_RUN).where(JOB_RUN.c.job_id == job_id, JOB_RUN.c.slot == slot,
                                                             JOB_RUN.c.instance == me, JOB_RUN.c.status == "running")
                                       .values(heartbeat_at=clock.now()))
                if res.rowcount == 0 and not lost:
                    lost = True
                    log.warning("%s %s: %s no longer holds this slot (taken over after a missed heartbeat?); "
                                "its finish will not overwrite the new holder's status", job_id, slot, me)
            except Exception:  # noqa: BLE001 - a missed beat is retried; the job itself reports its errors
                log.exception("%s %s: heartbeat not written", job_id, slot)

    t = threading.Thread(target=beat, name=f"heartbeat-{job_id}-{slot}", daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def finish_slot(engine: Engine, job_id: str, slot: str, status: str, detail: str,
                instance: str | None = None) -> bool:
    """Close the slot; a takeover note written by `claim_slot` stays in front of the detail.

    With `instance`, only while the slot is still this instance's: a scheduler that was alive but
    could not heartbeat for `job_stale_seconds` (a stalled host, a network split) may have lost its
    night to a standby; its late finish then leaves the slot to the one that took it over (whose
    status is the one that stands: the same-day dedup kept the firings exactly once either way)
    and returns False."""
    mine = [JOB_RUN.c.job_id == job_id, JOB_RUN.c.slot == slot]
    if instance is not None:
        mine.append(JOB_RUN.c.instance == instance)
    with engine.begin() as conn:
        before = conn.execute(select(JOB_RUN.c.detail).where(*mine)).first()
        if before is None:
            owner = conn.execute(select(JOB_RUN.c.instance).where(*mine[:2])).scalar()
            log.warning("%s %s: not closed as %s by %s: %s", job_id, slot, status, instance,
                        f"the slot was taken over by {owner}" if owner else "no such slot was claimed")
            return False
        if before.detail and before.detail.startswith("taken over by ") and status != "running":
            detail = f"{before.detail.split(';', 1)[0]}; {detail}"
        conn.execute(update(JOB_RUN).where(*mine).values(status=status, detail=detail[:2000], finished_at=clock.now()))
    return True


def approved_rules(engine: Engine, cfg: Config) -> RuleSet:
    """Only approved content runs (engine.compliance.review): the last approved version, from its stored bytes,
    and only with the approved governed config.yaml keys in force."""
    from engine.compliance.review import approved_ruleset

    return approved_ruleset(engine, cfg, for_run=True)[0]  # also refuses unapproved governed config keys


def evaluate_day(engine: Engine, cfg: Config, day: date, urgent_only: bool = False,
                 config_path: str | None = None) -> str:
    """Run the evaluation for `day` if it is a trading day; returns what happened."""
    from engine.pipeline import shards  # heavy: only when a job runs

    exchange = cfg.calendar.exchange
    with engine.begin() as conn:
        trading_calendar.ensure(conn, exchange, day - timedelta(days=90), day)
        if not trading_calendar.is_trading_day(conn, exchange, day):
            return f"skipped: {day} is not a trading day on {exchange}"
    ruleset = approved_rules(engine, cfg)
    if urgent_only:
        rules = tuple(r for r in ruleset.rules if r.spec.urgent or "urgent" in r.spec.tags)
        if not rules:
            return "skipped: no urgent rules"
        ruleset = replace(ruleset, rules=rules)
    if not urgent_only and cfg.evaluation.shard_jobs > 0:
        from scheduler import distributed  # PostgreSQL deployments with shard workers (docs/operations.md)

        # One instant for every shard, whatever machine and minute it runs on: the leader's clock at enqueue.
        enq = distributed.enqueue_day(engine, cfg, config_path, day, cfg.evaluation.shard_jobs, now=clock.now(),
                                      min_shard=cfg.evaluation.shard_jobs_min_clients)
        distributed.await_day(engine, enq, timeout=cfg.evaluation.shard_jobs_wait_minutes * 60.0)
        return f"run {enq.run_id}: {len(enq.shards)} shard jobs done" + (" (enqueued earlier)" if enq.reused else "")
    s = shards.run_sharded(engine, cfg, ruleset, day, cfg.evaluation.workers or shards.default_workers(),
                           mode="intraday" if urgent_only else "run")
    return f"run {s.run_id}: {s.clients} clients, {s.firings} firings"


def nightly_slot(engine: Engine, cfg: Config, day: date, config_path: str | None = None) -> str:
    """The nightly evaluation of `day`, once per day across every scheduler; a night left running
    by a scheduler that died is taken over and completed (the same-day dedup keeps it exactly once)."""
    slot, me = day.isoformat(), worker_id()
    stale = cfg.dispatch.scheduler.job_stale_seconds
    if not claim_slot(engine, "nightly", slot, stale_after=stale, instance=me):
        log.info("nightly %s: already run by another instance", slot)
        return "already run"
    try:
        with heartbeat(engine, "nightly", slot, every=stale / 5, instance=me):
            detail = evaluate_day(engine, cfg, day, config_path=config_path)
    except Exception as e:
        finish_slot(engine, "nightly", slot, "failed", f"{type(e).__name__}: {e}", instance=me)
        raise
    if not finish_slot(engine, "nightly", slot, "skipped" if detail.startswith("skipped") else "done", detail,
                       instance=me):
        detail = f"{detail} (finished after another instance took the night over: its status stands)"
    log.info("nightly %s: %s", slot, detail)
    return detail


def nightly(config_path: str | None, database_url: str | None) -> None:
    cfg, engine = context(config_path, database_url)
    try:
        nightly_slot(engine, cfg, local_today(cfg), config_path)
        with engine.connect() as conn:  # the day's chain head, published outside the database
            cp = checkpoint.publish(conn, cfg, clock.now())  # the file, then the notary if configured
        log.info("audit checkpoint #%s %s", cp.seq, cp.hash)
    finally:
        engine.dispose()


def abandoned_nights(engine: Engine, cfg: Config) -> list[date]:
    """Nights still marked running whose scheduler stopped beating (it died mid-run)."""
    cutoff = clock.now() - timedelta(seconds=cfg.dispatch.scheduler.job_stale_seconds)
    with engine.connect() as conn:
        rows = conn.execute(select(JOB_RUN.c.slot, JOB_RUN.c.heartbeat_at, JOB_RUN.c.started_at)
                            .where(JOB_RUN.c.job_id == "nightly", JOB_RUN.c.status == "running")).all()
    return sorted(date.fromisoformat(r.slot) for r in rows if _last_beat(r.heartbeat_at, r.started_at) <= cutoff)


def recover(config_path: str | None, database_url: str | None) -> None:
    """The leader's watch for nights a dead scheduler left running: each is taken over and
    completed (APScheduler already moved the nightly job to the next day when the dead one
    started it, so nothing else would run that day again)."""
    cfg, engine = context(config_path, database_url)
    try:
        if recover_nights(engine, cfg, config_path):
            with engine.connect() as conn:
                checkpoint.publish(conn, cfg, clock.now())
    finally:
        engine.dispose()


def recover_nights(engine: Engine, cfg: Config, config_path: str | None = None) -> dict[date, str]:
    """Take over and complete each abandoned night; what each came to."""
    done = {}
    for day in abandoned_nights(engine, cfg):
        done[day] = nightly_slot(engine, cfg, day, config_path)
        log.warning("nightly %s: resumed after its scheduler died: %s", day, done[day])
    return done


def intraday(config_path: str | None, database_url: str | None) -> None:
    cfg, engine = context(config_path, database_url)
    try:
        log.info("intraday: %s", evaluate_day(engine, cfg, local_today(cfg), urgent_only=True))
    finally:
        engine.dispose()


def dispatch(config_path: str | None, database_url: str | None) -> None:
    from engine.dispatch.release import release_due

    cfg, engine = context(config_path, database_url)
    now = clock.now()
    try:
        with engine.connect() as conn:
            due = any((aware(r[0]) or now) <= now for r in conn.execute(select(OUTBOX.c.not_before).where(OUTBOX.c.state == "held")))
        if due:
            release_due(engine, cfg, approved_rules(engine, cfg), now)
        s = dispatch_once(engine, cfg, now)
        if s.claimed:
            log.info("dispatch: %s", s)
    finally:
        engine.dispose()


def escalate(config_path: str | None, database_url: str | None) -> None:
    from engine.servicing.task_outcomes import escalate_overdue

    cfg, engine = context(config_path, database_url)
    try:
        n = escalate_overdue(engine, cfg, local_today(cfg))
        if n:
            log.warning("escalation: %d overdue call task(s) escalated to supervisors", n)
    finally:
        engine.dispose()


def coverage_warning(engine: Engine, cfg: Config, today: date) -> str | None:
    """A loud message when the trading calendar ends within the horizon, else None."""
    horizon = today + timedelta(days=cfg.dispatch.scheduler.calendar_horizon_days)
    exchange = cfg.calendar.exchange
    with engine.connect() as conn:
        _, last = trading_calendar.coverage(conn, exchange)
    if last is not None and last >= horizon:
        return None
    ends = f"ends on {last}" if last else "is empty"
    return (f"TRADING CALENDAR GAP: the {exchange} calendar {ends}, short of {horizon} "
            f"({cfg.dispatch.scheduler.calendar_horizon_days} days ahead). Nightly runs stop on days it does not know. "
            f"Run `steward calendar sync`; if exchange-calendars does not know the next year yet, import the exchange's "
            f"published closures (`steward calendar import FILE`, CSV or iCalendar) or add it by hand: "
            f"`steward calendar set {last + timedelta(days=1) if last else today} --through YYYY-12-31 --open --weekdays`, "
            f"then `steward calendar set DATE --closed` for each holiday (see docs/operations.md).")


def record_calendar_status(engine: Engine, cfg: Config, today: date) -> str | None:
    """Check coverage, log a loud error on a coming gap, and keep the result as today's
    `calendar_check` job_run row (status `alert` or `done`) for `steward scheduler --status`."""
    msg = coverage_warning(engine, cfg, today)
    now = clock.now()
    with engine.begin() as conn:
        conn.execute(JOB_RUN.delete().where(JOB_RUN.c.job_id == "calendar_check", JOB_RUN.c.slot == today.isoformat()))
        conn.execute(JOB_RUN.insert(), [{"job_id": "calendar_check", "slot": today.isoformat(), "instance": worker_id(),
                                         "status": "alert" if msg else "done", "started_at": now, "finished_at": now,
                                         "detail": (msg or "trading calendar covers the horizon")[:2000]}])
    if msg:
        log.error(msg)
    return msg


def last_runs(engine: Engine) -> list[Any]:
    """The newest job_run row of each job."""
    with engine.connect() as conn:
        newest = select(JOB_RUN.c.job_id, func.max(JOB_RUN.c.id).label("id")).group_by(JOB_RUN.c.job_id).subquery()
        q = select(JOB_RUN).join(newest, JOB_RUN.c.id == newest.c.id).order_by(JOB_RUN.c.job_id)
        return list(conn.execute(q))


def calendar_check(config_path: str | None, database_url: str | None) -> None:
    cfg, engine = context(config_path, database_url)
    try:
        today = local_today(cfg)
        with engine.begin() as conn:
            trading_calendar.ensure(conn, cfg.calendar.exchange, today - timedelta(days=90), today + timedelta(days=366))
        record_calendar_status(engine, cfg, today)
    finally:
        engine.dispose()
