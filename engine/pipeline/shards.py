"""One nightly run on every core: the book split by client id range across processes.

`run_sharded` opens the run (one `evaluation_run` row), cuts the clients into `workers`
contiguous id ranges of near-equal size, and evaluates each range in its own process
(`evaluate_range`, the same code as a one-process run). Every policy stage, the cooldown
and the same-day dedup look only at one client's own history, so which process evaluates
a client changes nothing it decides: the firings, outbox rows and audit events are those
of a one-process run (tests/test_sharding.py compares them).

The audit chain stays one chain. Each shard commits its batches as a one-process run
does: the batch's audit events are appended under the chain lock (PostgreSQL advisory
lock, SQLite write lock) inside the batch's transaction, so batches of different shards
take turns at the chain's head. Chain positions (`seq`) and firing ids interleave by
commit order, which differs from run to run; the content of each event does not. The
alternative, per-shard chains merged afterwards, would leave a window in which the log
holds forks that `verify` rejects, and a crash inside it would need repair.

A failed shard does not stop the others; the run is then reported failed, and running
the same day again completes it: the same-day dedup skips what the first attempt
recorded (nothing twice, nothing lost).
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import traceback
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine

from engine.config.base import Config
from engine.db import make_engine
from engine.errors import StewardError
from engine.facts import base as facts_mod
from engine.language.loading import RuleSet
from engine.pipeline import run as pipeline

MIN_SHARD = 1000
"""Clients a shard gets at least: a smaller book runs in fewer processes (starting one costs more)."""


class ShardFailed(StewardError):
    """One or more shards failed; what the others recorded is committed (run the day again)."""


@dataclass(frozen=True)
class Shard:
    index: int
    lo: str
    hi: str
    clients: int


def default_workers() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def plan(engine: Engine, as_of: date, workers: int, min_shard: int = MIN_SHARD) -> list[Shard]:
    """Contiguous client id ranges, one per process, of near-equal size.

    The ranges `split(client_ids(...), size)` would give, found by counting and reading the id at
    each boundary (one indexed OFFSET read each), so the book's ids are never all in memory
    (a million ids are ~65 MB of Python strings). One transaction: one snapshot of the book."""
    with engine.connect() as conn:
        total = facts_mod.count_clients(conn, as_of)
        n = max(1, min(workers, total // max(1, min_shard)))
        size = -(-total // n) if total else 1
        out = []
        for i, start in enumerate(range(0, total, size)):
            end = min(start + size, total) - 1
            out.append(Shard(i, facts_mod.client_id_at(conn, as_of, start), facts_mod.client_id_at(conn, as_of, end),
                             end - start + 1))
    return out


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _child(url: str, cfg: Config, ruleset: RuleSet, as_of: date, run_id: int, advisors: dict[str, dict[str, str]],
           now: datetime | None, shard: Shard, out: Any) -> None:
    """A shard's process: its own engine (connections are never shared across a fork)."""
    eng = make_engine(url)
    try:
        s = pipeline.evaluate_range(eng, cfg, ruleset, as_of, run_id, advisors, now, shard.lo, shard.hi,
                                    progress=lambda n: out.put(("progress", shard.index, n)))
        out.put(("done", shard.index, s))
    except BaseException:  # noqa: BLE001 - sent to the parent, which reports it
        out.put(("error", shard.index, traceback.format_exc()))
    finally:
        eng.dispose()


def run_sharded(engine: Engine, cfg: Config, ruleset: RuleSet, as_of: date, workers: int | None = None,
                progress: pipeline.Progress | None = None, mode: str = "run", now: datetime | None = None,
                min_shard: int = MIN_SHARD) -> pipeline.RunSummary:
    """Evaluate every client as of a date with up to `workers` processes (default: every core)."""
    shards = plan(engine, as_of, workers or default_workers(), min_shard)
    if len(shards) <= 1:
        return pipeline.run(engine, cfg, ruleset, as_of, progress, mode, now)
    if engine.url.get_backend_name() == "sqlite" and engine.url.database in (None, "", ":memory:"):
        raise StewardError("--workers needs a database file or server: an in-memory SQLite database "
                         "is private to one process (use --workers 1)")
    run_id, advisors, failed_runs = pipeline.start(engine, cfg, ruleset, as_of, mode, now)
    engine.dispose()  # no pooled connection crosses the fork
    ctx = multiprocessing.get_context("fork")  # children inherit the loaded rules and the registries
    out: Any = ctx.Queue()
    procs = [ctx.Process(target=_child, name=f"steward-shard-{s.index}",
                         args=(_url(engine), cfg, ruleset, as_of, run_id, advisors, now, s, out)) for s in shards]
    for p in procs:
        p.start()
    total = pipeline.RunSummary(as_of, run_id, failed_runs=failed_runs)
    errors = _collect(procs, out, total, progress)
    for p in procs:
        p.join()
    if errors:
        raise ShardFailed(f"{len(errors)} of {len(shards)} shards failed (what the others recorded is kept; "
                          f"run the same day again to complete it, nothing is recorded twice):\n" + "\n".join(errors))
    pipeline.finish(engine, total, now)
    return total


def _collect(procs: list[Any], out: Any, total: pipeline.RunSummary, progress: pipeline.Progress | None) -> list[str]:
    """Merge shard summaries as they arrive; a process that dies without a word is an error too."""
    pending = set(range(len(procs)))
    errors: list[str] = []
    while pending:
        try:
            kind, index, payload = out.get(timeout=0.5)
        except queue.Empty:
            for i in sorted(pending):
                if not procs[i].is_alive() and procs[i].exitcode not in (None, 0):
                    errors.append(f"shard {i}: its process exited with code {procs[i].exitcode}")
                    pending.discard(i)
            continue
        if kind == "progress":
            if progress:
                progress(payload)
        elif kind == "done":
            pipeline.merge(total, payload)
            pending.discard(index)
        else:
            errors.append(f"shard {index}: {payload}")
            pending.discard(index)
    return errors
