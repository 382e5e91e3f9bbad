"""What the audit record hook costs the nightly run.

Builds one synthetic book, copies it, and runs the nightly evaluation on each copy:
once with every record hook, once with the audit hook left out. Prints both times,
the ratio, and the audit events written.

    .venv/bin/python bench/audit_hook.py --clients 100000
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from sqlalchemy import func, select

from engine.composition import install
from engine.demo import book as demo
from engine.audit import firing_events
from engine.audit import log as auditlog
from engine.pipeline import run as pipeline
from engine.config.base import load_config
from engine.db import make_engine, upgrade
from engine.language.loading import load_ruleset

ROOT = Path(__file__).resolve().parent.parent


def _run(path: Path, cfg, ruleset, as_of: date, with_audit: bool) -> tuple[float, int, int]:  # type: ignore[no-untyped-def]
    hooks = list(pipeline._RECORD_HOOKS)
    if not with_audit:
        pipeline._RECORD_HOOKS[:] = [h for h in hooks if h is not firing_events.record_firings]
    try:
        eng = make_engine(f"sqlite:///{path}")
        t = time.perf_counter()
        s = pipeline.run(eng, cfg, ruleset, as_of)
        secs = time.perf_counter() - t
        with eng.connect() as c:
            n = int(c.execute(select(func.count()).select_from(auditlog.EVENT)).scalar() or 0)
        eng.dispose()
        return secs, s.firings, n
    finally:
        pipeline._RECORD_HOOKS[:] = hooks


def main() -> None:
    install()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--as-of", default="2026-11-20")
    args = ap.parse_args()
    as_of = date.fromisoformat(args.as_of)
    cfg = load_config(ROOT / "config.yaml")
    ruleset = load_ruleset(cfg)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "book.db"
        eng = make_engine(f"sqlite:///{base}")
        upgrade(eng)
        demo.build_book(eng, cfg, clients=args.clients, seed=args.seed, as_of=as_of)
        with eng.connect() as c:
            before = int(c.execute(select(func.count()).select_from(auditlog.EVENT)).scalar() or 0)
        eng.dispose()
        copies = {}
        for name in ("without", "with"):
            copies[name] = Path(tmp) / f"{name}.db"
            shutil.copy(base, copies[name])
        off, firings, _ = _run(copies["without"], cfg, ruleset, as_of, with_audit=False)
        on, _, events = _run(copies["with"], cfg, ruleset, as_of, with_audit=True)
    print(f"{args.clients:,} clients, {firings:,} firings, {events - before:,} audit events written by the run")
    print(f"nightly run without the audit hook: {off:.2f}s; with it: {on:.2f}s; ratio {on / off:.2f}")


if __name__ == "__main__":
    main()
