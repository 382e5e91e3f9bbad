"""One nightly run on a kept SQLite book, one process, with progress: for books too big to rebuild per run.

    .venv/bin/python bench/nightly_once.py --build 1000000 --book /tmp/book1m.db     # once (not timed)
    .venv/bin/python bench/nightly_once.py --book /tmp/book1m.db                     # each run: a fresh copy
    .venv/bin/python bench/nightly_once.py --book /tmp/book100k.db --batch-size 5000
    .venv/bin/python bench/nightly_once.py --book /tmp/book100k.db --facts-only               # the facts stage alone
    .venv/bin/python bench/nightly_once.py --book /tmp/book100k.db --facts-only --root /tmp/main  # ... of main

Each run evaluates a fresh copy of the book (`BOOK.run.db`, deleted after) with `pipeline.run`
and the clock fixed at 10:30 Shanghai on the evaluation day. Every `--every` clients it prints
the clients done, wall and CPU seconds so far, wall and CPU µs per client over the last
stretch (flat cost per client shows as flat columns; CPU is steadier on a shared machine)
and the process's peak RSS, so a run stopped by a timeout
still says how far it got. The last line is JSON: wall and CPU seconds, µs per client, seconds
per stage (wall, summed over batches), firings, peak RSS and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if "--root" in sys.argv:  # another checkout's engine (an A/B of the facts stage), imported before ours
    ROOT = Path(sys.argv[sys.argv.index("--root") + 1]).resolve()
sys.path.insert(0, str(ROOT))

from engine.composition import install  # noqa: E402
from engine.config.base import load_config  # noqa: E402
from engine.db import make_engine, upgrade  # noqa: E402

NOW = datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)
AS_OF = date(2026, 11, 20)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--book", required=True, type=Path, help="the SQLite book file")
    ap.add_argument("--build", type=int, default=0, help="build a book of this many clients into --book and stop")
    ap.add_argument("--batch-size", type=int, default=0, help="evaluation.batch_size (default: config.yaml's)")
    ap.add_argument("--every", type=int, default=50_000, help="clients between progress lines")
    ap.add_argument("--facts-only", action="store_true",
                    help="only compute every client's facts (read-only, on the book itself) and print the CPU seconds")
    ap.add_argument("--root", type=Path, help="import `engine` and config.yaml from this checkout instead (e.g. main)")
    args = ap.parse_args()
    install()
    cfg = load_config(ROOT / "config.yaml")
    if args.build:
        from engine.demo import book

        if args.book.exists():
            ap.error(f"{args.book} exists: remove it or pick another path")
        eng = make_engine(f"sqlite:///{args.book}")
        upgrade(eng)
        t = time.perf_counter()
        book.build_book(eng, cfg, clients=args.build, seed=7, as_of=AS_OF)
        print(f"built {args.build:,} clients in {time.perf_counter() - t:.0f} s")
        return
    if args.batch_size:
        cfg = cfg.model_copy(update={"evaluation": cfg.evaluation.model_copy(update={"batch_size": args.batch_size})})
    if args.facts_only:
        _facts(cfg, args.book)
        return
    copy = args.book.with_name(args.book.name + ".run.db")
    shutil.copyfile(args.book, copy)
    try:
        _run(cfg, copy, args.every)
    finally:
        for suffix in ("", "-wal", "-shm", "-writers"):
            Path(f"{copy}{suffix}").unlink(missing_ok=True)


def _facts(cfg: object, path: Path) -> None:
    from engine.facts import base

    eng = make_engine(f"sqlite:///{path}")
    c0, n = time.process_time(), 0
    with eng.connect() as conn:
        for batch in base.iter_batches(conn, cfg, AS_OF):  # type: ignore[arg-type]
            n += len(batch)
    cpu = time.process_time() - c0
    print(json.dumps({"root": str(ROOT), "clients": n, "batch_size": cfg.evaluation.batch_size,  # type: ignore[attr-defined]
                      "facts_cpu_s": round(cpu, 2), "cpu_us_per_client": round(1e6 * cpu / max(n, 1)),
                      "load": round(os.getloadavg()[0], 1)}))
    eng.dispose()


def _run(cfg: object, path: Path, every: int) -> None:
    from engine.language.loading import load_ruleset
    from engine.pipeline import run as pipeline

    eng = make_engine(f"sqlite:///{path}")
    upgrade(eng)  # a book built by an older checkout gets this one's indexes
    rules = load_ruleset(cfg)  # type: ignore[arg-type]
    done, mark = 0, [0, time.perf_counter(), time.process_time()]
    c0, t0 = time.process_time(), time.perf_counter()
    print(f"batch size {cfg.evaluation.batch_size:,}; rules loaded, RSS {_rss_mb():,.0f} MB; "  # type: ignore[attr-defined]
          f"load average {os.getloadavg()[0]:.1f}", flush=True)

    def progress(n: int) -> None:
        nonlocal done
        done += n
        if done - mark[0] >= every:
            now, cpu = time.perf_counter(), time.process_time()
            n = done - mark[0]
            print(f"{done:>9,} clients  wall {now - t0:7.0f} s  cpu {cpu - c0:7.0f} s  last {n:,}: "
                  f"{1e6 * (now - mark[1]) / n:6,.0f} µs/client wall, {1e6 * (cpu - mark[2]) / n:5,.0f} CPU  "
                  f"peak RSS {_rss_mb():,.0f} MB  load {os.getloadavg()[0]:.1f}", flush=True)
            mark[:] = [done, now, cpu]

    s = pipeline.run(eng, cfg, rules, AS_OF, progress=progress, now=NOW)  # type: ignore[arg-type]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"clients": s.clients, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                      "us_per_client": round(1e6 * wall / max(s.clients, 1)), "clients_per_s": round(s.clients / wall),
                      "firings": s.firings, "stages_s": {k: round(v, 1) for k, v in s.seconds.items()},
                      "peak_rss_mb": round(_rss_mb()), "load": round(os.getloadavg()[0], 1)}), flush=True)
    eng.dispose()


if __name__ == "__main__":
    main()
