"""A day's shards as procrastinate jobs on PostgreSQL, taken by workers in two process groups
("two machines"); one worker is killed mid-shard. The shard is retried and the day equals a
one-process day: firings, outbox rows and audit events exactly once, one chain that verifies."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from engine.audit.log import LOCK_KEY
from engine.compliance import review
from engine.config.base import Config
from engine.demo import book as demo
from engine.pipeline import run as pipeline
from scheduler import distributed, jobs
from tests import conftest
from tests.test_sharding import AS_OF, CLIENTS, NOW, _day

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pg_pair() -> Iterator[tuple[Engine, Engine]]:
    with conftest.pg_databases(2) as engs:
        yield engs[0], engs[1]


def _worker(url: str) -> subprocess.Popen[bytes]:
    """A worker in its own process group and session: a separate "machine"."""
    return subprocess.Popen([sys.executable, "-m", "scheduler.distributed", "worker", "--database", url, "--heartbeat", "0.3"],
                            cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL)


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        if w.poll() is None:
            os.killpg(w.pid, signal.SIGTERM)
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
                w.wait(10)


def _wait_for(cond, what: str, limit: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _blocked(eng: Engine) -> int:
    """Backends waiting on a lock: a shard at the chain lock (advisory), or a shard storing the same
    rule source as another shard's open batch (waits for that transaction, then skips the row)."""
    with eng.connect() as c:
        return int(c.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                  "AND datname = current_database()")).scalar_one())


def test_a_worker_killed_mid_shard_is_retried_and_the_day_is_recorded_exactly_once(
        pg_pair: tuple[Engine, Engine], full_cfg: Config) -> None:
    ref, dist = pg_pair
    for e in (ref, dist):
        demo.build_book(e, full_cfg, clients=CLIENTS, seed=11, as_of=AS_OF)
        review.demo_bootstrap(e, full_cfg)
    cfg100 = full_cfg.model_copy(update={"evaluation": full_cfg.evaluation.model_copy(update={"batch_size": 100})})
    pipeline.run(ref, cfg100, jobs.approved_rules(ref, full_cfg), AS_OF, now=NOW)

    url = dist.url.render_as_string(hide_password=False)
    distributed.install_schema(url)
    enq = distributed.enqueue_day(dist, full_cfg, str(ROOT / "config.yaml"), AS_OF, 2, now=NOW, min_shard=1,
                                  batch_size=100)
    assert len(enq.job_ids) == 2
    workers: list[subprocess.Popen[bytes]] = []
    with dist.connect() as hold:  # the test holds the chain lock: each shard stops inside its first batch
        hold.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
        hold.commit()
        try:
            workers = [_worker(url), _worker(url)]
            _wait_for(lambda: _blocked(dist) == 2, "both shards to be mid-batch")
            os.killpg(workers[0].pid, signal.SIGKILL)  # a machine lost mid-shard
            workers[0].wait(10)
        except BaseException:
            _stop(workers)
            raise
        finally:
            hold.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
            hold.commit()
        try:
            states = distributed.await_day(dist, enq, timeout=90, seconds_since_heartbeat=1.5, poll=0.2)
        finally:
            _stop(workers)
    assert set(states.values()) == {"succeeded"}
    with dist.connect() as c:
        attempts = sorted(int(r[0]) for r in c.execute(text("SELECT attempts FROM procrastinate_jobs")))
        run = c.execute(text("SELECT firings, finished_at FROM evaluation_run WHERE id = :i"), {"i": enq.run_id}).one()
    assert attempts[-1] >= 1  # the killed worker's shard ran again
    expected, got = _day(ref), _day(dist)
    for day in (expected, got):  # the review bootstrap's events carry the wall clock: compare the day's own
        day["events"] = [e for e in day["events"] if json.loads(e)["firing"] is not None]
    assert expected["events"] and got == expected and run.finished_at is not None and run.firings == len(expected["firings"])
