"""A synthetic brokerage book for demos and load tests: the same seed builds the same book.

Every client gets an archetype (new, onboarding at days 31-40, dormant, dead, settled,
regular, active, core, high-net-worth) and independent traits (losing, concentrated,
margin, large outflow, birthday near the evaluation date, a trade priced off the market,
holdings drifting from the risk profile, a segment downgrade since the previous trading
day, margin eligibility, age band, risk-assessment state, locale). Shares are dealt, not
drawn, so each population the shipped rules look for is present in any book of 50
clients or more. Risk assessments are scored questionnaires (engine.demo.playbook).
Rows are built as plain dicts and written with bulk Core inserts; `write_csv` writes
the same book in the import format of docs/import.md.
"""

from __future__ import annotations

import csv
import json
import queue
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.engine import Connection

from engine.demo import playbook as demo_playbook
from engine.facts import trading_calendar
from engine.config.base import Config
from engine.errors import StewardError
from engine.facts.importer import FILES, sync_sequence
from engine.models import Client, TradingDay
from engine.facts.tables import Product
from engine.config.servicing import RiskConfig
from engine.demo.clients import CLIENTS_PER_CHUNK, ClientMaker, INSERT_CHUNK, Market, Progress, Rows, SYMBOLS, T, WINDOW_DAYS


@dataclass(frozen=True)
class DemoSummary:
    as_of: date
    clients: int
    advisors: int
    rows: dict[str, int]
    """Rows written per table."""
    seconds: float

    def __str__(self) -> str:
        rate = self.clients / self.seconds if self.seconds else 0.0
        parts = ", ".join(f"{n:,} {t}" for t, n in self.rows.items() if t not in ("client", "advisor"))
        return (f"{self.clients:,} clients and {self.advisors:,} advisors as of {self.as_of} ({parts}) "
                f"in {self.seconds:.1f}s, {rate:,.0f} clients/s")


# ------------------------------------------------------------------ output


def _empty_rows() -> Rows:
    return {spec.table.name: [] for spec in FILES.values()}


def _chunks(rng: random.Random, seed: int, clients: int, market: Market,
            risk_cfg: RiskConfig, weeks: int = 0) -> Iterator[tuple[int, Rows]]:
    """(clients in the chunk, rows per table); advisors come with the first chunk."""
    gen = ClientMaker(rng, seed, clients, market, risk_cfg, weeks)
    rows = _empty_rows()
    rows["advisor"] = gen.advisors()
    for start in range(0, clients, CLIENTS_PER_CHUNK):
        stop = min(clients, start + CLIENTS_PER_CHUNK)
        for i in range(start, stop):
            gen.client(i, rows)
        yield stop - start, rows
        rows = _empty_rows()


def _check_days(days: list[date], as_of: date, exchange: str) -> list[date]:
    if len(days) < 30 or (as_of - days[-1]).days > 10:
        raise StewardError(f"the {exchange} trading calendar does not cover the {WINDOW_DAYS} days before "
                           f"{as_of}: choose an --as-of date that exchange-calendars knows")
    return days


def latest_session(exchange: str, today: date) -> date:
    """The demo's default evaluation date: the latest trading day on or before today (a nightly
    run happens on trading days), or today when the exchange calendar does not reach it."""
    first, last = trading_calendar.known_range(exchange)
    if not first <= today <= last:
        return today
    days = trading_calendar.exchange_sessions(exchange, max(first, today - timedelta(days=30)), today)
    return days[-1] if days else today


def _seed_calendar(conn: Connection, exchange: str, as_of: date) -> list[date]:
    """Ensure trading days for [as_of - 400, as_of + 60] (as far as known); the window's open days."""
    first, last = trading_calendar.known_range(exchange)
    lo, hi = max(first, as_of - timedelta(days=400)), min(last, as_of + timedelta(days=60))
    if lo <= hi:
        trading_calendar.ensure(conn, exchange, lo, hi)
    t = TradingDay.__table__  # type: ignore[attr-defined]
    days = [r[0] for r in conn.execute(
        select(t.c.day).where(t.c.exchange == exchange, t.c.is_open.is_(True),
                              t.c.day.between(as_of - timedelta(days=WINDOW_DAYS), as_of)).order_by(t.c.day))]
    return _check_days(days, as_of, exchange)


def _count(totals: dict[str, int], rows: Rows) -> None:
    for name, batch in rows.items():
        totals[name] = totals.get(name, 0) + len(batch)


def _in_background(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Iterate `items` in a worker thread: generation then overlaps SQLite's writes (which release the GIL)."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, value: Any) -> None:
        while not stop.is_set():
            try:
                q.put((kind, value), timeout=0.1)
                return
            except queue.Full:
                continue

    def work() -> None:
        try:
            for item in items:
                put("item", item)
            put("done", None)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            put("error", e)

    worker = threading.Thread(target=work, name="demo-generator", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "error":
                raise value
            if kind == "done":
                return
            yield value
    finally:
        stop.set()
        worker.join()


product_risk = demo_playbook.product_risk


def _products(conn: Connection) -> int:
    """Add the demo symbols to the product master (symbols already there are left alone)."""
    t = Product.__table__  # type: ignore[attr-defined]
    have = {r[0] for r in conn.execute(select(t.c.symbol))}
    rows = [r for r in demo_playbook.product_rows(SYMBOLS + (demo_playbook.SMALL_CAP,)) if r["symbol"] not in have]
    if rows:
        conn.execute(t.insert(), rows)
    return len(rows)


def _insert(conn: Connection, rows: Rows) -> None:
    tables = {spec.table.name: spec.table for spec in FILES.values()}
    for name, batch in rows.items():
        for k in range(0, len(batch), INSERT_CHUNK):
            conn.execute(tables[name].insert(), batch[k:k + INSERT_CHUNK])


def build_book(engine: Engine, cfg: Config, clients: int, seed: int, as_of: date,
               progress: Progress | None = None, weeks: int = 0) -> DemoSummary:
    """Write a synthetic book of `clients` clients into an empty, migrated database.

    Also seeds the trading calendar and adds the demo symbols to the product master.
    `weeks` > 0 adds holdings and cash snapshots at the end of each of that many earlier
    weeks, so weekly reviews (`steward report effect`) see segments as of each week.
    """
    started = time.perf_counter()
    rng = random.Random(seed)
    totals: dict[str, int] = {}
    with engine.begin() as conn:
        if conn.execute(select(func.count()).select_from(Client.__table__)).scalar():  # type: ignore[attr-defined]
            raise StewardError("the database already holds clients: build the demo book into an empty database")
        market = Market.make(rng, as_of, _seed_calendar(conn, cfg.calendar.exchange, as_of))
        totals["product"] = _products(conn)
        for n, rows in _in_background(_chunks(rng, seed, clients, market, cfg.servicing.risk, weeks)):
            _insert(conn, rows)
            _count(totals, rows)
            if progress is not None:
                progress(n)
        for spec in FILES.values():  # rows carry explicit ids: PostgreSQL's sequences move past them
            sync_sequence(conn, spec.table)
    return DemoSummary(as_of, clients, totals.get("advisor", 0), totals, time.perf_counter() - started)


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (date, datetime)):
        return v.isoformat()
    if isinstance(v, dict):
        return json.dumps(v, ensure_ascii=False, sort_keys=True)
    return str(v)


def write_csv(directory: Path, cfg: Config, clients: int, seed: int, as_of: date,
              progress: Progress | None = None) -> DemoSummary:
    """Write the same book as `build_book` would, as import files (docs/import.md) in `directory`."""
    started = time.perf_counter()
    rng = random.Random(seed)
    exchange = cfg.calendar.exchange
    sessions = trading_calendar.exchange_sessions(exchange, as_of - timedelta(days=WINDOW_DAYS), as_of)
    market = Market.make(rng, as_of, _check_days(sessions, as_of, exchange))
    directory.mkdir(parents=True, exist_ok=True)
    totals: dict[str, int] = {}
    files = {spec.table.name: (directory / name).open("w", encoding="utf-8", newline="")
             for name, spec in FILES.items()}
    try:
        writers = {t: csv.writer(f, lineterminator="\n") for t, f in files.items()}
        cols = {spec.table.name: list(spec.model.model_fields) for spec in FILES.values()}
        for t, w in writers.items():
            w.writerow(cols[t])
        products = demo_playbook.product_rows(SYMBOLS + (demo_playbook.SMALL_CAP,))
        writers["product"].writerows([_cell(r[c]) for c in cols["product"]] for r in products)
        totals["product"] = len(products)
        for n, rows in _chunks(rng, seed, clients, market, cfg.servicing.risk):
            for t, batch in rows.items():
                writers[t].writerows([_cell(r.get(c)) for c in cols[t]] for r in batch)
            _count(totals, rows)
            if progress is not None:
                progress(n)
    finally:
        for f in files.values():
            f.close()
    return DemoSummary(as_of, clients, totals.get("advisor", 0), totals, time.perf_counter() - started)
