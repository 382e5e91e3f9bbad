"""Comparison harness only: the nightly shard job as a Celery task (bench/task_engines.py).

Steward does not use Celery (docs/operations.md, "Why procrastinate, not Celery"): this module
exists so the same shard workload can be timed and killed on Celery next to procrastinate. It
lives in bench/ and nothing in engine/ or scheduler/ imports it. Celery is an optional extra:
`pip install -e '.[bench]'`.

The task body is the production job itself, `scheduler.distributed.evaluate_shard`: only the
engine that carries it differs. Broker: RabbitMQ (AMQP); results: Redis. Settings are the
ones Celery's documentation gives for long jobs that must survive a killed worker:
`acks_late` (the message is acknowledged when the task ends, so a worker lost mid-task leaves
it unacknowledged and the broker redelivers it), `task_reject_on_worker_lost`, prefetch 1.

    STEWARD_BENCH_QUEUE=q .venv/bin/celery -A bench.celery_shards worker -Q q --pool solo
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from celery import Celery  # noqa: E402

BROKER = os.environ.get("STEWARD_BENCH_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
BACKEND = os.environ.get("STEWARD_BENCH_REDIS", "redis://127.0.0.1:6379/5")
QUEUE = os.environ.get("STEWARD_BENCH_QUEUE", "steward-bench")

app = Celery("steward_bench", broker=BROKER, backend=BACKEND)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    result_expires=3600,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="steward_bench.empty")
def empty() -> None:
    """No work: the engine's own cost of one job (publish, deliver, run, ack, store the result)."""
    return None


@app.task(name="steward_bench.shard")
def shard(**kwargs: Any) -> dict[str, int]:
    from engine.composition import install
    from scheduler import distributed

    install()
    return distributed.evaluate_shard(**kwargs)
