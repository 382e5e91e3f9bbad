"""engine.db.bulk_writer: the nightly run's write connection leaves SQLite's WAL checkpoints to a
thread of its own, so a commit no longer waits for the checkpoint of what it has just written."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path

import pytest

from engine.db import bulk_writer, make_engine

ROWS = 6000  # ~6 MB: more than wal_autocheckpoint's 1000 pages, so a plain commit would checkpoint


def _rows_in_database_file(path: Path, tmp: Path) -> int:
    """Rows of `t` in the database file alone, without its WAL: what checkpoints have copied there."""
    alone = tmp / "alone.db"
    shutil.copyfile(path, alone)
    con = sqlite3.connect(alone)
    try:
        return int(con.execute("SELECT count(*) FROM t").fetchone()[0])
    finally:
        con.close()
        alone.unlink()


def _autocheckpoint(conn: object) -> int:
    raw = conn.connection.driver_connection  # type: ignore[attr-defined]
    return int(raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0])


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "sqlite-checkpoint"]


def test_a_commit_does_not_checkpoint_and_the_block_ends_checkpointed(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    eng = make_engine(f"sqlite:///{path}")
    with eng.begin() as c:
        c.exec_driver_sql("CREATE TABLE t (x TEXT)")
    with eng.connect() as c:
        c.connection.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the table is in the file
    with bulk_writer(eng) as (conn, committed):
        assert _autocheckpoint(conn) == 0
        with conn.begin():
            conn.exec_driver_sql("INSERT INTO t VALUES (?)", [("x" * 1000,)] * ROWS)
        assert _rows_in_database_file(path, tmp_path) == 0  # committed to the WAL only
        committed()
    assert _rows_in_database_file(path, tmp_path) == ROWS  # the last checkpoint ran before the block ended
    assert not _checkpoint_threads()
    with eng.connect() as c:
        assert _autocheckpoint(c) == 1000  # the pooled connection checkpoints at commit again
        assert c.exec_driver_sql("SELECT count(*) FROM t").scalar() == ROWS
    eng.dispose()


def test_the_checkpoint_thread_ends_when_the_block_fails(tmp_path: Path) -> None:
    eng = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with eng.begin() as c:
        c.exec_driver_sql("CREATE TABLE t (x TEXT)")
    with pytest.raises(RuntimeError, match="boom"):
        with bulk_writer(eng) as (conn, committed):
            with conn.begin():
                conn.exec_driver_sql("INSERT INTO t VALUES ('a')")
            committed()
            raise RuntimeError("boom")
    assert not _checkpoint_threads()
    with eng.connect() as c:
        assert c.exec_driver_sql("SELECT count(*) FROM t").scalar() == 1
    eng.dispose()


def test_in_memory_there_is_nothing_to_checkpoint() -> None:
    eng = make_engine("sqlite://")
    with bulk_writer(eng) as (conn, committed):
        committed()  # a no-op
        assert not _checkpoint_threads()
        assert _autocheckpoint(conn) == 1000


def test_the_next_write_waits_for_the_checkpoint_so_the_wal_is_reused(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A WAL restarts from its beginning only when a write starts on a fully copied log: a writer
    running ahead of its checkpoints grew the file without bound (10 GB in a 1M-client run)."""
    from sqlalchemy import event

    from engine import db

    seen: list[str] = []
    original = db._Checkpointer._checkpoint

    def slow(self: db._Checkpointer, con: sqlite3.Connection) -> None:
        seen.append("checkpoint started")
        threading.Event().wait(0.3)  # a slow disk
        original(self, con)
        seen.append("checkpoint done")

    monkeypatch.setattr(db._Checkpointer, "_checkpoint", slow)
    path = tmp_path / "w.db"
    eng = make_engine(f"sqlite:///{path}")
    with eng.begin() as c:
        c.exec_driver_sql("CREATE TABLE t (x TEXT)")
    sizes = []
    with bulk_writer(eng) as (conn, committed):
        event.listen(conn, "before_cursor_execute", lambda *a: seen.append("write"))  # after bulk_writer's own
        for _ in range(4):
            with conn.begin():
                conn.exec_driver_sql("INSERT INTO t VALUES (?)", [("x" * 1000,)] * ROWS)
            committed()
            sizes.append(Path(f"{path}-wal").stat().st_size)
    assert seen[:4] == ["write", "checkpoint started", "checkpoint done", "write"]
    assert all(seen[i - 1] == "checkpoint done" for i, s in enumerate(seen) if s == "write" and i > 0)
    assert max(sizes) < 1.5 * min(sizes)  # the same log reused, not one growing by a transaction each time
    eng.dispose()


def _table(path: Path) -> object:
    eng = make_engine(f"sqlite:///{path}")
    with eng.begin() as c:
        c.exec_driver_sql("CREATE TABLE t (x TEXT)")
    return eng


def test_bulk_writers_take_turns_from_first_statement_to_commit(tmp_path: Path) -> None:
    """A second bulk writer's transaction starts only once the first has committed, even with a
    read (which SQLite alone lets through in WAL mode): it then waits in the kernel for the turn
    instead of polling SQLite's lock, and starts the moment the turn is given back."""
    eng = _table(tmp_path / "w.db")
    order: list[str] = []
    a_in = threading.Event()

    def second() -> None:
        a_in.wait(5)
        with bulk_writer(eng) as (conn, committed):  # type: ignore[arg-type]
            with conn.begin():
                n = conn.exec_driver_sql("SELECT count(*) FROM t").scalar()
                order.append(f"b read {n}")
            committed()

    with bulk_writer(eng) as (conn, committed):  # type: ignore[arg-type]
        t = threading.Thread(target=second)
        t.start()
        with conn.begin():
            conn.exec_driver_sql("INSERT INTO t VALUES ('a')")
            a_in.set()
            t.join(0.5)  # b is waiting for the turn, not reading
            order.append("a commits")
        committed()
        t.join(5)
    assert order == ["a commits", "b read 1"]
    assert (tmp_path / "w.db-writers").exists()
    eng.dispose()  # type: ignore[attr-defined]


def test_the_turn_is_given_back_when_the_block_fails(tmp_path: Path) -> None:
    eng = _table(tmp_path / "w.db")
    with pytest.raises(RuntimeError):
        with bulk_writer(eng) as (conn, _committed):  # type: ignore[arg-type]
            with conn.begin():
                conn.exec_driver_sql("INSERT INTO t VALUES ('a')")
                raise RuntimeError("stop")
    done = threading.Event()

    def later() -> None:
        with bulk_writer(eng) as (conn, committed):  # type: ignore[arg-type]
            with conn.begin():
                conn.exec_driver_sql("INSERT INTO t VALUES ('b')")
            committed()
        done.set()

    t = threading.Thread(target=later, daemon=True)
    t.start()
    assert done.wait(5), "the failed block kept the writers' turn"
    eng.dispose()  # type: ignore[attr-defined]
