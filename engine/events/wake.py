"""Wake-ups for events stored by other processes: PostgreSQL LISTEN/NOTIFY.

`store.store` sends a notification on `store.CHANNEL` in the storing transaction (delivered
when it commits), its payload the poster's token. A `Listener` holds one connection of its
own in LISTEN and calls `on_wake` from its thread for every notification whose payload is
not the service's own token (events the service posted itself are already queued by seq).
Without it an engine sees another process's events only at its next tick (events.tick_seconds).
SQLite has no notifications: `Listener.start` returns False there and nothing runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from engine.events import store

log = logging.getLogger("steward.events")

POLL_SECONDS = 0.5
"""How long one wait for notifications lasts before the listener checks whether it should stop."""


class Listener:
    """A thread in LISTEN on its own connection; `close` stops it (within `POLL_SECONDS`)."""

    def __init__(self, engine: Engine, token: str, on_wake: Callable[[], None]):
        self.engine, self.token, self.on_wake = engine, token, on_wake
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None

    def start(self) -> bool:
        """Listen (PostgreSQL); False, and nothing started, on other databases."""
        if self.engine.dialect.name != "postgresql" or self._thread is not None:
            return self._thread is not None
        raw = self.engine.raw_connection()
        conn = raw.driver_connection
        raw.detach()  # its own connection for as long as the listener runs: never back to the pool
        assert conn is not None
        conn.rollback()  # the pool's pre-ping left a transaction open: autocommit needs none
        conn.autocommit = True
        conn.execute(f"LISTEN {store.CHANNEL}")
        self._conn = conn
        self._thread = threading.Thread(target=self._run, name="events-listener", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                for n in self._conn.notifies(timeout=POLL_SECONDS):
                    if n.payload != self.token:
                        self.on_wake()
        except Exception as e:  # noqa: BLE001 - the engine still runs, on its tick; said once
            if not self._stop.is_set():
                log.warning("events: LISTEN connection lost (%s): events of other processes wait for the next tick", e)
        finally:
            self._conn.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=POLL_SECONDS * 4)
            self._thread = None
