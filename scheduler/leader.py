"""Leader election: one active scheduler per database.

PostgreSQL: `pg_try_advisory_lock` on a dedicated connection held for the leader's
life; when the leader process dies its session ends and the lock is free. SQLite: an
exclusive `fcntl.flock` on a lock file (one machine only, as SQLite itself is).
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import Protocol

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("steward.scheduler")


class Lock(Protocol):
    def try_acquire(self) -> bool: ...

    def alive(self) -> bool:
        """False once leadership is lost (the lock's connection died)."""
        ...

    def release(self) -> None: ...


class AdvisoryLock:
    def __init__(self, engine: Engine, key: int):
        self.engine, self.key = engine, key
        self.conn: Connection | None = None

    def try_acquire(self) -> bool:
        conn = self.engine.connect()
        got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar())
        conn.commit()  # the session-level lock outlives the transaction
        if got:
            self.conn = conn
        else:
            conn.close()
        return got

    def alive(self) -> bool:
        if self.conn is None:
            return False
        try:
            self.conn.execute(text("SELECT 1"))
            self.conn.commit()
            return True
        except SQLAlchemyError:
            return False

    def release(self) -> None:
        if self.conn is not None:
            try:
                self.conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self.conn.commit()
            except SQLAlchemyError:
                pass
            self.conn.close()
            self.conn = None


class FileLock:
    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return True

    def alive(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def lock_for(engine: Engine, key: int, lock_file: Path) -> Lock:
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine, key)
    return FileLock(lock_file)


def wait_for_leadership(lock: Lock, poll: float, stop: threading.Event) -> bool:
    """Block until this process holds the lock (True) or `stop` is set (False)."""
    told = False
    while not stop.is_set():
        if lock.try_acquire():
            return True
        if not told:
            log.warning("standby: another scheduler is the leader; waiting to take over (pid %s)", os.getpid())
            told = True
        stop.wait(poll)
    return False


def holder(engine: Engine, key: int, lock_file: Path) -> str | None:
    """Who leads now, for a status page: the PostgreSQL backend holding the advisory lock, or the
    process holding the SQLite lock file's flock (from /proc/locks); None when no scheduler leads."""
    if engine.dialect.name == "postgresql":
        q = text("SELECT a.pid, a.client_addr, a.backend_start FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                 "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :hi AND l.objid = :lo AND l.objsubid = 1")
        with engine.connect() as conn:
            row = conn.execute(q, {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF}).first()
        return None if row is None else f"PostgreSQL backend pid {row.pid} from {row.client_addr or 'local socket'}"
    try:
        inode = os.stat(lock_file).st_ino
        locks = Path("/proc/locks").read_text(encoding="ascii")
    except OSError:
        return None
    for line in locks.splitlines():  # "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234 0 EOF"
        parts = line.split()
        if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(inode):
            return f"pid {parts[4]} on this machine (lock file {lock_file})"
    return None
