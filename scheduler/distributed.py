"""Shards of a nightly run as procrastinate jobs: one day evaluated by workers on several machines.

PostgreSQL deployments only (procrastinate keeps its queue in PostgreSQL, so the database the
run writes to is the only server). This module is the only importer of procrastinate.

- The scheduler leader calls `enqueue_day`: it opens the run (one `evaluation_run` row) and
  defers one `steward.evaluate_shard` job per client id range, each with a queueing lock
  (`steward-shard:<run>:<index>`), in the same transaction as the run row. A second call for
  the day while its run is open (another leader, a retried nightly slot) finds that run and
  its jobs and enqueues only the shards whose job failed or was cancelled.
- Workers on any machine (`python -m scheduler.distributed worker`) take jobs and evaluate
  their range with `engine.pipeline.run.evaluate_range`, one transaction per batch.
- A worker that dies mid-shard stops sending heartbeats; `retry_stalled` (called by the
  leader's `await_day`, or by any operator) puts its job back, and the retry skips every batch
  the dead worker had committed (same-day dedup keyed by rule and client): firings, outbox rows
  and audit events stay exactly once, and the chain verifies (each batch appended under the
  chain lock, in its own transaction).
- `await_day` waits for every shard, then closes the run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from procrastinate import App, PsycopgConnector
from sqlalchemy import Engine, func, select, text
from sqlalchemy.engine import Connection

from engine.config.base import Config
from engine.errors import StewardError
from engine.pipeline import run as pipeline
from engine.pipeline import shards
from engine.facts import trading_calendar
from engine.pipeline import recording
from engine.pipeline.recording import FIRING, RUN
from scheduler import jobs

log = logging.getLogger("steward.distributed")
QUEUE = "steward-shards"
TASK = "steward.evaluate_shard"


def _conninfo(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        raise ValueError(f"distributed shards need PostgreSQL (procrastinate's queue lives there); got {database_url!r}: "
                         "on SQLite use `steward run --workers N` on one machine")
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def evaluate_shard(config_path: str | None, database_url: str, run_id: int, rules_version: str, as_of: str,
                   lo: str, hi: str, now: str | None, batch_size: int | None = None, index: int | None = None,
                   clients: int | None = None) -> dict[str, int]:
    """The job: evaluate one client id range for an open run (safe to run again: dedup).

    `index` and `clients` describe the shard (its place in the plan, its size when enqueued) for
    a leader that finds the day already enqueued; the evaluation does not use them."""
    cfg, engine = jobs.context(config_path, database_url)
    if batch_size:
        cfg = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"batch_size": batch_size})})
    try:
        ruleset = jobs.approved_rules(engine, cfg)
        if ruleset.version != rules_version:
            raise RuntimeError(f"run {run_id} was opened with rules version {rules_version}, but the approved version "
                               f"is now {ruleset.version}: start a new run for the day")
        advisors = _advisors(engine)
        s = pipeline.evaluate_range(engine, cfg, ruleset, date.fromisoformat(as_of), run_id, advisors,
                                    datetime.fromisoformat(now) if now else None, lo, hi)
        return {"clients": s.clients, "firings": s.firings, "skipped_duplicate": s.skipped_duplicate}
    finally:
        engine.dispose()


def _advisors(engine: Engine) -> dict[str, dict[str, str]]:
    with engine.connect() as conn:
        return pipeline.advisors_of(conn)


def make_app(database_url: str) -> App:
    """A procrastinate app on the run's own PostgreSQL database, with the shard task."""
    app = App(connector=PsycopgConnector(conninfo=_conninfo(database_url)))
    app.task(name=TASK, queue=QUEUE, pass_context=False)(evaluate_shard)
    return app


def install_schema(database_url: str) -> None:
    """Create procrastinate's tables (once per database; `steward`'s migrations do not own them)."""
    app = make_app(database_url)
    with app.open():
        app.schema_manager.apply_schema()


ENQUEUE_LOCK = 0x5354_5744_5348_4400  # "STWDSHD\0": two leaders (or two calls) enqueue a day one at a time
"""Transaction-level advisory lock taken while a day's run is looked up or opened and its shards deferred."""


@dataclass(frozen=True)
class Enqueued:
    run_id: int
    shards: list[shards.Shard]
    job_ids: list[int]
    reused: bool = False
    """True when the day's run was already open with its shard jobs (only ended-badly shards enqueued again)."""
    requeued: tuple[int, ...] = ()
    """Shard indexes enqueued again because their job had failed, been cancelled or aborted."""


def _lock_name(run_id: int, index: int) -> str:
    return f"steward-shard:{run_id}:{index}"


ENDED_BADLY = ("failed", "cancelled", "aborted")


def _open_day(conn: Connection, day: date, rules_version: str) -> tuple[int, list[Any]] | None:
    """The day's open run and the newest job of each of its shards, when a leader (this one or another)
    already enqueued it."""
    runs = conn.execute(select(RUN.c.id).where(RUN.c.as_of == day, RUN.c.mode == "run", RUN.c.status == "running",
                                               RUN.c.rules_version == rules_version).order_by(RUN.c.id.desc()))
    for (run_id,) in runs:
        rows = conn.execute(text("SELECT DISTINCT ON (queueing_lock) id, queueing_lock, status, args FROM procrastinate_jobs "
                                 "WHERE queue_name = :q AND task_name = :t AND queueing_lock LIKE :p "
                                 "ORDER BY queueing_lock, id DESC"),
                            {"q": QUEUE, "t": TASK, "p": f"steward-shard:{run_id}:%"}).all()
        if rows:
            return int(run_id), sorted(rows, key=lambda r: int(r.queueing_lock.rsplit(":", 1)[1]))
    return None


def _resume(conn: Connection, app: App, run_id: int, rows: list[Any]) -> Enqueued:
    """The day's run as enqueued; a shard whose job ended badly is enqueued again (same range and lock)."""
    driver = conn.connection.driver_connection
    plan, ids, again = [], [], []
    for r in rows:
        index = int(r.queueing_lock.rsplit(":", 1)[1])
        plan.append(shards.Shard(index, r.args["lo"], r.args["hi"], int(r.args.get("clients") or 0)))
        if str(r.status) in ENDED_BADLY:
            ids.append(int(app.tasks[TASK].configure(queueing_lock=r.queueing_lock, connection=driver).defer(**r.args)))
            again.append(index)
        else:
            ids.append(int(r.id))
    return Enqueued(run_id, plan, ids, reused=True, requeued=tuple(again))


def enqueue_day(engine: Engine, cfg: Config, config_path: str | None, day: date, n_shards: int,
                now: datetime | None = None, min_shard: int = shards.MIN_SHARD,
                batch_size: int | None = None) -> Enqueued:
    """The leader's part: open the day's run and defer one job per client id range, in one transaction.

    Idempotent per day: while the day's run is open (its jobs queued, running or done but the run
    not yet closed), a second call, from this leader or another, returns that run and its jobs and
    enqueues only the shards whose job failed or was cancelled (a retried nightly slot). The run row and the jobs commit together: a leader that dies half-way leaves
    neither a run without jobs nor jobs without a run.
    """
    url = engine.url.render_as_string(hide_password=False)
    _conninfo(url)  # refuse before anything is written
    ruleset = jobs.approved_rules(engine, cfg)
    plan = shards.plan(engine, day, n_shards, min_shard)
    app = make_app(url)
    task = app.tasks[TASK]
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ENQUEUE_LOCK})
        if conn.execute(text("SELECT to_regclass('procrastinate_jobs')")).scalar() is None:
            raise StewardError(f"{engine.url.render_as_string()}: procrastinate's tables are missing, so no shard job can be "
                               "queued: run `python -m scheduler.distributed schema --database URL` once (docs/operations.md)")
        if (found := _open_day(conn, day, ruleset.version)) is not None:
            enq = _resume(conn, app, *found)
            log.info("day %s: run %s already has its %d shard jobs; enqueued again: %s", day, enq.run_id,
                     len(enq.job_ids), list(enq.requeued) or "none")
            return enq
        trading_calendar.ensure(conn, cfg.calendar.exchange, day - timedelta(days=90), day)
        recording.fail_dead_runs(conn)
        run_id = recording.start_run(conn, day, "run", ruleset.version, now)
        driver = conn.connection.driver_connection  # procrastinate inserts on this transaction's connection
        ids = [int(task.configure(queueing_lock=_lock_name(run_id, s.index), connection=driver).defer(
            config_path=config_path, database_url=url, run_id=run_id, rules_version=ruleset.version,
            as_of=day.isoformat(), lo=s.lo, hi=s.hi, now=now.isoformat() if now else None,
            batch_size=batch_size, index=s.index, clients=s.clients)) for s in plan]
    return Enqueued(run_id, plan, ids)


async def retry_stalled(app: App, seconds_since_heartbeat: float = 30.0) -> list[int]:
    """Put back the shard jobs whose worker stopped sending heartbeats (killed, machine lost)."""
    stalled = list(await app.job_manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=seconds_since_heartbeat))
    for job in stalled:
        await app.job_manager.retry_job(job)
    return [int(j.id) for j in stalled if j.id is not None]


async def _wait(app: App, enq: Enqueued, timeout: float, seconds_since_heartbeat: float, poll: float) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    wanted = set(enq.job_ids)
    async with app.open_async():
        while True:
            states = {int(j.id): str(j.status) for j in await app.job_manager.list_jobs_async(queue=QUEUE)
                      if j.id in wanted}
            if len(states) == len(wanted) and all(v == "succeeded" for v in states.values()):
                return states
            if any(v in ("failed", "cancelled", "aborted") for v in states.values()):
                raise shards.ShardFailed(f"run {enq.run_id}: shard jobs {states}: run the day again")
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {enq.run_id}: shards not done after {timeout:.0f} s: {states}")
            retried = await retry_stalled(app, seconds_since_heartbeat)
            if retried:
                log.warning("run %s: retried stalled shard jobs %s", enq.run_id, retried)
            await asyncio.sleep(poll)


def await_day(engine: Engine, enq: Enqueued, timeout: float, seconds_since_heartbeat: float = 30.0,
              poll: float = 0.5) -> dict[int, str]:
    """Wait (bounded) until every shard job succeeded, retrying stalled ones; then close the run."""
    app = make_app(engine.url.render_as_string(hide_password=False))
    states = asyncio.run(_wait(app, enq, timeout, seconds_since_heartbeat, poll))
    with engine.connect() as conn:
        firings = conn.execute(select(func.count()).where(FIRING.c.run_id == enq.run_id)).scalar() or 0
    total = pipeline.RunSummary(date.min, enq.run_id, clients=sum(s.clients for s in enq.shards), firings=int(firings))
    pipeline.finish(engine, total)
    return states


def work(database_url: str, concurrency: int = 1, heartbeat: float = 10.0, **options: Any) -> None:
    """Run a shard worker in this process until it is stopped (SIGTERM or SIGINT)."""
    make_app(database_url).run_worker(queues=[QUEUE], concurrency=concurrency, update_heartbeat_interval=heartbeat,
                                      **options)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="python -m scheduler.distributed",
        description="Shard workers for nightly runs on PostgreSQL (procrastinate).",
        epilog="examples:\n  python -m scheduler.distributed schema --database postgresql+psycopg://steward@db/steward\n"
               "  python -m scheduler.distributed worker --database postgresql+psycopg://steward@db/steward",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=("schema", "worker"), help="schema: create procrastinate's tables; worker: take shard jobs")
    ap.add_argument("--database", required=True, help="the PostgreSQL URL steward uses")
    ap.add_argument("--concurrency", type=int, default=1, help="jobs at once in this process (one per core: start one process per core)")
    ap.add_argument("--heartbeat", type=float, default=10.0, help="seconds between worker heartbeats")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    from engine.composition import install

    install()
    if a.command == "schema":
        install_schema(a.database)
    else:
        work(a.database, a.concurrency, a.heartbeat)


if __name__ == "__main__":
    main()
