"""The outbox holds one row per (firing_id, kind) (migration 0026_lead): the unique index on the
random idempotency key is gone (it sent each message of a night to a random page of an index
that grows every night: 239.5 -> 208.3 s at 1M clients), and what it guarded stays guarded: a
second message for the same firing is refused whatever its key."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import IntegrityError

from engine.db import make_engine, migrate, upgrade
from engine.dispatch.outbox import idempotency_key
from engine.dispatch.tables import Outbox

OUTBOX = Outbox.__table__  # type: ignore[attr-defined]
NOW = datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc)


def _row(firing_id: int, kind: str = "client", key: str | None = None) -> dict[str, Any]:
    return {"idempotency_key": key or idempotency_key("r1", "h1", f"C{firing_id}", "2026-11-20"), "kind": kind,
            "firing_id": firing_id, "rule_class": "service", "channel": "sms", "bypass_window": False,
            "outside_window": "hold", "state": "queued", "attempts": 0, "trail": [], "created_at": NOW, "updated_at": NOW}


def _unique_sets(db: Engine) -> set[tuple[str, ...]]:
    """Column lists of the outbox's unique constraints and unique indexes."""
    insp = inspect(db)
    found = {tuple(u["column_names"]) for u in insp.get_unique_constraints("outbox")}
    return found | {tuple(i["column_names"]) for i in insp.get_indexes("outbox") if i["unique"]}


def test_unique_per_firing_and_kind_not_per_key(db: Engine) -> None:
    assert _unique_sets(db) == {("firing_id", "kind")}
    with db.begin() as c:
        c.execute(OUTBOX.insert(), [_row(1), _row(2), _row(1, kind="escalation", key="e" * 64)])
    with pytest.raises(IntegrityError):  # a second message for firing 1, under another key
        with db.begin() as c:
            c.execute(OUTBOX.insert(), [_row(1, key="x" * 64)])
    with db.connect() as c:
        assert c.execute(select(OUTBOX.c.firing_id, OUTBOX.c.kind).order_by(OUTBOX.c.id)).all() == [
            (1, "client"), (2, "client"), (1, "escalation")]


def test_the_sqlite_upgrade_rebuilds_the_table_and_keeps_its_rows(tmp_path: Path) -> None:
    """Before 0026 the unique key was part of the SQLite table: the upgrade rebuilds it."""
    db = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    for rev in ("0007_i12", "0025_lead"):  # what 0026 revises and depends on (and their ancestors)
        migrate(db, rev)
    assert ("idempotency_key",) in _unique_sets(db)
    with db.begin() as c:
        c.execute(OUTBOX.insert(), [_row(i) for i in range(1, 6)])
    upgrade(db)
    assert _unique_sets(db) == {("firing_id", "kind")}
    with db.connect() as c:
        assert c.execute(select(OUTBOX.c.firing_id).order_by(OUTBOX.c.id)).scalars().all() == [1, 2, 3, 4, 5]
    db.dispose()


@pytest.mark.postgres
def test_the_postgresql_upgrade_drops_the_constraint(pg_engine: Engine) -> None:
    migrate(pg_engine, "0025_lead", down=True)
    with pg_engine.begin() as c:  # the constraint as 0004 made it on PostgreSQL
        c.exec_driver_sql("DROP INDEX uq_outbox_idempotency_key")
        c.exec_driver_sql("ALTER TABLE outbox ADD CONSTRAINT outbox_idempotency_key_key UNIQUE (idempotency_key)")
        c.execute(OUTBOX.insert(), [_row(i) for i in range(1, 4)])
    upgrade(pg_engine)
    assert _unique_sets(pg_engine) == {("firing_id", "kind")}


def test_downgrade_puts_the_key_index_back_and_upgrade_removes_it(db: Engine) -> None:
    with db.begin() as c:
        c.execute(OUTBOX.insert(), [_row(1), _row(2)])
    migrate(db, "0025_lead", down=True)
    assert _unique_sets(db) == {("idempotency_key",)}
    assert "ix_outbox_firing_id" in {i["name"] for i in inspect(db).get_indexes("outbox")}
    upgrade(db)
    assert _unique_sets(db) == {("firing_id", "kind")}
