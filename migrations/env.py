"""Alembic environment: runs on the connection handed in by engine.db.upgrade."""

from alembic import context
from sqlalchemy import create_engine
from sqlmodel import SQLModel

import engine.models  # noqa: F401  (registers tables on the metadata)
from engine.composition import import_all_tables

import_all_tables()  # tables of every wing

target_metadata = SQLModel.metadata


def run() -> None:
    conn = context.config.attributes.get("connection")
    if conn is None:
        eng = create_engine(context.config.get_main_option("sqlalchemy.url"))
        with eng.begin() as c:
            _migrate(c)
    else:
        _migrate(conn)


def _migrate(conn) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=conn,
        target_metadata=target_metadata,
        render_as_batch=conn.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
