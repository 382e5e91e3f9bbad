"""Nightly-path benchmark: generate a book, evaluate it, report time per stage.

    .venv/bin/python bench/nightly.py --clients 10000
    .venv/bin/python bench/nightly.py --clients 100000 --database postgresql+psycopg://postgres@127.0.0.1:5432/bench

The machine is shared and noisy, so figures are also given as ratios against a
baseline measured in the same process: reading every client row once
(`SELECT id, opened_on FROM client`), the floor cost of touching each client.
It also compares compiled predicates with the durable-rules adapter on the same
facts and rules.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from engine.composition import install  # noqa: E402
from engine.demo import book as demo  # noqa: E402
from engine.pipeline import run as pipeline  # noqa: E402
from engine.facts import base as facts  # noqa: E402
from engine.config.base import load_config  # noqa: E402
from engine.db import make_engine, upgrade  # noqa: E402
from engine.language.loading import load_ruleset  # noqa: E402


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _baseline(eng) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    with eng.connect() as c:
        for _ in c.execute(text("SELECT id, opened_on FROM client")):
            pass
    return time.perf_counter() - t


def _matchers(eng, cfg, ruleset, as_of: date, n: int) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """Facts per second: compiled predicates vs the durable-rules adapter, same facts and rules."""
    from engine.events.durable import DurableMatcher

    with eng.connect() as c:
        sample = next(facts.iter_batches(c, cfg, as_of, batch_size=n))
    rules = [r for r in ruleset.enabled if r.node is not None]
    t = time.perf_counter()
    compiled = [{r.id for r in rules if r.predicate(f)} for f in sample]
    t_comp = time.perf_counter() - t
    matcher = DurableMatcher([(r.id, r.node) for r in rules])
    t = time.perf_counter()
    durable = [matcher.match(f) for f in sample]
    t_dur = time.perf_counter() - t
    if durable != compiled:
        raise SystemExit("durable-rules and compiled predicates disagree on the benchmark facts")
    return len(sample) / t_comp, len(sample) / t_dur, len(sample)


def main() -> None:
    install()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--as-of", default="2026-11-20")
    ap.add_argument("--database", help="database URL (default: a fresh SQLite file in a temp folder)")
    ap.add_argument("--durable-sample", type=int, default=5000, help="facts used for the durable-rules comparison")
    args = ap.parse_args()
    as_of = date.fromisoformat(args.as_of)
    cfg = load_config(ROOT / "config.yaml")
    ruleset = load_ruleset(cfg)
    tmp = tempfile.TemporaryDirectory()
    url = args.database or f"sqlite:///{tmp.name}/bench.db"
    eng = make_engine(url)
    upgrade(eng)
    t = time.perf_counter()
    demo.build_book(eng, cfg, clients=args.clients, seed=args.seed, as_of=as_of)
    build = time.perf_counter() - t
    base = _baseline(eng)
    s = pipeline.run(eng, cfg, ruleset, as_of)
    total = sum(s.seconds.values())
    print(f"book: {args.clients:,} clients on {eng.dialect.name}, built in {build:.1f}s; rules: {len(ruleset.rules)}")
    print(f"baseline (read every client row once): {base:.3f}s")
    print(f"{'stage':<10} {'seconds':>9} {'x baseline':>11} {'share':>7}")
    for stage, sec in s.seconds.items():
        print(f"{stage:<10} {sec:9.2f} {sec / base:11.1f} {sec / total:7.0%}")
    print(f"{'total':<10} {total:9.2f} {total / base:11.1f}")
    print(f"clients/s: {s.clients / total:,.0f}; firings: {s.firings:,}; peak RSS: {_peak_mb():,.0f} MB")
    comp, dur, n = _matchers(eng, cfg, ruleset, as_of, min(args.durable_sample, args.clients))
    print(f"matching {n:,} facts x {len([r for r in ruleset.enabled if r.node is not None])} rules: compiled {comp:,.0f}/s, "
          f"durable-rules {dur:,.0f}/s, compiled/durable = {comp / dur:.1f}x (answers identical)")
    print(f"projection at this rate: 1,000,000 clients in {1_000_000 / (s.clients / total):,.0f}s (target 60s)")


if __name__ == "__main__":
    main()
