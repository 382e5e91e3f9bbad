"""Events are claimed and processed in batches: few SQL round trips per event, results as if one by one.

Round trips are counted with a SQLAlchemy `before_cursor_execute` listener (an executemany is
one round trip: psycopg pipelines it, SQLite runs it in process) plus the commits.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import pytest
from sqlalchemy import Engine, event, select

from engine.config.base import Config
from engine.events import store
from engine.events.tables import EventMark
from engine.models import Trade
from tests import book
from tests.events_helpers import TZ, cash, ev, firings, margin, service, statuses, trade, deadlines


@contextmanager
def round_trips(db: Engine) -> Iterator[list[int]]:
    """[statements, commits] sent while the block runs."""
    counts = [0, 0]

    def statement(*_: object) -> None:
        counts[0] += 1

    def commit(*_: object) -> None:
        counts[1] += 1

    event.listen(db, "before_cursor_execute", statement)
    event.listen(db, "commit", commit)
    try:
        yield counts
    finally:
        event.remove(db, "before_cursor_execute", statement)
        event.remove(db, "commit", commit)


def _quiet_events(n: int) -> list[object]:
    """Trades and margin reports that fire nothing (the bulk of a trading day), over four clients."""
    clients = ["C001", "C002", "C003", "C004"]
    out = []
    for i in range(n):
        when = f"2026-11-20 10:{i // 60:02d}:{i % 60:02d}"[:16]
        cid = clients[i % 4]
        out.append(trade(f"t{i}", when, client=cid) if i % 2 else margin(f"m{i}", when, 1.8, client=cid))
    return out


def test_a_batch_of_quiet_events_costs_a_few_round_trips_not_a_few_per_event(db: Engine, cfg: Config) -> None:
    book.build(db)
    s = service(db, cfg)
    s.start()
    s.post([trade("warm", "2026-11-20 09:31")])  # the day's run row and the calendar: once per process
    s.drain()
    n = 100
    s.post(_quiet_events(n))  # type: ignore[arg-type]
    with round_trips(db) as counts:
        assert s.drain() == n
    statements, commits = counts
    # One by one this was 4-5 statements and a commit per event; a batch is claim, armed-deadline
    # lookup, one multi-row INSERT of trades, one UPDATE marking the batch, one commit.
    assert statements <= 8 and commits == 1, counts
    assert set(statuses(db).values()) == {"processed"} and s.counters.failed == 0
    with db.connect() as c:
        ids = {r[0] for r in c.execute(select(Trade.__table__.c.id))}  # type: ignore[attr-defined]
    assert {f"t{i}" for i in range(1, n, 2)} <= ids  # every trade's fact row is written


def test_a_batch_sees_what_each_earlier_event_of_the_batch_wrote(db: Engine, cfg: Config) -> None:
    """Arming, curing, sequence marks and dedup inside one batch give the one-by-one results."""
    book.build(db)
    s = service(db, cfg)
    s.start()
    s.post([
        margin("m1", "2026-11-20 10:00", 1.42, client="C002"),      # arms a deadline (buffered insert)
        margin("m2", "2026-11-20 10:05", 1.70, client="C002"),      # cures it: must see the buffered deadline
        margin("m3", "2026-11-20 10:06", 1.45, client="C004"),      # arms one that stays armed
        cash("w1", "2026-11-20 10:10", "withdrawal", 200000.0, client="C002"),  # a sequence mark (buffered)
        cash("x1", "2026-11-20 10:20", "transfer_out", 1000.0, client="C002"),  # pairs with it: fires
        trade("t1", "2026-11-20 10:30", price=1.0, market=100.0),   # fires for C003
        trade("t2", "2026-11-20 10:31", price=1.0, market=100.0),   # same rule, client and day: not again
    ])
    assert s.drain() == 7 and s.counters.failed == 0
    assert [(d.client_id, d.state, d.closed_by_seq is not None) for d in deadlines(db)] == [
        ("C002", "cured", True), ("C004", "armed", False)]
    [seq] = firings(db, "withdrawal_then_transfer_out")
    assert seq.facts["first_id"] == "w1" and seq.facts["event_id"] == "x1"
    assert [f.facts["event_id"] for f in firings(db, "trade_off_market_alert")] == ["t1"]
    with db.connect() as c:
        assert len(list(c.execute(select(EventMark.__table__)))) == 1  # type: ignore[attr-defined]
    assert s.tick(datetime(2026, 11, 23, 16, 0, tzinfo=TZ)) == 1  # only C004's deadline fires


def test_a_failing_event_in_a_batch_fails_alone(db: Engine, cfg: Config) -> None:
    book.build(db)
    s = service(db, cfg)
    s.start()
    s.post([trade("t1", "2026-11-20 10:01", price=1.0, market=100.0),
            ev("o1", "task_outcome", "2026-11-20 11:00", "C001", outcome="reached", task_id=999),
            trade("t2", "2026-11-20 11:02", client="C002")])
    assert s.drain() == 3
    assert statuses(db) == {"t1": "processed", "o1": "failed", "t2": "processed"}
    assert len(firings(db, "trade_off_market_alert")) == 1 and s.counters.processed == 2


def test_a_claim_keeps_each_clients_order(db: Engine, cfg: Config) -> None:
    """An event waits while an earlier stored event of its client is not in the same claim."""
    book.build(db)
    s = service(db, cfg)
    first, later, other = s.post([trade("a1", "2026-11-20 10:01", client="C002"),
                                  trade("a2", "2026-11-20 10:02", client="C002"),
                                  trade("b1", "2026-11-20 10:03", client="C003")]).new
    with db.begin() as c:
        got = store.claim_batch(c, [later[0], other[0]])
        assert [p.event.id for p in got] == ["b1"]  # a2 waits for a1
        c.rollback()
    with db.begin() as c:
        assert [p.event.id for p in store.claim_batch(c, None, 0, 10)] == ["a1", "a2", "b1"]
        c.rollback()


@pytest.mark.postgres
def test_two_engines_claim_disjoint_batches_in_client_order(pg_engine: Engine, cfg: Config) -> None:
    book.build(pg_engine)
    s = service(pg_engine, cfg)
    s.post([trade("a1", "2026-11-20 10:01", client="C002"), trade("b1", "2026-11-20 10:02", client="C003"),
            trade("a2", "2026-11-20 10:03", client="C002"), trade("c1", "2026-11-20 10:04", client="C004")])
    with pg_engine.begin() as one:
        mine = [p.event.id for p in store.claim_batch(one, None, 0, 2)]
        assert mine == ["a1", "b1"]
        with pg_engine.begin() as two:  # a second engine, while the first holds its batch
            theirs = [p.event.id for p in store.claim_batch(two, None, 0, 10)]
            assert theirs == ["c1"]  # a1 and b1 are locked (skipped), a2 waits behind a1
        one.rollback()


def test_firing_events_share_the_days_snapshot_dates_for_a_few_seconds(db: Engine, cfg: Config,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.events import processor

    book.build(db)
    s = service(db, cfg)
    s.start()
    s.post([trade("f1", "2026-11-20 10:01", price=1.0, market=100.0, client="C002")])
    s.drain()  # reads the day's snapshot dates, activity window and supervisors once
    s.post([trade("f2", "2026-11-20 10:02", price=1.0, market=100.0, client="C003")])
    with round_trips(db) as shared:
        s.drain()
    monkeypatch.setattr(processor, "SHARED_FACTS_SECONDS", -1.0)  # expired at once: read afresh per event
    s.post([trade("f3", "2026-11-20 10:03", price=1.0, market=100.0, client="C004")])
    with round_trips(db) as fresh:
        s.drain()
    assert len(firings(db, "trade_off_market_alert")) == 3
    assert shared[0] + 8 <= fresh[0], (shared, fresh)


def _off_market(eid: str, when: str, client: str) -> object:
    return trade(eid, when, price=1.0, market=100.0, client=client)  # fires trade_off_market_alert


def test_a_batch_of_firing_events_costs_about_what_one_firing_event_costs(db: Engine, cfg: Config) -> None:
    """Facts, cooldown, policy stages and recording run once for the batch's firing clients, not once per event."""
    book.build(db)
    s = service(db, cfg)
    s.start()
    s.post([_off_market("warm", "2026-11-20 09:31", "C004")])  # the day's run, calendar, snapshot dates
    s.drain()
    s.post([_off_market("one", "2026-11-20 10:00", "C001")])
    with round_trips(db) as one:
        assert s.drain() == 1
    s.post([_off_market(f"many{cid}", "2026-11-20 10:01", cid) for cid in ["C002", "C003"]])  # within WAVE_SPAN
    with round_trips(db) as many:
        assert s.drain() == 2
    assert {f.client_id for f in firings(db, "trade_off_market_alert")} == {"C001", "C002", "C003", "C004"}
    # One firing event alone: claim, fact row, ~30 facts queries on this book, cooldown, consent,
    # do-not-call, firing insert (3), audit append (5), mark (49 before the policy stages loaded lazily).
    # Recorded one event after the other, two firing events cost twice that (99 before waves).
    assert one[0] <= 45 and one[1] == 1, one
    assert many[0] <= one[0] + 6 and many[1] == 1, (one, many)  # a few facts queries run only when data exists


def test_a_firing_in_a_batch_sees_the_clients_earlier_events_and_fires_once(db: Engine, cfg: Config) -> None:
    """A client's second event in a batch records the waiting firings first: same-day dedup and facts hold."""
    book.build(db)
    s = service(db, cfg)
    s.start()
    s.post([_off_market("a1", "2026-11-20 10:00", "C002"),
            _off_market("b1", "2026-11-20 10:00", "C003"),
            trade("a2", "2026-11-20 10:01", client="C002"),   # a fact row for C002 after its firing
            _off_market("a3", "2026-11-20 10:02", "C002")])   # same rule, client and day: a duplicate
    assert s.drain() == 4 and s.counters.failed == 0
    fired = firings(db, "trade_off_market_alert")
    assert [(f.client_id, f.facts["event_id"]) for f in fired] == [("C002", "a1"), ("C003", "b1")]
    alone = service(db, cfg)  # the firing's facts are the client's facts before its later trade
    with db.connect() as c:
        from engine.facts.base import facts_for
        now = facts_for(c, cfg, fired[0].as_of, "C002")
    assert now is not None and fired[0].facts["trades_20d"] == now["trades_20d"] - 2, (fired[0].facts["trades_20d"], now)
    del alone


def test_an_unknown_client_in_a_firing_batch_fires_nothing(db: Engine, cfg: Config) -> None:
    book.build(db)
    s = service(db, cfg)
    s.start()
    s.post([_off_market("x1", "2026-11-20 10:00", "C005"),  # opens after the event
            _off_market("x2", "2026-11-20 10:00", "C003")])
    assert s.drain() == 2
    assert [f.client_id for f in firings(db, "trade_off_market_alert")] == ["C003"]
    with db.connect() as c:
        t = store.EVENT
        notes = dict(c.execute(select(t.c.event_id, t.c.error)).all())
    assert notes["x1"] == "unknown client (or opened after the event): nothing fired" and notes["x2"] is None


def test_facts_of_several_clients_equal_facts_for_each(db: Engine, cfg: Config) -> None:
    from datetime import date

    from engine.facts.base import facts_for, facts_of

    book.build(db)
    day = date(2026, 11, 20)
    with db.connect() as c:
        many = facts_of(c, cfg, day, ["C003", "C001", "C005", "C002", "nobody"])
        assert sorted(many) == ["C001", "C002", "C003"]  # C005 opens later, "nobody" is unknown
        for cid, facts in many.items():
            assert facts == facts_for(c, cfg, day, cid), cid


def test_deadlines_of_a_batch_read_the_trading_calendar_once(db: Engine, cfg: Config) -> None:
    book.build(db)
    s = service(db, cfg)
    s.start()
    reads: list[str] = []

    def statement(_c: object, _cur: object, sql: str, *_: object) -> None:
        if "FROM trading_day" in sql and "ORDER BY" in sql:
            reads.append(sql)

    event.listen(db, "before_cursor_execute", statement)
    try:
        s.post([margin("m1", "2026-11-20 10:00", 1.42, client="C002"), margin("m2", "2026-11-20 10:01", 1.45, client="C004"),
                margin("m3", "2026-11-20 10:02", 1.44, client="C003")])
        assert s.drain() == 3
    finally:
        event.remove(db, "before_cursor_execute", statement)
    assert len(deadlines(db)) == 3 and len(reads) == 1, reads
