"""The migrated schema equals the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlmodel import SQLModel

from engine.composition import import_all_tables
from engine.db import upgrade

import_all_tables()


def test_migrations_match_models(db: Engine) -> None:
    with db.connect() as conn:
        mc = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(mc, SQLModel.metadata)
    assert diff == [], f"models and migrations differ; add a migration: {diff}"


def test_upgrade_is_idempotent(db: Engine) -> None:
    before = sorted(inspect(db).get_table_names())
    upgrade(db)
    assert sorted(inspect(db).get_table_names()) == before
