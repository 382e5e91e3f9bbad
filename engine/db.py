"""Database access: engine creation and schema migrations (Alembic)."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import JSON, Engine, Table, create_engine, event, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import QueuePool

import migrations
from engine.config.base import Config

MIGRATIONS_DIR = Path(migrations.__file__).parent


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _json(value: object) -> str:
    """JSON columns (firing facts and policy trail, outbox trail, ...) through orjson: the
    nightly run encodes one facts snapshot per firing, and the standard library is the slower half."""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode("utf-8")


def make_engine(url: str, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url, echo=echo, connect_args={"timeout": 30}, json_serializer=_json)
        event.listen(eng, "connect", _sqlite_pragmas)
        return eng
    return create_engine(url, echo=echo, pool_pre_ping=True, json_serializer=_json)


def sqlite_engine_on(connect: Callable[[], sqlite3.Connection]) -> Engine:
    """A SQLite engine whose new connections come from `connect()`; `dispose()` closes the pooled ones.

    For a run that moves from one database file to the next while statements stay
    compiled (SQLAlchemy caches compiled SQL per engine): the rule tests give each case
    its own file and dispose of the pool between cases.
    """
    eng = create_engine("sqlite://", creator=connect, poolclass=QueuePool)
    event.listen(eng, "connect", _sqlite_pragmas)
    return eng


def engine_for(cfg: Config) -> Engine:
    return make_engine(cfg.database_url, cfg.database.echo)


def alembic_config(url: str) -> AlembicConfig:
    ac = AlembicConfig()
    ac.set_main_option("script_location", str(MIGRATIONS_DIR))
    ac.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return ac


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent)."""
    migrate(engine, "heads")


def migrate(engine: Engine, revision: str, down: bool = False) -> None:
    """Upgrade the schema to `revision` (with its ancestors), or with `down` downgrade to it, in one transaction."""
    with engine.begin() as conn:
        ac = alembic_config(engine.url.render_as_string(hide_password=False))
        ac.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(ac, revision)


def is_initialised(engine: Engine) -> bool:
    return inspect(engine).has_table("client")


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    with engine.begin() as conn:
        yield conn


# ------------------------------------------------------------------ a writer that does not checkpoint

log = logging.getLogger(__name__)


class _Checkpointer:
    """Checkpoints a SQLite database's WAL on a thread of its own, each time it is poked.

    A SQLite connection checkpoints at the end of any commit that leaves more than
    `wal_autocheckpoint` pages (4 MB) in the WAL: it copies the committed pages into the
    database file and syncs it, in the committing thread. Every transaction of the nightly run
    writes more than that, so every commit waited for a checkpoint of everything it had just
    written (a quarter of a 100k run). Here a second connection does the same PASSIVE checkpoint
    while the writer prepares its next transaction (sqlite3 releases the GIL while SQLite works).
    Durability is unchanged: the commit itself is the same WAL append as before.
    """

    def __init__(self, path: str):
        self.path = path
        self._cv = threading.Condition()
        self._pending = self._running = self._stopping = False
        self.thread = threading.Thread(target=self._loop, name="sqlite-checkpoint", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        try:
            con = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        except sqlite3.Error as e:  # pragma: no cover - the writer opened the same file
            log.warning("WAL checkpoints stay in the writer: cannot open %s: %s", self.path, e)
            with self._cv:
                self._stopping, self._pending = True, False
                self._cv.notify_all()
            return
        try:
            while True:
                with self._cv:
                    while not self._pending and not self._stopping:
                        self._cv.wait()
                    if not self._pending:
                        return
                    self._pending, self._running = False, True
                try:
                    self._checkpoint(con)
                finally:
                    with self._cv:
                        self._running = False
                        self._cv.notify_all()
        finally:
            con.close()

    def _checkpoint(self, con: sqlite3.Connection) -> None:
        try:
            con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as e:  # the next poke tries again; the WAL keeps the data meanwhile
            log.warning("WAL checkpoint of %s failed: %s", self.path, e)

    def poke(self) -> None:
        """A commit happened: checkpoint it (on the thread)."""
        with self._cv:
            self._pending = True
            self._cv.notify_all()

    def settle(self) -> None:
        """Wait until the checkpoint asked for is done. Called before the writer's next write: a
        WAL restarts from its beginning only when a write transaction starts on a fully copied
        log, so a writer that ran ahead of its checkpoints would grow the WAL file without bound
        (seen at 1M clients: 10 GB) instead of reusing it. The checkpoint still overlaps the
        writer's preparation of its next transaction, which writes nothing."""
        with self._cv:
            while (self._pending or self._running) and not self._stopping:
                self._cv.wait()

    def stop(self) -> None:
        """One last checkpoint (what the last commit would have done), then the thread ends."""
        with self._cv:
            self._stopping = self._pending = True
            self._cv.notify_all()
        self.thread.join()


def _sqlite_file(raw: Any) -> str | None:
    """The file of a SQLite connection's main database; None in memory or for a temporary database."""
    for _seq, name, path in raw.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return str(path) if path else None
    return None


@contextmanager
def bulk_writer(engine: Engine) -> Iterator[tuple[Connection, Callable[[], None]]]:
    """A connection for many write transactions in a row, and `committed()` to call after each commit.

    On a SQLite file in WAL mode this connection does not checkpoint at its commits;
    `committed()` asks a thread of this process to do it instead (see `_Checkpointer`), and the
    last checkpoint runs when the block ends. Bulk writers of the same file (the workers of a
    sharded run) also take turns through a lock file (`_WriterTurn`): a transaction's first
    statement waits for the turn, `committed()` gives it back. Elsewhere `committed()` does nothing.
    """
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        path = None
        if conn.dialect.name == "sqlite" and raw is not None:
            mode = raw.execute("PRAGMA journal_mode").fetchone()
            path = _sqlite_file(raw) if mode and str(mode[0]).lower() == "wal" else None
        if path is None or raw is None:
            yield conn, lambda: None
            return
        before = int(raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
        raw.execute("PRAGMA wal_autocheckpoint=0")
        ckpt = _Checkpointer(path)
        turn = _WriterTurn(path)

        def settle(*_: Any) -> None:  # before each statement of this connection: a write waits for the checkpoint
            ckpt.settle()
            turn.take()

        def done() -> None:
            turn.give()
            ckpt.poke()
        event.listen(conn, "before_cursor_execute", settle)
        try:
            yield conn, done
        finally:
            event.remove(conn, "before_cursor_execute", settle)
            turn.close()
            ckpt.stop()
            raw.execute(f"PRAGMA wal_autocheckpoint={before}")


class _WriterTurn:
    """Bulk writers of one SQLite file take turns through a lock file, not SQLite's busy handler.

    A SQLite writer that finds the write lock held sleeps and retries (the busy handler sleeps
    1, 2, 5, 10 ... 100 ms), so a worker waiting for another's commit wakes up to 100 ms after
    the lock is free: with two workers the lock sat idle while both prepared. The workers of a
    run (engine.pipeline.shards) instead wait on `flock` of `<database>-writers`, which wakes
    the next one as the holder commits. The turn is taken before the transaction's first
    statement and given back after its commit (`committed()`), or when the block ends. Writers
    that do not take turns (the console, the event engine) still go through SQLite's own lock.
    A worker waits for the turn as long as the holder keeps it (the kernel frees it when the
    holder's process ends): a run stalled that way shows in its heartbeat, not as a
    "database is locked" error after SQLite's 30 s busy timeout.
    """

    def __init__(self, path: str):
        self.fd: int | None = None
        self.held = False
        try:
            self.fd = os.open(f"{path}-writers", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:  # a read-only directory: SQLite's busy handler alone, as before
            log.warning("bulk writers of %s do not take turns: %s", path, e)

    def take(self) -> None:
        if self.fd is not None and not self.held:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            self.held = True

    def give(self) -> None:
        if self.fd is not None and self.held:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            self.held = False

    def close(self) -> None:
        self.give()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# ------------------------------------------------------------------ bulk inserts

_PROCESSORS: dict[tuple[str, str], list[tuple[str, Any]]] = {}


def _processors(conn: Connection, table: Table) -> list[tuple[str, Any]]:
    """(column name, bind processor or None) of every column, once per table and dialect."""
    key = (table.name, conn.dialect.name)
    if key not in _PROCESSORS:
        d = conn.dialect
        _PROCESSORS[key] = [(c.name, c.type.dialect_impl(d).bind_processor(d)) for c in table.columns]
    return _PROCESSORS[key]


def bulk_insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]],
                encoded: dict[str, str] | None = None) -> None:
    """Insert many rows in the caller's transaction, fast: COPY on PostgreSQL, one executemany on SQLite.

    The nightly run writes a firing, an outbox row and an audit event per firing; SQLAlchemy's
    per-row parameter processing cost more than the database's own work. Columns are the
    table's columns present in the first row (every row has the same keys). `encoded` maps a
    JSON column to the row key that holds its text already encoded (the facts snapshot is
    encoded once per client and reused), stored as is. Values are converted by the same
    column-type processors SQLAlchemy uses, so what is stored is what an ORM insert stores.
    """
    if rows:
        names, data = encode_rows(conn, table, rows, encoded)
        write_rows(conn, table, names, data)


def encode_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]],
                encoded: dict[str, str] | None = None, skip: Sequence[str] = ()) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The column names and value tuples `write_rows` inserts: all the per-value work of a bulk
    insert, which needs no lock (the nightly run does it before it takes the write lock).

    `skip`: columns left out here (an id known only once the lock is held), which the caller
    puts first in each tuple before writing. A value repeated from one row to the next (the
    batch's `as_of` and `now`) is converted once.
    """
    encoded = encoded or {}
    first = rows[0]
    cols = [(name, proc) for name, proc in _processors(conn, table) if name in first and name not in skip]
    names = [n for n, _ in cols]
    getters: list[tuple[str, Any]] = []
    for name, proc in cols:
        if name in encoded:
            getters.append((encoded[name], None))
        elif isinstance(table.c[name].type, JSON):  # the text itself (COPY takes no JSON wrapper)
            getters.append((name, _json))
        else:
            getters.append((name, proc and _Memo(proc)))
    return names, _values(rows, getters)


def _values(rows: Sequence[dict[str, Any]], getters: list[tuple[str, Any]]) -> list[tuple[Any, ...]]:
    """Each row's values in `getters`' order, converted where a column has a processor: one
    itemgetter call per row, and a Python step only for the few columns that convert (dates,
    JSON), not for every value."""
    keys = [k for k, _ in getters]
    get = itemgetter(*keys) if len(keys) > 1 else (lambda r, k=keys[0]: (r[k],))
    procs = [(i, p) for i, (_, p) in enumerate(getters) if p is not None]
    if not procs:
        return [get(r) for r in rows]
    out: list[tuple[Any, ...]] = []
    for r in rows:
        v = list(get(r))
        for i, p in procs:
            x = v[i]
            if x is not None:
                v[i] = p(x)
        out.append(tuple(v))
    return out


class _Memo:
    """A bind processor that converts the same object twice in a row only once."""

    __slots__ = ("proc", "last", "out")

    def __init__(self, proc: Any):
        self.proc, self.last, self.out = proc, _Memo, None

    def __call__(self, v: Any) -> Any:
        if v is not self.last:
            self.last, self.out = v, self.proc(v)
        return self.out


def write_rows(conn: Connection, table: Table, names: Sequence[str], data: Sequence[tuple[Any, ...]],
               utf8: Collection[str] = ()) -> None:
    """Insert tuples made by `encode_rows` (COPY on PostgreSQL, executemany on SQLite).

    `utf8`: text columns whose values are given as UTF-8 bytes (JSON straight from orjson).
    SQLite stores them as TEXT with `CAST(? AS TEXT)`, the same bytes, without Python decoding
    them to a str and sqlite3 encoding that str back to UTF-8 (for text outside ASCII, such as
    the audit bodies, ~15 us per 3.5 KB body); PostgreSQL gets them decoded.
    """
    if not data:
        return
    quoted = ", ".join(f'"{n}"' for n in names)
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        assert raw is not None
        at = [i for i, n in enumerate(names) if n in utf8]
        with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
            for t in data:
                if at:
                    t = tuple(v.decode("utf-8") if i in at and isinstance(v, bytes) else v for i, v in enumerate(t))
                copy.write_row(t)
        return
    marks = ", ".join("CAST(? AS TEXT)" if n in utf8 else "?" for n in names)
    conn.exec_driver_sql(f'INSERT INTO "{table.name}" ({quoted}) VALUES ({marks})', data)


def next_ids(conn: Connection, table: Table, n: int) -> list[int]:
    """`n` new ids for `table`'s integer key, taken before the rows are inserted (no RETURNING).

    PostgreSQL: from the column's sequence (safe with concurrent writers). SQLite: the write
    lock is taken first (a no-op UPDATE), then max(id) + 1 onwards, which is what SQLite's
    rowid allocation would give; no other writer can insert until this transaction ends.
    """
    if n <= 0:
        return []
    if conn.dialect.name == "postgresql":
        q = text(f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) FROM generate_series(1, :n)")
        return sorted(int(r[0]) for r in conn.execute(q, {"n": n}))
    conn.exec_driver_sql(f'UPDATE "{table.name}" SET id = id WHERE 1 = 0')
    top = conn.exec_driver_sql(f'SELECT max(id) FROM "{table.name}"').scalar()
    start = int(top or 0) + 1
    return list(range(start, start + n))
