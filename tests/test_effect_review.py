"""Effect review per cycle: segment moves and gains from the data as of each cycle, rule outcomes, CSV."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from engine.config.base import Config
from engine.models import CashBalance, Holding
from engine.supervision import effect
from tests import book
from tests.audit_helpers import run_book
from tests.test_cli import steward

D = book.AS_OF


def test_cycles() -> None:
    assert effect.cycles(date(2026, 11, 18), date(2026, 11, 30), "weekly") == [
        (date(2026, 11, 16), date(2026, 11, 22)), (date(2026, 11, 23), date(2026, 11, 29)),
        (date(2026, 11, 30), date(2026, 12, 6))]
    assert effect.cycles(date(2026, 11, 18), date(2027, 1, 2), "monthly")[-1] == (date(2027, 1, 1), date(2027, 1, 31))
    assert effect.cycles(date(2026, 11, 18), date(2027, 1, 2), "quarterly") == [
        (date(2026, 10, 1), date(2026, 12, 31)), (date(2027, 1, 1), date(2027, 3, 31))]


def _grow(eng: Engine) -> None:
    """A second week: C003 sells out (maintenance -> settled: it still traded, churned), C002 grows past the core line."""
    nxt = D + timedelta(days=7)
    with eng.begin() as c:
        c.execute(CashBalance.__table__.insert(), [  # type: ignore[attr-defined]
            {"as_of": nxt, "client_id": "C003", "amount": 0.0}, {"as_of": nxt, "client_id": "C002", "amount": 10_000.0}])
        c.execute(Holding.__table__.insert(), [  # type: ignore[attr-defined]
            {"as_of": nxt, "client_id": "C002", "symbol": "600519", "quantity": 1000, "cost": 1500.0, "close_price": 1500.0}])
        c.execute(text("INSERT INTO trade (id, client_id, trade_date, symbol, side, quantity, price, amount) "
                       "VALUES ('TG', 'C002', '2026-11-25', '600519', 'buy', 1000, 1500, 1500000)"))


def test_weekly_review_moves_gains_and_rules(db: Engine, cfg: Config, tmp_path: Path) -> None:
    run_book(db, cfg)
    _grow(db)
    with db.begin() as c:
        c.execute(text("UPDATE firing SET status = 'done', reason = 'POSITIVE' WHERE rule_id = 'new_account_callback'"))
    with db.connect() as c:
        reviews = effect.review(c, cfg, D - timedelta(days=4), D + timedelta(days=7), "weekly")
    first, second = reviews
    assert (first.start, first.end, second.start, second.end) == (date(2026, 11, 16), date(2026, 11, 22),
                                                                  date(2026, 11, 23), D + timedelta(days=7))
    assert second.moves[("dormant", "core")] == 1 and second.moves[("maintenance", "settled")] == 1
    assert second.moves[("new", "dormant")] == 1  # C005 opens on 2026-11-23
    seg = {r["segment"]: r for r in second.segments}
    assert seg["dormant"]["up"] == 1 and seg["maintenance"]["down"] == 1 and seg["maintenance"]["churn_rate"] == 1.0
    assert seg["dormant"]["assets_change"] == 1_410_000  # C002: 100,000 before, 1,510,000 after
    rules = {r["rule_id"]: r for r in first.rules}
    assert rules["new_account_callback"]["tasks_done"] == rules["new_account_callback"]["positive"] >= 1
    paths = effect.write_csv(reviews, tmp_path / "out")
    rows = list(csv.DictReader(paths[1].read_text(encoding="utf-8").splitlines()))
    assert {"cycle_start": "2026-11-23", "cycle_end": "2026-11-27", "segment_before": "dormant",
            "segment_after": "core", "clients": "1"} in rows


def test_effect_command_writes_csv(sqlite_engine: Engine, cfg: Config, tmp_path: Path) -> None:
    run_book(sqlite_engine, cfg)
    r = steward("--database", str(sqlite_engine.url), "report", "effect", "--from", "2026-11-09", "--to", D.isoformat(),
                "--csv", str(tmp_path / "eff"))
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "Effect review 2026-11-09 .. 2026-11-20, weekly" in out and "effect_segments.csv" in out
    assert (tmp_path / "eff" / "effect_rules.csv").read_text(encoding="utf-8").startswith("cycle_start,cycle_end,rule_id")
    r = steward("--database", str(sqlite_engine.url), "report", "effect", "--cycle", "daily")
    assert r.returncode != 0 and "--cycle: expected weekly, monthly or quarterly, got 'daily'" in r.stderr



def test_effect_review_on_eight_demo_weeks(tmp_path: Path, full_cfg: Config) -> None:
    from engine.demo import book as demo
    from tests.test_demo import fresh
    eng = fresh(tmp_path, "w.db")
    demo.build_book(eng, full_cfg, clients=80, seed=5, as_of=D, weeks=8)
    with eng.connect() as c:
        reviews = effect.review(c, full_cfg, D - timedelta(days=53), D, "weekly")  # from Monday 28 September
    assert len(reviews) == 8
    moved = [sum(n for (a, b), n in rev.moves.items() if a != b and a != "new") for rev in reviews]
    assert sum(1 for m in moved if m) >= 4, moved  # segments change from week to week
    assets = [sum(r["assets_after"] for r in rev.segments) for rev in reviews]
    assert all(a > 0 for a in assets) and len(set(assets)) == len(assets)  # each week from its own snapshot
