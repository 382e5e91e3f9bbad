"""Console page times on a database with a million firings (issue 11).

Builds a demo book (`--clients`), approves the shipped core rules, runs the real nightly evaluation
once, then bulk-inserts synthetic firings (copies of the real ones on earlier days) up to
`--firings`. Through the real app (FastAPI, in-process ASGI with `TestClient`, signed in as a
supervisor, a fixed clock) it times the firings list (first page, a rule filter, a client filter,
a deep keyset page), a firing page and a client page ("why"), and each against a bare SELECT of
the same rows on the same connection pool. Prints p50/p95 per page, the ratios, and whether p95
stays within the 300 ms goal.

    .venv/bin/python bench/web.py                          # 1,000,000 firings (SQLite)
    .venv/bin/python bench/web.py --firings 100000 --requests 100
    .venv/bin/python bench/web.py --database postgresql+psycopg://postgres@127.0.0.1:5432/bench
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import clock  # noqa: E402
from engine.compliance import auth, review, users  # noqa: E402
from engine.composition import install  # noqa: E402
from engine.config.base import Config, load_config  # noqa: E402
from engine.db import make_engine, upgrade  # noqa: E402
from engine.demo import book as demo  # noqa: E402
from engine.dispatch.outbox import OUTBOX  # noqa: E402
from engine.language.loading import load_ruleset  # noqa: E402
from engine.models import Client  # noqa: E402
from engine.pipeline.recording import FIRING  # noqa: E402
from engine.pipeline.run import run  # noqa: E402
from engine.web import supervision  # noqa: E402

AS_OF = date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)
PASSWORD = "bench password 1"
RULES = ("concentrated_position", "dormant_activation", "new_account_callback")
GOAL_MS = 300.0
CLIENT = Client.__table__  # type: ignore[attr-defined]


def project(root: Path) -> Config:
    """The shipped core rules, templates and lint lists under `root`, as a deployment keeps them."""
    if not (root / "rules").exists():
        (root / "rules").mkdir(parents=True)
        for rid in RULES:
            shutil.copy(ROOT / "rules" / f"{rid}.yaml", root / "rules" / f"{rid}.yaml")
            shutil.copytree(ROOT / "templates" / rid, root / "templates" / rid)
        shutil.copytree(ROOT / "compliance", root / "compliance")
    cfg = load_config(ROOT / "config.yaml")
    return cfg.model_copy(update={
        "base_dir": root, "rules_dirs": ("rules",), "templates_dir": "templates",
        "compliance": cfg.compliance.model_copy(update={"lists_dir": "compliance", "approved_dir": "var/approved"})})


def staff(eng: Engine) -> None:
    with eng.begin() as conn:
        users.add(conn, None, "root", ["admin"])
        for name, roles in (("author", ["author"]), ("reviewer", ["compliance"]), ("sup", ["supervisor"])):
            users.add(conn, "root", name, roles)
            auth.set_password(conn, "root", name, PASSWORD, NOW)


def bulk_firings(eng: Engine, target: int, seed: int) -> tuple[int, float]:
    """Copies of the evaluated firings on earlier days, each (rule, client, day) once, up to `target` rows."""
    rng = random.Random(seed)
    cols = [c.name for c in FIRING.columns if c.name != "id"]
    with eng.connect() as conn:
        real = [dict(r._mapping) for r in conn.execute(select(FIRING))]
        clients = [(r.id, r.advisor_id) for r in conn.execute(select(CLIENT.c.id, CLIENT.c.advisor_id))]
    if not real:
        raise SystemExit("the evaluation fired nothing: raise --clients")
    need = target - len(real)
    started = time.perf_counter()
    statuses = ["sent"] * 6 + ["delivered"] * 2 + ["suppressed", "held", "dropped", "open", "done"]
    reasons = {"suppressed": "CONSENT_MISSING", "held": "QUIET_HOURS", "dropped": "FREQUENCY_CAP"}
    batch: list[tuple[Any, ...]] = []
    done = 0
    day = AS_OF
    for r in real:  # encode the JSON columns once per template row, not once per copy
        r["policy"], r["facts"] = (json.dumps(r[k], default=str, ensure_ascii=False) for k in ("policy", "facts"))
    while done < need:
        day -= timedelta(days=1)
        for cid, adv in clients:
            tpl = rng.choice(real)
            status = rng.choice(statuses) if tpl["action_type"] == "message" else rng.choice(["open", "done", "done"])
            row = {**tpl, "as_of": day, "client_id": cid, "advisor_id": adv, "status": status,
                   "reason": reasons.get(status), "created_at": datetime.combine(day, datetime.min.time(), timezone.utc)}
            batch.append(tuple(row[c] for c in cols))
            done += 1
            if len(batch) >= 50_000 or done >= need:
                _insert(eng, cols, batch)
                batch = []
                print(f"  {done + len(real):,} firings", end="\r", flush=True)
            if done >= need:
                break
    print()
    return done + len(real), time.perf_counter() - started


def _insert(eng: Engine, cols: list[str], rows: list[tuple[Any, ...]]) -> None:
    raw = eng.raw_connection()
    try:
        cur = raw.cursor()
        mark = "?" if eng.dialect.name == "sqlite" else "%s"
        cur.executemany(f"INSERT INTO firing ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})", rows)
        raw.commit()
    finally:
        raw.close()


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def p(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1] if len(xs) > 1 else xs[0]


def measure(eng: Engine, cfg: Config, n: int, seed: int) -> list[tuple[str, list[float], list[float]]]:
    from fastapi.testclient import TestClient

    from engine.web.app import create_app

    rng = random.Random(seed)
    app = create_app(eng, cfg, clock=lambda: NOW)
    c = TestClient(app, base_url="https://bench", follow_redirects=False)
    c.get("/login")
    r = c.post("/login", data={"name": "sup", "password": PASSWORD, "csrf_token": c.cookies.get("steward_login_csrf", "")})
    assert r.status_code == 303, r.text
    with eng.connect() as conn:
        hi = int(conn.execute(select(func.max(FIRING.c.id))).scalar() or 0)
        today = list(conn.execute(select(FIRING.c.id, FIRING.c.client_id).where(FIRING.c.as_of == AS_OF)))
        cids = [r[0] for r in conn.execute(select(CLIENT.c.id).limit(500))]

    def page(url: str) -> None:
        resp = c.get(url)
        assert resp.status_code == 200, (url, resp.status_code, resp.text[:300])

    def bare(q: Any, before: int | None) -> Callable[[], None]:
        """The page's own statements: the filter's total, then 51 rows newest first (below `before`)."""
        page_q = q.order_by(FIRING.c.id.desc()).limit(supervision.PAGE + 1)
        if before:
            page_q = page_q.where(FIRING.c.id < before)

        def go() -> None:
            with eng.connect() as conn:
                conn.execute(select(func.count()).select_from(q.subquery())).scalar_one()
                list(conn.execute(page_q))
        return go

    results = []
    lists = {"firings list (first page)": ({}, None), "firings list (rule filter)": ({"rule": "dormant_activation"}, None),
             "firings list (status filter)": ({"status": "held"}, None),
             "firings list (client filter)": ({"client": cids[0]}, None), "firings list (deep page)": ({}, hi // 2)}
    for label, (params, before) in lists.items():
        q = supervision._query(params)
        url = "/firings?" + "&".join(f"{k}={v}" for k, v in params.items()) + (f"&before={before}" if before else "")
        results.append((label, timed(lambda: page(url), n), timed(bare(q, before), n)))
    ids = [rng.randint(1, hi) for _ in range(n)]
    it, bit = iter(ids), iter(ids)

    def firing_bare() -> None:
        fid = next(bit)
        with eng.connect() as conn:
            conn.execute(select(FIRING).where(FIRING.c.id == fid)).first()
            list(conn.execute(select(OUTBOX).where(OUTBOX.c.firing_id == fid)))
    results.append(("firing page", timed(lambda: page(f"/firings/{next(it)}"), n), timed(firing_bare, n)))
    picks = [rng.choice(today)[1] for _ in range(n)]
    ct, bt = iter(picks), iter(picks)

    def client_bare() -> None:
        cid = next(bt)
        with eng.connect() as conn:
            conn.execute(select(CLIENT).where(CLIENT.c.id == cid)).first()
            list(conn.execute(select(FIRING).where(FIRING.c.client_id == cid, FIRING.c.as_of == AS_OF)))
    results.append(("client page (why)", timed(lambda: page(f"/clients/{next(ct)}?day={AS_OF}"), n), timed(client_bare, n)))
    return results


def main() -> None:
    install()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--firings", type=int, default=1_000_000, help="firings in the database (default 1,000,000)")
    ap.add_argument("--clients", type=int, default=4_000, help="clients in the demo book (default 4,000)")
    ap.add_argument("--requests", type=int, default=200, help="requests per page (default 200)")
    ap.add_argument("--database", default=None, help="an empty database URL (default: a SQLite file in a temp dir)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="build in this folder and keep it; a later run with the same folder only upgrades (new "
                         "indexes) and measures again")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, clock.using(clock.FixedClock(NOW)):
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        reuse = args.keep is not None and (work / "web.db").exists() and not args.database
        cfg = project(work / "project")
        eng = make_engine(args.database or f"sqlite:///{work / 'web.db'}")
        upgrade(eng)
        if reuse:
            with eng.begin() as conn:
                total = int(conn.execute(select(func.count()).select_from(FIRING)).scalar_one())
                conn.execute(text("ANALYZE"))
            print(f"reusing {work}: {total:,} firings (upgraded to the current migrations)")
            rows = measure(eng, cfg, args.requests, args.seed)
            report(rows)
            return
        t = time.perf_counter()
        demo.build_book(eng, cfg, clients=args.clients, seed=args.seed, as_of=AS_OF)
        staff(eng)
        review.submit(eng, cfg, "author", "bench pack")
        review.approve(eng, cfg, "reviewer", 1, "bench")
        run(eng, cfg, load_ruleset(cfg), AS_OF)
        print(f"book of {args.clients:,} clients evaluated in {time.perf_counter() - t:.1f}s")
        total, secs = bulk_firings(eng, args.firings, args.seed)
        if eng.dialect.name == "sqlite":
            with eng.begin() as conn:
                conn.execute(text("ANALYZE"))
        print(f"{total:,} firings ({secs:.1f}s bulk insert, {eng.dialect.name})")
        rows = measure(eng, cfg, args.requests, args.seed)
    report(rows)


def report(rows: list[tuple[str, list[float], list[float]]]) -> None:
    print(f"\n| page | p50 ms | p95 ms | bare SELECT p95 ms | ratio p95 | within {GOAL_MS:.0f} ms |")
    print("|---|---|---|---|---|---|")
    for label, page_ms, bare_ms in rows:
        print(f"| {label} | {p(page_ms, 50):.1f} | {p(page_ms, 95):.1f} | {p(bare_ms, 95):.2f} | "
              f"{p(page_ms, 95) / p(bare_ms, 95):.1f} | {'yes' if p(page_ms, 95) <= GOAL_MS else 'NO'} |")


if __name__ == "__main__":
    main()
