"""The nightly shard jobs on two task engines: procrastinate (PostgreSQL, what Steward uses) and
Celery (RabbitMQ broker, Redis results: a comparison harness only, bench/celery_shards.py).

    .venv/bin/pip install -e '.[test,bench]'
    .venv/bin/python bench/task_engines.py                      # 10k clients, 8 shard jobs, 2 rounds
    .venv/bin/python bench/task_engines.py --clients 10000 --shards 8 --rounds 2 --empty 200 \\
        --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        --amqp amqp://guest:guest@127.0.0.1:5672// --redis redis://127.0.0.1:6379/5

What it measures, with two worker processes on each engine (one per core):
- empty jobs: the engine's own cost. Round trip of one job at a time (enqueue, a worker takes
  it, runs nothing, the client sees it done: procrastinate by polling the job row every 1 ms,
  Celery through its Redis result), then a burst: the cost of enqueueing N jobs and the time
  until the last is done.
- the day: one book split into shard jobs, each the production job
  `scheduler.distributed.evaluate_shard` (which calls `engine.pipeline.run.evaluate_range`),
  from opening the run to closing it. Baseline in the same round, on a clone of the same
  book: `shards.run_sharded` with the same two processes and no task engine. Rounds
  alternate procrastinate and Celery.
- a worker killed mid-shard (SIGKILL to its process group after the run's first committed
  batch): procrastinate's stalled-job retry (`retry_stalled`, heartbeat 0.5 s, stalled after
  2 s) against Celery's `acks_late` redelivery by RabbitMQ when the worker's connection drops.
  The day must equal the one-process day: same firings and outbox rows, chain verifies.

The clock is fixed (`now` = 10:30 Shanghai on the evaluation day). The machine is shared:
compare the ratios to the same-round baseline, not seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, text  # noqa: E402

from bench.nightly import NOW, Books  # noqa: E402
from engine.audit.log import verify  # noqa: E402
from engine.composition import install  # noqa: E402
from engine.compliance import review  # noqa: E402
from engine.config.base import Config, load_config  # noqa: E402
from engine.pipeline import run as pipeline  # noqa: E402
from engine.pipeline import shards  # noqa: E402
from scheduler import distributed, jobs  # noqa: E402

EMPTY = "steward_bench.empty"
CONFIG = ROOT / "config.yaml"


def _empty() -> None:
    return None


def _procrastinate_app(url: str) -> Any:
    """The production app (scheduler.distributed.make_app) plus an empty task on the same queue."""
    app = distributed.make_app(url)
    app.task(name=EMPTY, queue=distributed.QUEUE, pass_context=False)(_empty)
    return app


def procrastinate_worker(url: str, heartbeat: float) -> None:
    logging.basicConfig(level=logging.INFO)
    install()
    _procrastinate_app(url).run_worker(queues=[distributed.QUEUE], concurrency=1, update_heartbeat_interval=heartbeat)


# -- processes ---------------------------------------------------------------------------------

def _spawn(argv: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """A worker in its own process group and session (a separate "machine")."""
    with log.open("ab") as out:
        return subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


def _until(cond: Callable[[], bool], what: str, limit: float = 300.0, step: float = 0.05) -> float:
    t0 = time.perf_counter()
    while not cond():
        if time.perf_counter() - t0 > limit:
            raise TimeoutError(f"waited {limit:.0f} s for {what}")
        time.sleep(step)
    return time.perf_counter() - t0


@contextmanager
def procrastinate_workers(url: str, logs: Path, n: int = 2, heartbeat: float = 0.5) -> Iterator[list[subprocess.Popen[bytes]]]:
    tag = uuid.uuid4().hex[:6]
    paths = [logs / f"procrastinate-{tag}-{i}.log" for i in range(n)]
    procs = [_spawn([sys.executable, str(Path(__file__).resolve()), "procrastinate-worker", url, str(heartbeat)], p)
             for p in paths]
    try:
        _until(lambda: all("Starting worker on queues" in p.read_text(errors="replace") for p in paths),
               "procrastinate workers to start")
        yield procs
    finally:
        _stop(procs)


@contextmanager
def celery_workers(queue: str, logs: Path, env: dict[str, str], n: int = 2) -> Iterator[list[subprocess.Popen[bytes]]]:
    from bench import celery_shards

    tag = uuid.uuid4().hex[:6]
    procs = [_spawn([sys.executable, "-m", "celery", "-A", "bench.celery_shards", "worker", "-Q", queue, "--pool", "solo",
                     "-n", f"bench{i}-{tag}@%h", "--without-gossip", "--without-mingle", "-l", "WARNING"],
                    logs / f"celery-{tag}-{i}.log", env) for i in range(n)]
    try:
        names = {f"bench{i}-{tag}@" for i in range(n)}

        def up() -> bool:
            replies = celery_shards.app.control.ping(timeout=0.5) or []
            return len({k.split("@")[0] + "@" for r in replies for k in r} & names) == n

        _until(up, "celery workers to answer a ping", step=0.2)
        yield procs
    finally:
        _stop(procs)


# -- empty jobs --------------------------------------------------------------------------------

def _pg_status(url: str) -> Any:
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


def empty_procrastinate(url: str, n: int) -> dict[str, float]:
    app = _procrastinate_app(url)
    with app.open(), _pg_status(url) as c:
        task = app.tasks[EMPTY]

        def done(ids: list[int]) -> bool:
            row = c.execute("SELECT count(*) FROM procrastinate_jobs WHERE id = ANY(%s) AND status = 'succeeded'",
                            (ids,)).fetchone()
            return bool(row and row[0] == len(ids))

        for _ in range(4):  # warm: both workers have taken a job, connections are open
            j = task.defer()
            _until(lambda: done([j]), "a warm-up job", step=0.001)
        if n == 0:
            return {}
        trips = []
        for _ in range(max(10, n // 4)):
            t = time.perf_counter()
            j = task.defer()
            _until(lambda: done([j]), "an empty job", step=0.001)
            trips.append(time.perf_counter() - t)
        t = time.perf_counter()
        ids = [task.defer() for _ in range(n)]
        enqueue = time.perf_counter() - t
        _until(lambda: done(ids), "the burst of empty jobs", step=0.005)
        burst = time.perf_counter() - t
    return {"rtt_ms": statistics.median(trips) * 1e3, "rtt_p90_ms": _p90(trips) * 1e3,
            "enqueue_us": enqueue / n * 1e6, "burst_s": burst, "jobs_per_s": n / burst}


def empty_celery(n: int) -> dict[str, float]:
    from bench import celery_shards

    for _ in range(4):
        celery_shards.empty.delay().get(timeout=60)
    trips = []
    for _ in range(max(10, n // 4)):
        t = time.perf_counter()
        celery_shards.empty.delay().get(timeout=60)
        trips.append(time.perf_counter() - t)
    t = time.perf_counter()
    results = [celery_shards.empty.delay() for _ in range(n)]
    enqueue = time.perf_counter() - t
    for r in results:
        r.get(timeout=120)
    burst = time.perf_counter() - t
    return {"rtt_ms": statistics.median(trips) * 1e3, "rtt_p90_ms": _p90(trips) * 1e3,
            "enqueue_us": enqueue / n * 1e6, "burst_s": burst, "jobs_per_s": n / burst}


def _p90(xs: list[float]) -> float:
    return sorted(xs)[int(len(xs) * 0.9) - 1]


# -- the day -----------------------------------------------------------------------------------

def day_outcome(eng: Engine, run_id: int | None = None) -> dict[str, Any]:
    with eng.connect() as c:
        where = "" if run_id is None else f" WHERE run_id = {int(run_id)}"
        firings = int(c.execute(text(f"SELECT count(*) FROM firing{where}")).scalar_one())
        pairs = int(c.execute(text(f"SELECT count(DISTINCT (rule_id, client_id)) FROM firing{where}")).scalar_one())
        outbox = int(c.execute(text("SELECT count(*) FROM outbox")).scalar_one())
        ok = verify(c).ok
    return {"firings": firings, "distinct": pairs, "outbox": outbox, "chain_ok": ok}


def day_local(eng: Engine, cfg: Config, as_of: date) -> dict[str, Any]:
    ruleset = jobs.approved_rules(eng, cfg)
    t = time.perf_counter()
    s = shards.run_sharded(eng, cfg, ruleset, as_of, 2, now=NOW, min_shard=1)
    return {"wall": time.perf_counter() - t, "enqueue": 0.0, **day_outcome(eng, s.run_id)}


def day_procrastinate(eng: Engine, cfg: Config, as_of: date, n_shards: int, logs: Path,
                      kill: bool = False) -> dict[str, Any]:
    url = eng.url.render_as_string(hide_password=False)
    distributed.install_schema(url)
    with procrastinate_workers(url, logs) as procs:
        empty_procrastinate(url, 0)  # warm: both workers up and connected
        t = time.perf_counter()
        enq = distributed.enqueue_day(eng, cfg, str(CONFIG), as_of, n_shards, now=NOW, min_shard=1,
                                      batch_size=cfg.evaluation.batch_size)
        enqueue = time.perf_counter() - t
        extra: dict[str, Any] = {}
        if kill:
            extra = _kill_mid_shard(eng, enq.run_id, procs[0])
        distributed.await_day(eng, enq, timeout=900, seconds_since_heartbeat=2.0, poll=0.05)
        wall = time.perf_counter() - t
    with eng.connect() as c:
        attempts = [int(r[0]) for r in c.execute(text(
            "SELECT attempts FROM procrastinate_jobs WHERE task_name = :t ORDER BY id"), {"t": distributed.TASK})]
    if kill:
        extra["recovered_s"] = wall - extra.pop("_killed_at") + t
    return {"wall": wall, "enqueue": enqueue, "attempts": attempts, **extra, **day_outcome(eng, enq.run_id)}


def day_celery(eng: Engine, cfg: Config, as_of: date, n_shards: int, worker_procs: list[subprocess.Popen[bytes]],
               kill: bool = False) -> dict[str, Any]:
    """What the leader would do with Celery: open the run, then publish (two systems, no shared transaction)."""
    from bench import celery_shards

    url = eng.url.render_as_string(hide_password=False)
    t = time.perf_counter()
    ruleset = jobs.approved_rules(eng, cfg)
    plan = shards.plan(eng, as_of, n_shards, 1)
    run_id = pipeline.start(eng, cfg, ruleset, as_of, "run", NOW).run_id
    results = [celery_shards.shard.apply_async(kwargs=dict(
        config_path=str(CONFIG), database_url=url, run_id=run_id, rules_version=ruleset.version, as_of=as_of.isoformat(),
        lo=s.lo, hi=s.hi, now=NOW.isoformat(), batch_size=cfg.evaluation.batch_size, index=s.index,
        clients=s.clients)) for s in plan]
    enqueue = time.perf_counter() - t
    extra: dict[str, Any] = {}
    if kill:
        extra = _kill_mid_shard(eng, run_id, worker_procs[0])
    outs = [r.get(timeout=900) for r in results]
    with eng.connect() as c:
        firings = int(c.execute(text("SELECT count(*) FROM firing WHERE run_id = :r"), {"r": run_id}).scalar_one())
    pipeline.finish(eng, pipeline.RunSummary(as_of, run_id, clients=sum(s.clients for s in plan), firings=firings))
    wall = time.perf_counter() - t
    if kill:
        extra["recovered_s"] = wall - extra.pop("_killed_at") + t
    extra["skipped_duplicate"] = sum(o["skipped_duplicate"] for o in outs)
    return {"wall": wall, "enqueue": enqueue, **extra, **day_outcome(eng, run_id)}


def _kill_mid_shard(eng: Engine, run_id: int, victim: subprocess.Popen[bytes]) -> dict[str, Any]:
    """SIGKILL a worker's process group once the run has committed its first batch."""
    def started() -> bool:
        with eng.connect() as c:
            return int(c.execute(text("SELECT count(*) FROM firing WHERE run_id = :r"), {"r": run_id}).scalar_one()) > 0

    _until(started, "the first committed batch", step=0.02)
    with eng.connect() as c:
        before = int(c.execute(text("SELECT count(*) FROM firing WHERE run_id = :r"), {"r": run_id}).scalar_one())
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(10)
    return {"firings_at_kill": before, "_killed_at": time.perf_counter()}


# -- report ------------------------------------------------------------------------------------

def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", nargs="?", default="bench", choices=("bench", "procrastinate-worker"))
    ap.add_argument("worker_args", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--clients", type=int, default=10_000)
    ap.add_argument("--shards", type=int, default=8, help="shard jobs the day is split into")
    ap.add_argument("--batch-size", type=int, default=1000, help="clients per committed batch inside a shard")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--empty", type=int, default=200, help="empty jobs in the burst (a quarter as many round trips)")
    ap.add_argument("--no-kill", action="store_true", help="skip the killed-worker runs")
    ap.add_argument("--pg-url", default=os.environ.get("STEWARD_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    ap.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672//")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/5")
    ap.add_argument("--as-of", default="2026-11-20")
    a = ap.parse_args()
    if a.command == "procrastinate-worker":
        procrastinate_worker(a.worker_args[0], float(a.worker_args[1]))
        return
    queue = f"steward-bench-{uuid.uuid4().hex[:8]}"
    env = {"STEWARD_BENCH_AMQP": a.amqp, "STEWARD_BENCH_REDIS": a.redis, "STEWARD_BENCH_QUEUE": queue}
    os.environ.update(env)  # before bench.celery_shards is imported: the client publishes to the same queue
    install()
    as_of = date.fromisoformat(a.as_of)
    base_cfg = load_config(CONFIG)
    cfg = base_cfg.model_copy(update={"evaluation": base_cfg.evaluation.model_copy(update={"batch_size": a.batch_size})})
    print(f"load average at start {os.getloadavg()}; {a.clients:,} clients, {a.shards} shard jobs, batch {a.batch_size}, "
          f"2 worker processes per engine, clock fixed at {NOW.isoformat()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="task-engines-") as d:
        logs = Path(d)
        books = Books("postgresql", a.pg_url, logs)
        try:
            t = time.perf_counter()
            name, _ = books.build(base_cfg, a.clients, 7, as_of)
            eng = _engine(books, name)
            review.demo_bootstrap(eng, base_cfg)
            eng.dispose()
            print(f"book built and approved in {time.perf_counter() - t:.0f} s (not counted)", flush=True)
            _run(a, books, name, cfg, as_of, logs, env, queue)
        finally:
            for n in books.made:
                books.drop(n)
            _drop_queue(queue)
    print(f"\nload average at end {os.getloadavg()}")


def _engine(books: Books, name: str) -> Engine:
    from engine.db import make_engine

    return make_engine(books._url(name))


def _drop_queue(queue: str) -> None:
    try:
        from bench import celery_shards

        with celery_shards.app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
    except Exception as e:  # noqa: BLE001 (cleanup: report, do not hide the run's own error)
        print(f"could not delete the RabbitMQ queue {queue}: {e}")


def _run(a: argparse.Namespace, books: Books, name: str, cfg: Config, as_of: date, logs: Path,
         env: dict[str, str], queue: str) -> None:
    rows: list[list[Any]] = []
    empty: list[list[Any]] = []
    with books.clone(name) as ref:
        pipeline.run(ref, cfg, jobs.approved_rules(ref, cfg), as_of, now=NOW)
        reference = day_outcome(ref)
    print(f"one-process day: {reference}", flush=True)
    with celery_workers(queue, logs, env) as cworkers:
        for rnd in range(1, a.rounds + 1):
            with books.clone(name) as e:
                local = day_local(e, cfg, as_of)
            rows.append([rnd, "no engine: run_sharded, 2 processes", local])
            order = ("procrastinate", "celery") if rnd % 2 else ("celery", "procrastinate")
            for engine_name in order:
                with books.clone(name) as e:
                    if engine_name == "procrastinate":
                        r = day_procrastinate(e, cfg, as_of, a.shards, logs)
                        url = e.url.render_as_string(hide_password=False)
                        with procrastinate_workers(url, logs):
                            em = empty_procrastinate(url, a.empty)
                    else:
                        r = day_celery(e, cfg, as_of, a.shards, cworkers)
                        em = empty_celery(a.empty)
                rows.append([rnd, engine_name, r])
                empty.append([rnd, engine_name, em])
                print(rnd, engine_name, {k: v for k, v in r.items()}, em, flush=True)
    kills: list[list[Any]] = []
    if not a.no_kill:
        with books.clone(name) as e:
            kills.append(["procrastinate", day_procrastinate(e, cfg, as_of, 2, logs, kill=True)])
        with celery_workers(queue, logs, env) as cworkers, books.clone(name) as e:
            kills.append(["celery", day_celery(e, cfg, as_of, 2, cworkers, kill=True)])
        for k in kills:
            print("killed:", k, flush=True)
    _report(rows, empty, kills, reference)


def _report(rows: list[list[Any]], empty: list[list[Any]], kills: list[list[Any]], ref: dict[str, Any]) -> None:
    print("\n## The day (wall s from opening the run to closing it)\n")
    print(_row(["round", "engine", "wall s", "x no-engine", "leader's enqueue s (approved rules, plan, run row, jobs)", "firings", "outbox", "chain", "same as one process"]))
    print(_row(["---"] * 9))
    base: dict[int, float] = {}
    for rnd, eng_name, r in rows:
        if eng_name.startswith("no engine"):
            base[rnd] = r["wall"]
        same = (r["firings"], r["outbox"]) == (ref["firings"], ref["outbox"]) and r["distinct"] == r["firings"]
        print(_row([rnd, eng_name, f"{r['wall']:.1f}", f"{r['wall'] / base[rnd]:.2f}", f"{r['enqueue']:.3f}",
                    r["firings"], r["outbox"], "verifies" if r["chain_ok"] else "BROKEN", "yes" if same else "NO"]))
    print("\n## Empty jobs (the engine's own cost)\n")
    print(_row(["round", "engine", "round trip median ms", "p90 ms", "enqueue µs/job", "burst jobs/s"]))
    print(_row(["---"] * 6))
    for rnd, eng_name, m in empty:
        print(_row([rnd, eng_name, f"{m['rtt_ms']:.1f}", f"{m['rtt_p90_ms']:.1f}", f"{m['enqueue_us']:.0f}",
                    f"{m['jobs_per_s']:.0f}"]))
    if kills:
        print("\n## A worker killed mid-shard (2 shard jobs, SIGKILL after the first committed batch)\n")
        print(_row(["engine", "firings at kill", "wall s", "kill to day closed s", "retries", "firings", "outbox",
                    "chain", "same as one process"]))
        print(_row(["---"] * 9))
        for eng_name, r in kills:
            same = (r["firings"], r["outbox"]) == (ref["firings"], ref["outbox"]) and r["distinct"] == r["firings"]
            retries = (f"attempts {r['attempts']}" if "attempts" in r
                       else f"redelivered; {r['skipped_duplicate']} duplicates skipped")
            print(_row([eng_name, r["firings_at_kill"], f"{r['wall']:.1f}", f"{r['recovered_s']:.1f}", retries,
                        r["firings"], r["outbox"], "verifies" if r["chain_ok"] else "BROKEN", "yes" if same else "NO"]))


if __name__ == "__main__":
    main()
