"""Events stored by another process wake the engine at once on PostgreSQL (LISTEN/NOTIFY).

Without a wake-up an engine sees another process's events only at its next tick
(events.tick_seconds); its own posts are queued by seq and must not wake it twice.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine

from engine.config.base import Config
from engine.events import store
from engine.events.service import WAKE
from tests import book
from tests.events_helpers import service, statuses, trade


def _stored_elsewhere(db: Engine, *events: object) -> None:
    """As another process (`steward events post --no-process`, a second engine's intake) stores them."""
    with db.begin() as c:
        store.store(c, events, source="another-process")  # type: ignore[arg-type]


@pytest.mark.postgres
def test_an_event_stored_by_another_process_wakes_a_listening_engine(pg_engine: Engine, cfg: Config) -> None:
    book.build(pg_engine)
    s = service(pg_engine, cfg)
    s.start()
    assert s.listen()
    try:
        _stored_elsewhere(pg_engine, trade("x1", "2026-11-20 10:01"), trade("x2", "2026-11-20 10:02", client="C002"))
        assert s.drain(timeout=30) == 2  # woken by the notification: no tick, no replay
        assert statuses(pg_engine) == {"x1": "processed", "x2": "processed"}
    finally:
        s.close()


@pytest.mark.postgres
def test_an_engine_not_listening_waits_for_its_tick(pg_engine: Engine, cfg: Config) -> None:
    book.build(pg_engine)
    s = service(pg_engine, cfg)
    s.start()
    _stored_elsewhere(pg_engine, trade("x1", "2026-11-20 10:01"))
    assert s.drain(timeout=0.3) == 0 and statuses(pg_engine) == {"x1": "stored"}
    assert s.run_pending() == 1  # what the tick does


@pytest.mark.postgres
def test_the_engines_own_posts_are_queued_once_and_do_not_wake_it(pg_engine: Engine, cfg: Config) -> None:
    book.build(pg_engine)
    s = service(pg_engine, cfg)
    s.start()
    assert s.listen()
    try:
        seqs = [seq for seq, _ in s.post([trade("o1", "2026-11-20 10:01"), trade("o2", "2026-11-20 10:02")]).new]
        _stored_elsewhere(pg_engine, trade("x1", "2026-11-20 10:03", client="C002"))
        assert s.queue.get(timeout=5) == seqs[0] and s.queue.get(timeout=5) == seqs[1]
        assert s.queue.get(timeout=30) == WAKE  # the other process's post only
        s.queue.put(WAKE)
        assert s.drain() == 3 and s.queue.empty()
    finally:
        s.close()


def test_many_notifications_queue_one_wake_until_it_is_handled(db: Engine, cfg: Config) -> None:
    book.build(db)
    s = service(db, cfg)
    for _ in range(5):
        s.wake()  # the listener thread's call, once per notification
    assert s.queue.qsize() == 1
    assert s.drain() == 0
    s.wake()
    assert s.queue.qsize() == 1


def test_sqlite_has_no_listener(sqlite_engine: Engine, cfg: Config) -> None:
    s = service(sqlite_engine, cfg)
    assert not s.listen()
    s.close()


def test_a_serving_engine_processes_what_another_process_stored(db: Engine, cfg: Config) -> None:
    """PostgreSQL: woken by the notification; SQLite: found at the tick (a WAKE, then the next drain).
    The engine serves in this thread (durable-rules belongs to one thread per process); another
    thread stores, as another process would, and stops the engine once both events are processed."""
    book.build(db)
    s = service(db, cfg)
    stop, seen = threading.Event(), []

    def other_process() -> None:
        try:
            _stored_elsewhere(db, trade("x1", "2026-11-20 10:01"), trade("x2", "2026-11-20 10:02", client="C002"))
            for _ in range(600):  # at most ~30 s on a loaded machine; the tick is 1 s
                seen.append(statuses(db))
                if set(seen[-1].values()) == {"processed"}:
                    return
                stop.wait(0.05)
        finally:
            stop.set()

    poster = threading.Thread(target=other_process, name="other-process")
    poster.start()
    s.serve(stop)
    poster.join(timeout=30)
    assert seen[-1] == {"x1": "processed", "x2": "processed"} and s.counters.processed == 2
