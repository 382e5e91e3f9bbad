"""audit_event.hash carries no index (migration 0025_lead): a SHA-256 is a random key, so a unique
index on it sent every event of a night to a random page of an index that grows with every night
kept (the costliest index of a run: 322 -> 246 s at 1M clients). The chain keeps hashes distinct
by construction and `audit verify` still checks every one."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import DBAPIError

from engine.audit import log as auditlog
from engine.db import make_engine, migrate, upgrade


def _on_hash(db: Engine) -> list[str]:
    """Unique constraints and indexes of audit_event over `hash` alone."""
    insp = inspect(db)
    found = [str(u["name"]) for u in insp.get_unique_constraints("audit_event") if u["column_names"] == ["hash"]]
    return sorted(set(found + [str(i["name"]) for i in insp.get_indexes("audit_event") if i["column_names"] == ["hash"]]))


def _events(db: Engine, n: int) -> None:
    with db.begin() as c:
        auditlog.append(c, [auditlog.Event("rule.fired", "engine", {"i": i}, client_id=f"C{i:03d}") for i in range(n)])


def _append_only(db: Engine) -> None:
    for sql in ("UPDATE audit_event SET actor = 'x'", "DELETE FROM audit_event"):
        with pytest.raises(DBAPIError, match="append-only"):
            with db.begin() as c:
                c.exec_driver_sql(sql)


def test_no_index_on_the_event_hash_and_the_chain_still_verifies(db: Engine) -> None:
    assert _on_hash(db) == []
    _events(db, 5)
    with db.connect() as c:
        result = auditlog.verify(c)
    assert result.ok and result.events == 5


def test_the_sqlite_upgrade_rebuilds_the_table_keeps_its_rows_and_its_triggers(tmp_path: Path) -> None:
    """Before 0025 the unique constraint was part of the SQLite table: the upgrade rebuilds it."""
    db = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    for rev in ("0020_i12", "0021_i16r", "0024_lead"):  # what 0025 revises and depends on
        migrate(db, rev)
    assert _on_hash(db)  # the constraint as 0005 made it
    _events(db, 7)
    upgrade(db)
    assert _on_hash(db) == []
    with db.connect() as c:
        result = auditlog.verify(c)
    assert result.ok and result.events == 7  # every row copied, the chain intact
    assert {i["name"] for i in inspect(db).get_indexes("audit_event")} >= {"ix_audit_event_client_at", "ix_audit_event_rule"}
    _append_only(db)
    db.dispose()


@pytest.mark.postgres
def test_the_postgresql_upgrade_drops_the_constraint(pg_engine: Engine) -> None:
    migrate(pg_engine, "0024_lead", down=True)
    with pg_engine.begin() as c:  # the constraint as 0005 made it on PostgreSQL
        c.exec_driver_sql("DROP INDEX uq_audit_event_hash")
        c.exec_driver_sql("ALTER TABLE audit_event ADD CONSTRAINT audit_event_hash_key UNIQUE (hash)")
    assert _on_hash(pg_engine) == ["audit_event_hash_key"]
    _events(pg_engine, 3)
    upgrade(pg_engine)
    assert _on_hash(pg_engine) == []
    _append_only(pg_engine)


def test_downgrade_puts_a_unique_index_back_and_upgrade_removes_it(db: Engine) -> None:
    _events(db, 3)
    migrate(db, "0024_lead", down=True)
    assert _on_hash(db) == ["uq_audit_event_hash"]
    upgrade(db)
    assert _on_hash(db) == []
    with db.connect() as c:
        assert auditlog.verify(c).ok
