"""Nightly-path benchmark: a synthetic book evaluated with 1 and N workers, on SQLite and PostgreSQL.

    .venv/bin/python bench/nightly.py                          # 10k and 100k, SQLite and PostgreSQL, 1 and 2 workers
    .venv/bin/python bench/nightly.py --sizes 10000 --databases sqlite
    .venv/bin/python bench/nightly.py --million                # adds 1,000,000 clients (long: ~1 h)
    .venv/bin/python bench/nightly.py --pg-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python bench/nightly.py --sizes 1000000 --keep /var/tmp/books   # build once, reuse later

What is timed is the whole run as `steward run` does it, wall clock: setup (trading
calendar, the run row), facts, matching, rendering, recording, the commit of every
batch, and for N workers starting the processes and merging their results. Per-stage
seconds are summed over batches and over workers (so with N workers they add up to more
than the wall time). The clock is fixed (`now` = 10:30 Shanghai on the evaluation day),
so the contact-window stage decides the same at any time of day.

The machine is shared and noisy: every figure is also given as a ratio to a baseline
measured in the same run, on the same database, just before each evaluation: reading
every client row once (`SELECT id, opened_on FROM client`). Compare ratios, not seconds.
CPU seconds (this process and its workers, the database server's not included) are given
too: other users of the machine stretch the wall time, much less the CPU time.
Each evaluation runs on a fresh copy of the same book (SQLite: a file copy; PostgreSQL:
CREATE DATABASE ... TEMPLATE), so 1 and N workers see the same data.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, text  # noqa: E402

from engine.composition import install  # noqa: E402
from engine.config.base import Config, load_config  # noqa: E402
from engine.db import make_engine, upgrade  # noqa: E402
from engine.demo import book as demo  # noqa: E402
from engine.language.loading import RuleSet, load_ruleset  # noqa: E402
from engine.pipeline import shards  # noqa: E402

NOW = datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)
STAGES = ("facts", "matching", "rendering", "recording", "commit", "collect")


def _peak_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def _baseline(eng: Engine) -> float:
    t = time.perf_counter()
    with eng.connect() as c:
        for _ in c.execute(text("SELECT id, opened_on FROM client")):
            pass
    return time.perf_counter() - t


class Books:
    """One built book per (database, size), cloned fresh for every evaluation."""

    def __init__(self, kind: str, pg_url: str, tmp: Path, keep: bool = False):
        self.kind, self.pg_url, self.tmp, self.keep = kind, pg_url, tmp, keep
        self.made: list[str] = []

    def _exists(self, name: str) -> bool:
        if self.kind == "sqlite":
            return (self.tmp / f"{name}.db").exists()
        with self._admin() as c:
            return c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None

    def _admin(self) -> Any:
        import psycopg

        return psycopg.connect(self.pg_url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)

    def _url(self, name: str) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.tmp / name}.db"
        return f"{self.pg_url.rsplit('/', 1)[0]}/{name}"

    def build(self, cfg: Config, clients: int, seed: int, as_of: date) -> tuple[str, float]:
        """A new book, or with --keep the kept book of this size, seed and day (built once,
        under a scratch name renamed when complete: an interrupted build is never reused)."""
        if self.keep:
            name = f"steward_book_{clients}_{seed}_{as_of:%Y%m%d}"
            if self._exists(name):
                return name, 0.0
        else:
            name = f"steward_bench_{uuid.uuid4().hex[:8]}"
        scratch = f"{name}_building"
        self.made.append(scratch)
        self.drop(scratch)
        if self.kind == "postgresql":
            with self._admin() as c:
                c.execute(f'CREATE DATABASE "{scratch}"')
        eng = make_engine(self._url(scratch))
        upgrade(eng)
        t = time.perf_counter()
        demo.build_book(eng, cfg, clients=clients, seed=seed, as_of=as_of)
        with eng.begin() as c:
            c.execute(text("ANALYZE" if self.kind == "postgresql" else "PRAGMA wal_checkpoint(TRUNCATE)"))
        eng.dispose()
        if self.kind == "sqlite":
            for suffix in (".db-wal", ".db-shm", ".db-writers"):
                (self.tmp / f"{scratch}{suffix}").unlink(missing_ok=True)
            (self.tmp / f"{scratch}.db").rename(self.tmp / f"{name}.db")
        else:
            with self._admin() as c:
                c.execute(f'ALTER DATABASE "{scratch}" RENAME TO "{name}"')
        self.made.remove(scratch)
        if not self.keep:
            self.made.append(name)
        return name, time.perf_counter() - t

    @contextmanager
    def clone(self, name: str) -> Iterator[Engine]:
        copy = f"{name}_{uuid.uuid4().hex[:4]}"
        if self.kind == "sqlite":
            shutil.copyfile(self.tmp / f"{name}.db", self.tmp / f"{copy}.db")
        else:
            with self._admin() as c:
                c.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{name}"')
        eng = make_engine(self._url(copy))
        upgrade(eng)  # a kept book built before the latest migration
        try:
            yield eng
        finally:
            eng.dispose()
            self.drop(copy)

    def drop(self, name: str) -> None:
        if self.kind == "sqlite":
            for suffix in (".db", ".db-wal", ".db-shm", ".db-writers"):
                (self.tmp / f"{name}{suffix}").unlink(missing_ok=True)
        else:
            with self._admin() as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def evaluate(books: Books, name: str, cfg: Config, ruleset: RuleSet, as_of: date, workers: int) -> dict[str, Any]:
    with books.clone(name) as eng:
        base = _baseline(eng)
        cpu0 = _cpu()
        t = time.perf_counter()
        s = shards.run_sharded(eng, cfg, ruleset, as_of, workers, now=NOW)
        wall = time.perf_counter() - t
        cpu = _cpu() - cpu0
    return {"workers": workers, "base": base, "wall": wall, "cpu": cpu, "summary": s}


def _cpu() -> float:
    """CPU seconds of this process and its finished workers: on a shared machine, steadier than wall time."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def report(kind: str, clients: int, build: float, results: list[dict[str, Any]]) -> None:
    print(f"\n== {kind}, {clients:,} clients (" + (f"book built in {build:.0f} s, not counted)" if build else "kept book)"))
    print(f"{'workers':>7} {'baseline s':>10} {'wall s':>8} {'x base':>8} {'clients/s':>10} {'cpu s':>7} "
          f"{'cl/cpu-s':>8} {'firings':>9}  "
          + "  ".join(f"{st:>9}" for st in STAGES) + f"  {'setup+other':>11}  {'speed-up':>8}")
    one = results[0]["wall"]
    for r in results:
        s = r["summary"]
        secs = [s.seconds.get(st, 0.0) for st in STAGES]
        other = r["wall"] * r["workers"] - sum(secs) if r["workers"] > 1 else r["wall"] - sum(secs)
        print(f"{r['workers']:>7} {r['base']:>10.3f} {r['wall']:>8.1f} {r['wall'] / r['base']:>8.0f} "
              f"{s.clients / r['wall']:>10,.0f} {r['cpu']:>7.1f} {s.clients / r['cpu']:>8,.0f} {s.firings:>9,}  "
              + "  ".join(f"{x:>5.1f} {x / sum(secs):>3.0%}" for x in secs)
              + f"  {other:>11.1f}  {one / r['wall']:>7.2f}x")
    per_client = [r["wall"] / r["summary"].clients * 1e6 for r in results]
    print("   µs per client (wall): " + ", ".join(f"{r['workers']}w {p:,.0f}" for r, p in zip(results, per_client)))


def main() -> None:
    install()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000", help="comma-separated book sizes")
    ap.add_argument("--million", action="store_true", help="also 1,000,000 clients")
    ap.add_argument("--databases", default="sqlite,postgresql", help="sqlite, postgresql or both")
    ap.add_argument("--pg-url", default=os.environ.get("STEWARD_BENCH_PG_URL",
                                                       "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
                    help="a PostgreSQL database to create scratch databases from")
    ap.add_argument("--workers", default=f"1,{shards.default_workers()}", help="comma-separated worker counts")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--as-of", default="2026-11-20")
    ap.add_argument("--keep", metavar="DIR", help="keep the built books (SQLite files in DIR, PostgreSQL databases "
                    "steward_book_SIZE_SEED_DAY) and reuse them in later runs: a 1M book takes ~15 min to build")
    args = ap.parse_args()
    as_of = date.fromisoformat(args.as_of)
    cfg = load_config(ROOT / "config.yaml")
    ruleset = load_ruleset(cfg)
    sizes = [int(x) for x in args.sizes.split(",")] + ([1_000_000] if args.million else [])
    workers = sorted({int(x) for x in args.workers.split(",")})
    print(f"rules: {len(ruleset.rules)}; cores: {shards.default_workers()}; clock fixed at {NOW.isoformat()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as d:
        where = Path(args.keep) if args.keep else Path(d)
        where.mkdir(parents=True, exist_ok=True)
        for kind in args.databases.split(","):
            books = Books(kind, args.pg_url, where, keep=bool(args.keep))
            try:
                for n in sizes:
                    name, build = books.build(cfg, n, args.seed, as_of)
                    results = [evaluate(books, name, cfg, ruleset, as_of, w) for w in workers]
                    report(kind, n, build, results)
                    if not args.keep:
                        books.drop(name)
            finally:
                for name in books.made:
                    books.drop(name)
    print(f"\npeak RSS: this process {_peak_mb(resource.RUSAGE_SELF):,.0f} MB, "
          f"largest worker {_peak_mb(resource.RUSAGE_CHILDREN):,.0f} MB; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
