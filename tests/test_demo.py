"""The synthetic book: deterministic per seed, every population present, same format as import."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from engine.demo import book as demo
from engine.facts import base as facts
from engine.config.base import Config
from engine.errors import StewardError
from engine.facts.importer import import_dir
from tests.databases import migrated_sqlite
from tests.test_importer import dump

AS_OF = date(2026, 11, 20)  # a Friday, a trading day on XSHG


def fresh(tmp_path: Path, name: str) -> Engine:
    eng = migrated_sqlite(tmp_path / name)
    return eng


def all_facts(eng: Engine, cfg: Config, as_of: date = AS_OF) -> list[dict[str, Any]]:
    with eng.connect() as c:
        return [f for batch in facts.iter_batches(c, cfg, as_of) for f in batch]


def test_same_seed_same_book_other_seed_other_book(tmp_path: Path, cfg: Config) -> None:
    books = []
    for name, seed in (("a.db", 11), ("b.db", 11), ("c.db", 12)):
        eng = fresh(tmp_path, name)
        demo.build_book(eng, cfg, clients=200, seed=seed, as_of=AS_OF)
        books.append(dump(eng))
        eng.dispose()
    assert books[0] == books[1]
    assert books[0]["client"] != books[2]["client"]
    assert books[0]["holding"] != books[2]["holding"]


def test_summary_and_progress(tmp_path: Path, cfg: Config) -> None:
    seen: list[int] = []
    eng = fresh(tmp_path, "d.db")
    s = demo.build_book(eng, cfg, clients=2_500, seed=3, as_of=AS_OF, progress=seen.append)
    assert sum(seen) == 2_500 and len(seen) == 2
    assert s.clients == 2_500 and s.advisors == 12 and s.rows["client"] == 2_500
    assert {"product": len(demo.SYMBOLS), **{k: len(v) for k, v in dump(eng).items()}} == s.rows
    assert "2,500 clients and 12 advisors" in str(s)


@pytest.fixture
def book(db: Engine, cfg: Config) -> Iterator[list[dict[str, Any]]]:
    demo.build_book(db, cfg, clients=200, seed=7, as_of=AS_OF)
    yield all_facts(db, cfg)


def count(fs: list[dict[str, Any]], pred: Any) -> int:
    return sum(1 for f in fs if pred(f))


def near_birthday(f: dict[str, Any]) -> bool:
    b = f["birth_date"]
    return b is not None and (b.month, b.day) != (2, 29) and -2 <= (b.replace(year=AS_OF.year) - AS_OF).days <= 6


POPULATIONS = {
    "new account": lambda f: f["days_since_open"] <= 30,
    "new, callback done": lambda f: f["days_since_open"] <= 30 and f["callback_done"],
    "new, no callback": lambda f: f["days_since_open"] <= 30 and not f["callback_done"],
    "dormant": lambda f: f["market_value"] >= 50_000 and f["days_since_open"] > 30
    and (f["days_since_last_trade"] is None or f["days_since_last_trade"] >= 60),
    "concentrated": lambda f: (f["top_weight"] or 0) > 0.4 and f["market_value"] >= 10_000,
    "diversified": lambda f: f["holdings_count"] >= 3 and (f["top_weight"] or 1) < 0.4,
    "margin above 150%": lambda f: f["maintenance_ratio"] is not None and f["maintenance_ratio"] >= 1.5,
    "margin 130-150%": lambda f: f["maintenance_ratio"] is not None and 1.3 <= f["maintenance_ratio"] < 1.5,
    "margin below 130%": lambda f: f["maintenance_ratio"] is not None and f["maintenance_ratio"] < 1.3,
    "margin contract expiring": lambda f: (f["margin_contract_days_left"] or 99) <= 30,
    "losing": lambda f: (f["unrealized_pnl_pct"] or 0) < -0.2,
    "large outflow": lambda f: f["net_flow_20d"] < -0.2 * f["market_value"],
    "65 and over": lambda f: (f["age"] or 0) >= 65,
    "birthday near": near_birthday,
    "risk assessment missing": lambda f: f["risk_assessed_days"] is None,
    "risk assessment stale": lambda f: (f["risk_assessed_days"] or 0) > 730,
    "high net worth": lambda f: f["market_value"] > 6_000_000,
    "zh-TW": lambda f: f["locale"] == "zh-TW",
    "en": lambda f: f["locale"] == "en",
    "es": lambda f: f["locale"] == "es",
}


def test_every_population_is_present(book: list[dict[str, Any]]) -> None:
    missing = [name for name, pred in POPULATIONS.items() if count(book, pred) == 0]
    assert not missing
    assert {f["segment"] for f in book} == set(facts.SEGMENTS)


def test_realistic_shape(book: list[dict[str, Any]]) -> None:
    n = len(book)
    assert n == 200
    assert count(book, lambda f: 10_000 <= f["market_value"] <= 300_000) > n / 2
    assert count(book, lambda f: f["locale"] == "zh-CN") > 0.75 * n
    assert count(book, lambda f: f["days_since_open"] <= 30 and f["callback_done"]) < count(
        book, lambda f: f["days_since_open"] <= 30 and not f["callback_done"])
    assert count(book, lambda f: f["days_since_last_trade"] is None or f["days_since_last_trade"] >= 60) > n / 4


def test_holdings_on_the_day_and_the_day_before(tmp_path: Path, cfg: Config) -> None:
    eng = fresh(tmp_path, "h.db")
    demo.build_book(eng, cfg, clients=100, seed=5, as_of=date(2026, 11, 22))  # a Sunday
    days = sorted({r[0] for r in dump(eng)["holding"]})
    assert days == [date(2026, 11, 19), date(2026, 11, 20)]
    advisors = dump(eng)["advisor"]
    assert len(advisors) == 3 and any(a[3] is not None for a in advisors)


def test_csv_export_imports_to_the_same_book(tmp_path: Path, cfg: Config) -> None:
    built = fresh(tmp_path, "built.db")
    demo.build_book(built, cfg, clients=150, seed=9, as_of=AS_OF)
    summary = demo.write_csv(tmp_path / "csv", cfg, clients=150, seed=9, as_of=AS_OF)
    imported = fresh(tmp_path, "imported.db")
    report = import_dir(imported, tmp_path / "csv")
    assert report.counts == summary.rows
    assert dump(imported) == dump(built)


def test_refuses_a_database_with_clients(db: Engine, cfg: Config) -> None:
    demo.build_book(db, cfg, clients=50, seed=1, as_of=AS_OF)
    with pytest.raises(StewardError, match="already holds clients"):
        demo.build_book(db, cfg, clients=50, seed=1, as_of=AS_OF)


def test_date_beyond_the_calendar(tmp_path: Path, cfg: Config) -> None:
    with pytest.raises(StewardError, match="choose an --as-of date that exchange-calendars knows"):
        demo.build_book(fresh(tmp_path, "x.db"), cfg, clients=50, seed=1, as_of=date(2031, 1, 6))


def test_generator_errors_reach_the_caller() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("boom")

    got = []
    with pytest.raises(ValueError, match="boom"):
        for x in demo._in_background(broken()):
            got.append(x)
    assert got == [1]
