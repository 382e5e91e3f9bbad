"""CPU seconds per stage of one nightly run, and of facts for small id lists, alternating two checkouts.

    .venv/bin/python bench/nightly_once.py --build 10000 --book /tmp/b10k.db          # once
    git worktree add --detach /tmp/steward-main main
    .venv/bin/python bench/stage_cpu.py --book /tmp/b10k.db --other /tmp/steward-main --rounds 3

Each round runs, in alternating order, one child process per checkout: `pipeline.run` on a fresh
copy of the book (one process, fixed clock), with the run's stage laps taken on the process's
CPU clock instead of the wall clock (`time.perf_counter` of engine.pipeline.run only), then
`facts_of` for `--small` scattered clients at a time (the event engine's call) on the book.
Before the run, on the same copy: every match of the first 3,000 clients rendered three times (CPU
µs per render) and the matching and policy stages (`decide`) over the whole book (CPU µs per client),
each with a digest of what it made (texts; decisions with their trails), which must agree between
the checkouts. Per child: CPU µs per client per stage, µs per `facts_of` call, firings, the
digests and the load average.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import types
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)
AS_OF = date(2026, 11, 20)


def child(root: Path, book: Path, small: int, calls: int) -> None:
    sys.path.insert(0, str(root))
    from engine.composition import install
    from engine.config.base import load_config
    from engine.db import make_engine, upgrade
    from engine.facts import base
    from engine.language.loading import load_ruleset
    from engine.pipeline import run as pipeline

    install()
    cfg = load_config(root / "config.yaml")
    copy = book.with_name(f"{book.name}.{os.getpid()}.db")
    shutil.copyfile(book, copy)
    try:
        eng = make_engine(f"sqlite:///{copy}")
        upgrade(eng)
        rules = load_ruleset(cfg)
        parts = _parts(eng, cfg, rules)
        pipeline.time = types.SimpleNamespace(perf_counter=time.process_time)  # type: ignore[attr-defined]
        c0 = time.process_time()
        s = pipeline.run(eng, cfg, rules, AS_OF, now=NOW)
        cpu = time.process_time() - c0
        with eng.connect() as conn:
            ids = base.client_ids(conn, AS_OF)
            step = max(len(ids) // (small * calls), 1)
            picks = [tuple(ids[(k * small + j) * step] for j in range(small)) for k in range(calls)]
            extra: dict[str, object] = {}
            base.facts_of(conn, cfg, AS_OF, picks[0], extra)  # the per-run values, read once
            f0 = time.process_time()
            for p in picks:
                base.facts_of(conn, cfg, AS_OF, p, extra)
            facts_of_us = 1e6 * (time.process_time() - f0) / calls
        eng.dispose()
    finally:
        for suffix in ("", "-wal", "-shm", "-writers"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)
    n = max(s.clients, 1)
    print(json.dumps({"root": str(root), "clients": s.clients, "firings": s.firings, "cpu_s": round(cpu, 2),
                      "cpu_us_per_client": round(1e6 * cpu / n),
                      "stage_us_per_client": {k: round(1e6 * v / n) for k, v in s.seconds.items()},
                      f"facts_of_{small}_us": round(facts_of_us), **parts, "load": round(os.getloadavg()[0], 1)}))


def _parts(eng: Any, cfg: Any, rules: Any) -> dict[str, Any]:
    """Rendering and decide alone, read-only, with digests of their results."""
    from engine.facts import base
    from engine.pipeline.matching import match
    from engine.pipeline.policy import StageContext
    from engine.pipeline.run import RunSummary, decide, render_firing

    with eng.connect() as conn:
        batches = list(base.iter_batches(conn, cfg, AS_OF))
        first = next(base.iter_batches(conn, cfg, AS_OF, batch_size=3000))
        matches = list(match(rules.enabled, first))
        texts = hashlib.sha256()
        r0 = time.process_time()
        for _ in range(3):
            fired = [render_firing(rules, m, {}, AS_OF) for m in matches]
        render_us = 1e6 * (time.process_time() - r0) / (3 * max(len(matches), 1))
        for f in fired:
            texts.update(repr((f.subject, f.message, f.error)).encode())
        decided = hashlib.sha256()
        d0, n = time.process_time(), 0
        for batch in batches:
            ids = [f["client_id"] for f in batch]
            ctx = StageContext(conn, cfg, AS_OF, ids[0], ids[-1])
            ctx.cache.update(ruleset=rules, advisors={}, now=NOW)
            ds = decide(conn, ctx, rules, batch, RunSummary(AS_OF))
            n += len(batch)
            for d in ds:
                decided.update(repr((d.match.rule.id, d.match.facts["client_id"], d.outcome, d.reason, d.trail)).encode())
        decide_us = 1e6 * (time.process_time() - d0) / max(n, 1)
    return {"render_us": round(render_us, 1), "renders": len(matches), "texts": texts.hexdigest()[:12],
            "decide_us_per_client": round(decide_us, 1), "decisions": decided.hexdigest()[:12]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--book", required=True, type=Path)
    ap.add_argument("--other", type=Path, help="a second checkout (e.g. main) to alternate with")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--small", type=int, default=5, help="client ids per facts_of call")
    ap.add_argument("--calls", type=int, default=300, help="facts_of calls")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.book, args.small, args.calls)
        return
    roots = [HERE] + ([args.other.resolve()] if args.other else [])
    for r in range(args.rounds):
        for root in roots if r % 2 == 0 else roots[::-1]:
            out = subprocess.run([sys.executable, __file__, "--book", str(args.book), "--child", str(root),
                                  "--small", str(args.small), "--calls", str(args.calls)],
                                 check=True, capture_output=True, text=True).stdout
            print(f"round {r + 1} {'this' if root == HERE else 'other'}: {out.strip()}", flush=True)


if __name__ == "__main__":
    main()
