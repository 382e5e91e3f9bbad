"""The scheduler leader enqueues the night's shards on PostgreSQL, once.

The path is the scheduler's own: leadership by the PostgreSQL advisory lock (scheduler.leader),
then the nightly job as APScheduler calls it (the `nightly_evaluation` job spec, resolved from
its reference and called with its plain arguments) with `evaluation.shard_jobs: 2`. Shard
workers run in two process groups ("two machines"). A standby scheduler (the service's own
loop, in a thread) waits for leadership the whole night and enqueues nothing; a second call for
the day while the run is open, and a second leader after the first is gone, enqueue nothing new.
The day equals a one-process day, and the chain verifies. Time is the test's fixed clock: the
leader passes it to every shard job."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from apscheduler.util import ref_to_obj
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy import Engine, text

from engine import clock
from engine.audit.log import LOCK_KEY, verify
from engine.compliance import review
from engine.config.base import Config
from engine.demo import book as demo
from engine.pipeline import run as pipeline
from engine.db import make_engine
from engine.errors import StewardError
from engine.facts.base import client_ids
from scheduler import distributed, jobs, leader, service
from tests import conftest
from tests.test_distributed import ROOT, _blocked, _stop, _wait_for, _worker
from tests.test_sharding import AS_OF, CLIENTS, NOW, _day

pytestmark = pytest.mark.postgres


@pytest.fixture
def book_twice(full_cfg: Config) -> Iterator[tuple[Engine, Engine]]:
    """The same book and approved version in two databases: built once, then cloned (CREATE DATABASE ... TEMPLATE)."""
    with conftest.pg_databases(1) as (ref,):
        demo.build_book(ref, full_cfg, clients=CLIENTS, seed=11, as_of=AS_OF)
        review.demo_bootstrap(ref, full_cfg)
        ref.dispose()  # a template database takes no other connection
        name = f"steward_t_{uuid.uuid4().hex[:10]}"
        with conftest._admin_conn() as c:
            c.execute(f'CREATE DATABASE "{name}" TEMPLATE "{ref.url.database}"')
        dist = make_engine(conftest._pg_url(name))
        try:
            yield ref, dist
        finally:
            dist.dispose()
            with conftest._admin_conn() as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _config(tmp_path: Path, url: str) -> Path:
    """The shipped config on the scratch database, with two shard jobs a night. The content folders are
    linked beside it, so the approved snapshot's labels (rules, templates, compliance) are the same."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    for folder in ("rules", "templates", "compliance"):
        (tmp_path / folder).symlink_to(ROOT / folder, target_is_directory=True)
    data["database"] = {"url": url}
    data["evaluation"].update(batch_size=100, shard_jobs=2, shard_jobs_min_clients=1, shard_jobs_wait_minutes=1)
    data["dispatch"]["scheduler"].update(standby_poll_seconds=0.2, lock_file=str(tmp_path / "scheduler.lock"))
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return p


def _shard_jobs(eng: Engine) -> list[tuple[int, str]]:
    with eng.connect() as c:
        return [(int(r.id), str(r.queueing_lock)) for r in
                c.execute(text("SELECT id, queueing_lock FROM procrastinate_jobs ORDER BY id"))]


def _nightly_job(cfg: Config, config_path: str, url: str) -> None:
    """Run the nightly job the way APScheduler does: by its stored reference and plain arguments."""
    spec = next(s for s in service.job_specs(cfg, config_path, url) if s.id == "nightly_evaluation")
    ref_to_obj(spec.func)(**spec.kwargs)


def test_the_leader_enqueues_the_nights_shards_once_and_a_standby_enqueues_nothing(
        book_twice: tuple[Engine, Engine], full_cfg: Config, tmp_path: Path) -> None:
    ref, dist = book_twice
    cfg100 = full_cfg.model_copy(update={"evaluation": full_cfg.evaluation.model_copy(update={"batch_size": 100})})
    with clock.using(clock.FixedClock(NOW)):
        pipeline.run(ref, cfg100, jobs.approved_rules(ref, full_cfg), AS_OF, now=NOW)  # the one-process day

    url = dist.url.render_as_string(hide_password=False)
    distributed.install_schema(url)
    config = _config(tmp_path, url)
    cfg, _ = jobs.context(str(config), url)
    key = cfg.dispatch.scheduler.lock_key
    stop_standby = threading.Event()
    standby_exit: list[int] = []
    workers = []
    with clock.using(clock.FixedClock(NOW)):
        lead = leader.lock_for(dist, key, tmp_path / "unused.lock")
        assert isinstance(lead, leader.AdvisoryLock) and leader.wait_for_leadership(lead, 0.2, threading.Event())
        standby = threading.Thread(target=lambda: standby_exit.append(
            service.run_service(dist, cfg, str(config), url, stop_standby)), daemon=True)
        standby.start()
        night: list[BaseException | None] = []

        def nightly() -> None:
            try:
                _nightly_job(cfg, str(config), url)
                night.append(None)
            except BaseException as e:  # reported by the test thread
                night.append(e)

        try:
            with dist.connect() as hold:  # hold the chain lock: both shards stop inside their first batch
                hold.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
                hold.commit()
                try:
                    workers = [_worker(url), _worker(url)]
                    t = threading.Thread(target=nightly, daemon=True)
                    t.start()
                    _wait_for(lambda: _blocked(dist) == 2, "both shards to be mid-batch")
                    enqueued = _shard_jobs(dist)
                    assert [lock.rsplit(":", 1)[1] for _, lock in enqueued] == ["0", "1"]
                    (run_id,) = {int(lock.split(":")[1]) for _, lock in enqueued}
                    again = distributed.enqueue_day(dist, cfg, str(config), AS_OF, 2, now=NOW, min_shard=1)
                    assert again.reused and again.run_id == run_id and again.job_ids == [i for i, _ in enqueued]
                    assert _shard_jobs(dist) == enqueued  # the second call enqueued nothing
                finally:
                    hold.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                    hold.commit()
            t.join(90)
            assert night == [None], night
        finally:
            _stop(workers)
            stop_standby.set()
            standby.join(30)
            if night != [None]:
                lead.release()
        assert standby_exit == [0] and not standby.is_alive()  # it never led
        assert _shard_jobs(dist) == enqueued  # nor enqueued
        lead.release()  # the leader is gone; the next one runs the same night's job
        second = leader.lock_for(dist, key, tmp_path / "unused.lock")
        assert second.try_acquire()
        try:
            assert jobs.nightly_slot(dist, cfg, jobs.local_today(cfg), str(config)) == "already run"
            _nightly_job(cfg, str(config), url)
        finally:
            second.release()
    assert _shard_jobs(dist) == enqueued  # the second leader enqueued nothing

    with dist.connect() as c:
        shard_rows = c.execute(text("SELECT status, attempts, args FROM procrastinate_jobs ORDER BY id")).all()
        clients = client_ids(c, AS_OF)
        run = c.execute(text("SELECT status, firings, clients, finished_at FROM evaluation_run WHERE id = :i"),
                        {"i": run_id}).one()
        slots = [tuple(r) for r in c.execute(text("SELECT slot, status FROM job_run WHERE job_id = 'nightly'"))]
        evaluated = c.execute(text("SELECT count(DISTINCT client_id), count(*) FROM firing WHERE run_id = :i"),
                              {"i": run_id}).one()
        assert verify(c).ok
    assert [(r.status, r.attempts) for r in shard_rows] == [("succeeded", 1), ("succeeded", 1)]  # each ran once
    assert slots == [(AS_OF.isoformat(), "done")]
    in_shards = [i for r in shard_rows for i in clients if r.args["lo"] <= i <= r.args["hi"]]
    assert in_shards == clients and len(clients) == CLIENTS  # every client in exactly one shard job
    expected, got = _day(ref), _day(dist)
    assert expected["firings"] and [e for e in expected["events"] if json.loads(e)["firing"]] and got == expected
    assert run.status == "finished" and run.finished_at is not None and run.clients == CLIENTS
    assert run.firings == len(expected["firings"]) == evaluated[1]


@pytest.fixture
def small_book(pg_engine: Engine, full_cfg: Config) -> Engine:
    demo.build_book(pg_engine, full_cfg, clients=20, seed=11, as_of=AS_OF)
    review.demo_bootstrap(pg_engine, full_cfg)
    return pg_engine


def test_the_run_and_its_jobs_commit_together_and_enqueueing_again_adds_only_failed_shards(
        small_book: Engine, full_cfg: Config) -> None:
    """The run row and the day's jobs are one transaction: when one deferral fails (here the second
    shard's queueing lock is taken), neither the run nor the first shard's job is left behind. Then,
    while the day's run is open, enqueueing it again adds nothing, except a new job for a shard whose
    job ended badly (a retried nightly slot finishes the day)."""
    pg_engine = small_book
    with pytest.raises(StewardError, match="procrastinate's tables are missing.*scheduler.distributed schema"):
        distributed.enqueue_day(pg_engine, full_cfg, None, AS_OF, 2, now=NOW, min_shard=1)
    url = pg_engine.url.render_as_string(hide_password=False)
    distributed.install_schema(url)
    with pg_engine.connect() as c:
        next_run = int(c.execute(text("SELECT coalesce(max(id), 0) + 1 FROM evaluation_run")).scalar_one())
    app = distributed.make_app(url)
    with app.open():
        taken = app.tasks[distributed.TASK].configure(queueing_lock=f"steward-shard:{next_run}:1", queue="elsewhere")
        taken.defer(config_path=None, database_url=url, run_id=0, rules_version="", as_of="", lo="", hi="", now=None)
    with pytest.raises(AlreadyEnqueued):
        distributed.enqueue_day(pg_engine, full_cfg, None, AS_OF, 2, now=NOW, min_shard=1)
    with pg_engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM evaluation_run")).scalar_one() == 0
        assert c.execute(text("SELECT queue_name FROM procrastinate_jobs")).scalars().all() == ["elsewhere"]
        c.execute(text("DELETE FROM procrastinate_jobs"))
        c.commit()

    first = distributed.enqueue_day(pg_engine, full_cfg, None, AS_OF, 2, now=NOW, min_shard=1)
    again = distributed.enqueue_day(pg_engine, full_cfg, None, AS_OF, 2, now=NOW, min_shard=1)
    assert not first.reused and len(first.job_ids) == 2
    assert again.reused and (again.run_id, again.job_ids, again.shards, again.requeued) == (
        first.run_id, first.job_ids, first.shards, ())
    app = distributed.make_app(url)
    with app.open():
        assert app.job_manager.cancel_job_by_id(first.job_ids[1])  # as a failed shard would end
    third = distributed.enqueue_day(pg_engine, full_cfg, None, AS_OF, 2, now=NOW, min_shard=1)
    assert (third.run_id, third.shards, third.requeued) == (first.run_id, first.shards, (1,))
    assert third.job_ids[0] == first.job_ids[0] and third.job_ids[1] not in first.job_ids
    with pg_engine.connect() as c:
        rows = c.execute(text("SELECT id, status, queueing_lock, args FROM procrastinate_jobs ORDER BY id")).all()
        assert c.execute(text("SELECT count(*) FROM evaluation_run")).scalar_one() == 1
    assert [(r.status, r.queueing_lock) for r in rows] == [
        ("todo", f"steward-shard:{first.run_id}:0"), ("cancelled", f"steward-shard:{first.run_id}:1"),
        ("todo", f"steward-shard:{first.run_id}:1")]
    assert rows[2].args == rows[1].args  # the same range, clock and rules version
