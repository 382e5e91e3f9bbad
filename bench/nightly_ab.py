"""A/B of the nightly path: this checkout against another one (e.g. main), same book, alternating runs.

    git worktree add /tmp/steward-main main      # or: git archive main | tar -x -C /tmp/steward-main
    .venv/bin/python bench/nightly_ab.py --other /tmp/steward-main --clients 10000 --rounds 2
    .venv/bin/python bench/nightly_ab.py --other /tmp/steward-main --database postgresql+psycopg://postgres@127.0.0.1:5432/test

One book is built by the *other* checkout (so both can open it; this checkout upgrades its own
copy to its newer migrations), then each round runs `pipeline.run` (one process, fixed clock)
once with each checkout on a fresh copy, in alternating order. Each run is a child process
(`--child`) importing that checkout's `engine`; it prints wall and CPU seconds, the firings,
the baseline (reading every client row once, just before), peak RSS and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any
from datetime import date, datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)
AS_OF = date(2026, 11, 20)


def child(root: Path, url: str, build: int) -> None:
    sys.path.insert(0, str(root))
    from sqlalchemy import text

    from engine.composition import install
    from engine.config.base import load_config
    from engine.db import make_engine, upgrade
    from engine.language.loading import load_ruleset

    install()
    cfg = load_config(root / "config.yaml")
    eng = make_engine(url)
    upgrade(eng)
    if build:
        from engine.demo import book

        book.build_book(eng, cfg, clients=build, seed=7, as_of=AS_OF)
        if eng.dialect.name == "postgresql":
            with eng.begin() as c:
                c.execute(text("ANALYZE"))
        return
    from engine.pipeline import run as pipeline

    rs = load_ruleset(cfg)
    size0 = _db_bytes(eng)
    with eng.connect() as c:
        t = time.perf_counter()
        for _ in c.execute(text("SELECT id, opened_on FROM client")):
            pass
        base = time.perf_counter() - t
    c0, t = time.process_time(), time.perf_counter()
    s = pipeline.run(eng, cfg, rs, AS_OF, now=NOW)
    wall, cpu = time.perf_counter() - t, time.process_time() - c0
    print(json.dumps({"wall": wall, "cpu": cpu, "base": base, "clients": s.clients, "firings": s.firings,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "load": os.getloadavg()[0],
                      "db_mb": _db_bytes(eng) / 1e6, "written_mb": (_db_bytes(eng) - size0) / 1e6}))


def _db_bytes(eng: Any) -> int:
    """The database's size: the SQLite file after a full checkpoint, or pg_database_size."""
    from sqlalchemy import text

    with eng.connect() as c:
        if eng.dialect.name == "postgresql":
            return int(c.execute(text("SELECT pg_database_size(current_database())")).scalar())
        c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        path = Path(eng.url.database)
    return path.stat().st_size + sum(Path(f"{path}{x}").stat().st_size for x in ("-wal",) if Path(f"{path}{x}").exists())


class Copies:
    def __init__(self, url: str | None, tmp: Path):
        self.url, self.tmp = url, tmp

    def _admin(self):  # type: ignore[no-untyped-def]
        import psycopg

        assert self.url
        return psycopg.connect(self.url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)

    def url_of(self, name: str) -> str:
        return f"sqlite:///{self.tmp / name}.db" if not self.url else f"{self.url.rsplit('/', 1)[0]}/{name}"

    def new(self, name: str, template: str | None = None) -> str:
        if not self.url:
            if template:
                shutil.copyfile(self.tmp / f"{template}.db", self.tmp / f"{name}.db")
        else:
            with self._admin() as c:
                c.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url_of(name)

    def drop(self, name: str) -> None:
        if not self.url:
            for suffix in (".db", ".db-wal", ".db-shm", ".db-writers"):
                (self.tmp / f"{name}{suffix}").unlink(missing_ok=True)
        else:
            with self._admin() as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_child(root: Path, url: str, build: int = 0) -> dict[str, float]:
    py = HERE / ".venv" / "bin" / "python"
    out = subprocess.run([str(py), __file__, "--child", str(root), url, str(build)], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1]) if not build else {}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--other", help="the other checkout (e.g. main) to compare with (required)")
    ap.add_argument("--clients", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--database", default=None, help="a PostgreSQL URL to create scratch databases from (default: SQLite files)")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1], int(args.child[2]))
        return
    if not args.other:
        ap.error("--other is required: the checkout to compare with, e.g. --other /tmp/steward-main")
    other = Path(args.other).resolve()
    with tempfile.TemporaryDirectory() as d:
        copies = Copies(args.database, Path(d))
        book = f"steward_ab_{uuid.uuid4().hex[:8]}"
        try:
            t = time.perf_counter()
            run_child(other, copies.new(book), build=args.clients)
            print(f"book of {args.clients:,} clients built by {other} in {time.perf_counter() - t:.0f} s; "
                  f"load average {os.getloadavg()[0]:.1f}")
            for k in range(args.rounds):
                for root in ((HERE, other) if k % 2 == 0 else (other, HERE)):
                    name = f"{book}_{uuid.uuid4().hex[:4]}"
                    try:
                        r = run_child(root, copies.new(name, book))
                    finally:
                        copies.drop(name)
                    print(f"round {k + 1} {('this' if root == HERE else 'other'):>5}: wall {r['wall']:6.1f} s "
                          f"({r['clients'] / r['wall']:,.0f} clients/s, {r['wall'] / r['base']:,.0f}x baseline), "
                          f"CPU {r['cpu']:6.1f} s ({r['clients'] / r['cpu']:,.0f} clients per CPU-s), "
                          f"firings {r['firings']:,}, peak RSS {r['rss_mb']:,.0f} MB, load {r['load']:.1f}, "
                          f"database {r['db_mb']:,.0f} MB (+{r['written_mb']:,.0f} MB by the run)", flush=True)
        finally:
            copies.drop(book)


if __name__ == "__main__":
    main()
