"""Database access: engine creation and schema migrations (Alembic)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, inspect
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


def make_engine(url: str, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        eng = create_engine(url, echo=echo, connect_args={"timeout": 30})
        event.listen(eng, "connect", _sqlite_pragmas)
        return eng
    return create_engine(url, echo=echo, pool_pre_ping=True)


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
    with engine.begin() as conn:
        ac = alembic_config(engine.url.render_as_string(hide_password=False))
        ac.attributes["connection"] = conn
        command.upgrade(ac, "heads")


def is_initialised(engine: Engine) -> bool:
    return inspect(engine).has_table("client")


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    with engine.begin() as conn:
        yield conn
