"""A day evaluated by several processes (client id ranges) equals the day evaluated by one:
the same firings, outbox rows and audit events, one chain that verifies. A shard killed
mid-batch loses its open batch only; running the day again completes it exactly once."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from engine.audit.log import EVENT, verify
from engine.config.base import Config
from engine.db import make_engine, upgrade
from engine.demo import book as demo
from engine.language.loading import load_ruleset
from engine.pipeline import run as pipeline
from engine.pipeline import shards

AS_OF = date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)  # 10:30 in Shanghai: inside the contact window
CLIENTS = 300


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_dbs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    """Two empty migrated databases of one kind: one for each way of running the day."""
    if request.param == "sqlite":
        engs = [make_engine(f"sqlite:///{tmp_path / f'{k}.db'}") for k in ("one", "many")]
        for e in engs:
            upgrade(e)
        yield engs[0], engs[1]
    else:
        from tests import conftest

        with conftest.pg_databases(2) as pg:
            yield pg[0], pg[1]
        return
    for e in engs:
        e.dispose()


def _cfg(full_cfg: Config) -> Config:
    ev = full_cfg.evaluation.model_copy(update={"batch_size": 100})  # several batches per shard
    return full_cfg.model_copy(update={"evaluation": ev})


def _day(eng: Engine) -> dict[str, Any]:
    """Everything the day recorded, without the ids and positions that depend on commit order."""
    with eng.connect() as c:
        firings = {r.id: r for r in c.execute(text("SELECT * FROM firing"))}
        key = {i: (r.client_id, r.rule_id) for i, r in firings.items()}
        drop = {"id", "run_id"}
        f = sorted(json.dumps({k: str(v) for k, v in r._mapping.items() if k not in drop}, sort_keys=True)
                   for r in firings.values())
        outbox = sorted(json.dumps({**{k: str(v) for k, v in r._mapping.items() if k not in ("id", "firing_id")},
                                    "firing": key.get(r.firing_id)}, sort_keys=True, default=str)
                        for r in c.execute(text("SELECT * FROM outbox")))
        events = []
        for r in c.execute(select(EVENT).order_by(EVENT.c.seq)):
            body = json.loads(r.body)
            body["firing"] = key.get(body.pop("firing_id"))
            body.pop("seq")
            body["data"].pop("run_id", None)
            events.append(json.dumps(body, sort_keys=True))
        res = verify(c)
    assert res.ok, res.broken
    return {"firings": f, "outbox": outbox, "events": sorted(events)}


def test_a_sharded_day_equals_a_one_process_day(two_dbs: tuple[Engine, Engine], full_cfg: Config) -> None:
    one, many = two_dbs
    cfg = _cfg(full_cfg)
    rs = load_ruleset(cfg)
    for e in (one, many):
        demo.build_book(e, cfg, clients=CLIENTS, seed=11, as_of=AS_OF)
    s1 = pipeline.run(one, cfg, rs, AS_OF, now=NOW)
    s2 = shards.run_sharded(many, cfg, rs, AS_OF, workers=2, now=NOW, min_shard=1)
    assert s1.firings > 30 and (s1.clients, s1.firings, s1.per_rule, s1.per_reason) == (
        s2.clients, s2.firings, s2.per_rule, s2.per_reason)
    a, b = _day(one), _day(many)
    assert a["firings"] and a["outbox"] and a["events"]
    assert a == b


def test_a_killed_shard_is_completed_exactly_once_by_running_the_day_again(
        sqlite_engine: Engine, tmp_path: Path, full_cfg: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg(full_cfg)
    rs = load_ruleset(cfg)
    ref = make_engine(f"sqlite:///{tmp_path / 'ref.db'}")
    upgrade(ref)
    for e in (ref, sqlite_engine):
        demo.build_book(e, cfg, clients=CLIENTS, seed=11, as_of=AS_OF)
    pipeline.run(ref, cfg, rs, AS_OF, now=NOW)
    plan = shards.plan(sqlite_engine, AS_OF, 2, min_shard=1)
    second = plan[1]
    parent = os.getpid()

    def kill_mid_shard(conn: Any, ctx: Any, rows: list[dict[str, Any]]) -> None:
        # In shard 1's second batch, after its firings are inserted, before the commit.
        if os.getpid() != parent and ctx.lo > second.lo:
            os.kill(os.getpid(), signal.SIGKILL)

    monkeypatch.setattr(pipeline, "_RECORD_HOOKS", [*pipeline._RECORD_HOOKS, kill_mid_shard])
    with pytest.raises(shards.ShardFailed, match="shard 1: its process exited with code -9"):
        shards.run_sharded(sqlite_engine, cfg, rs, AS_OF, workers=2, now=NOW, min_shard=1)
    partial = _day(sqlite_engine)  # the chain verifies after the kill
    monkeypatch.setattr(pipeline, "_RECORD_HOOKS", [h for h in pipeline._RECORD_HOOKS if h is not kill_mid_shard])
    again = shards.run_sharded(sqlite_engine, cfg, rs, AS_OF, workers=2, now=NOW, min_shard=1)
    assert again.skipped_duplicate > 0 and again.firings > 0  # the first attempt's batches are not redone
    done, expected = _day(sqlite_engine), _day(ref)
    assert len(partial["firings"]) < len(expected["firings"])
    assert done == expected  # nothing lost, nothing twice
    ref.dispose()


def test_the_scheduler_runs_the_night_with_its_configured_workers_and_refuses_shard_jobs_on_sqlite(
        sqlite_engine: Engine, cfg: Config) -> None:
    from engine.compliance import review
    from scheduler import jobs
    from tests import book

    eng = sqlite_engine
    book.build(eng)
    review.demo_bootstrap(eng, cfg)
    two = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"workers": 2})})
    assert jobs.evaluate_day(eng, two, book.AS_OF).startswith("run ")
    jobs_cfg = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"shard_jobs": 2})})
    with pytest.raises(ValueError, match="distributed shards need PostgreSQL"):
        jobs.evaluate_day(eng, jobs_cfg, book.AS_OF)
    with eng.connect() as c:
        assert c.execute(text("SELECT count(*) FROM evaluation_run")).scalar() == 1  # nothing opened for it


def test_the_plan_cuts_the_ids_as_a_split_of_the_whole_list_would(sqlite_engine: Engine, full_cfg: Config) -> None:
    """plan() reads only the boundary ids; its ranges are those of cutting the full id list."""
    from engine.facts import base as facts_mod
    demo.build_book(sqlite_engine, _cfg(full_cfg), clients=257, seed=5, as_of=AS_OF)
    with sqlite_engine.connect() as conn:
        ids = facts_mod.client_ids(conn, AS_OF)
        assert facts_mod.client_id_at(conn, AS_OF, 0) == ids[0] and facts_mod.client_id_at(conn, AS_OF, 256) == ids[-1]
    for workers, min_shard in [(1, 1), (2, 1), (3, 1), (7, 1), (2, 100), (4, 100), (2, 300), (300, 1)]:
        n = max(1, min(workers, len(ids) // min_shard))
        size = -(-len(ids) // n)
        expected = [(i, lo, hi) for i, (lo, hi) in enumerate(facts_mod.split(ids, size))]
        got = shards.plan(sqlite_engine, AS_OF, workers, min_shard)
        assert [(s.index, s.lo, s.hi) for s in got] == expected, (workers, min_shard)
        assert sum(s.clients for s in got) == len(ids)
        assert all(s.clients == len([x for x in ids if s.lo <= x <= s.hi]) for s in got)
    assert shards.plan(sqlite_engine, date(1990, 1, 1), 2) == []  # nobody opened yet
