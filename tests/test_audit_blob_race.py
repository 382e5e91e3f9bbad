"""Two writers storing the same rule or template source at once (two shards of a nightly run,
or the nightly run and the event engine) must both commit: blobs are content-addressed."""

from __future__ import annotations

import threading
import time

from sqlalchemy import Engine, func, select, text

from engine.audit import log as auditlog
from engine.audit.log import BLOB


def _wait_until_blocked(eng: Engine, pid: int, limit: float = 10.0) -> None:
    """Bounded wait until backend `pid` waits on a lock (the second writer's insert)."""
    deadline = time.monotonic() + limit
    with eng.connect() as c:
        while time.monotonic() < deadline:
            q = text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :p")
            if c.execute(q, {"p": pid}).scalar() == "Lock":
                return
            c.rollback()
            time.sleep(0.01)
    raise AssertionError(f"the second writer (backend {pid}) never waited on the first one's blob insert")


def test_two_writers_store_the_same_blob_concurrently_on_postgresql(pg_engine: Engine) -> None:
    src = "when: days_idle > 90\n"
    errors: list[BaseException] = []
    second_pid: list[int] = []
    ready = threading.Event()

    def second() -> None:
        try:
            with pg_engine.begin() as c:
                second_pid.append(int(c.execute(text("SELECT pg_backend_pid()")).scalar_one()))
                ready.set()
                auditlog.put_blobs(c, "rule", [src])  # sees no row yet, then waits on the first's key
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
            ready.set()

    with pg_engine.begin() as first:
        auditlog.put_blobs(first, "rule", [src])  # inserted, not yet committed
        th = threading.Thread(target=second)
        th.start()
        assert ready.wait(10)
        assert second_pid, errors
        _wait_until_blocked(pg_engine, second_pid[0])
    th.join(10)
    assert not th.is_alive()
    assert not errors, errors  # before: UniqueViolation on audit_blob_pkey
    with pg_engine.connect() as c:
        assert c.execute(select(func.count()).select_from(BLOB)).scalar() == 1
        assert auditlog.verify(c).ok


def test_storing_a_stored_blob_again_is_a_no_op(db: Engine) -> None:
    with db.begin() as c:
        first = auditlog.put_blobs(c, "template", ["{{ client.name }}", "Hello"])
    with db.begin() as c:
        again = auditlog.put_blobs(c, "template", ["Hello", "{{ client.name }}", "new"])
    assert set(first) < set(again)
    with db.connect() as c:
        assert c.execute(select(func.count()).select_from(BLOB)).scalar() == 3
