"""Shared fixtures: migrated databases on SQLite and on PostgreSQL.

PostgreSQL tests use STEWARD_TEST_PG_URL (a URL to an existing database the user
may create databases from). Without it they skip with a visible reason; under
CI (CI=true) an unset or unreachable server fails the run instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engine.composition import install
from engine.config.base import Config, parse_config
from engine.db import make_engine, upgrade

install()  # the composition root, as the steward command and the scheduler call it

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("STEWARD_TEST_PG_URL", "")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _admin_conn():  # type: ignore[no-untyped-def]
    import psycopg

    url = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


class _PgTemplate:
    """One migrated template database per test session; each test clones it (fast)."""

    name: str | None = None

    @classmethod
    def get(cls) -> str:
        if cls.name is None:
            name = f"steward_tpl_{uuid.uuid4().hex[:8]}"
            with _admin_conn() as c:
                c.execute(f'CREATE DATABASE "{name}"')
            eng = make_engine(_pg_url(name))
            upgrade(eng)
            eng.dispose()
            cls.name = name
        return cls.name


def _pg_url(dbname: str) -> str:
    base = PG_URL.rsplit("/", 1)[0]
    return f"{base}/{dbname}"


def pytest_sessionfinish(session, exitstatus):  # type: ignore[no-untyped-def]
    if _PgTemplate.name:
        with _admin_conn() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{_PgTemplate.name}" WITH (FORCE)')


def _require_pg() -> None:
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI=true but STEWARD_TEST_PG_URL is not set: PostgreSQL tests must run in CI")
        pytest.skip("PostgreSQL tests skipped: set STEWARD_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test")
    try:
        _admin_conn().close()
    except Exception as e:  # noqa: BLE001
        if IN_CI:
            pytest.fail(f"CI=true but PostgreSQL at STEWARD_TEST_PG_URL is unreachable: {e}")
        pytest.skip(f"PostgreSQL unreachable ({e}); PostgreSQL tests skipped")


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    """A fresh, migrated PostgreSQL database for one test."""
    _require_pg()
    tpl = _PgTemplate.get()
    name = f"steward_t_{uuid.uuid4().hex[:10]}"
    with _admin_conn() as c:
        c.execute(f'CREATE DATABASE "{name}" TEMPLATE "{tpl}"')
    eng = make_engine(_pg_url(name))
    yield eng
    eng.dispose()
    with _admin_conn() as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'steward.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> Engine:
    """The same test on SQLite and on PostgreSQL."""
    return request.getfixturevalue("sqlite_engine" if request.param == "sqlite" else "pg_engine")


def shipped_config() -> Config:
    from engine.yamlio import load_file

    return parse_config(load_file(ROOT / "config.yaml"), "config.yaml", ROOT)


@pytest.fixture
def full_cfg() -> Config:
    """The shipped config as is: core rules plus the whole playbook pack."""
    return shipped_config()


@pytest.fixture
def cfg() -> Config:
    """The shipped config limited to the three core rules in rules/, so tests can count firings exactly."""
    return shipped_config().model_copy(update={"rules_dirs": ("rules",)})


@pytest.fixture(autouse=True)
def audit_key(monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test's audit events are authenticated with a generated key, as production's are (docs/audit.md)."""
    key = f"test-{uuid.uuid4().hex}"
    monkeypatch.setenv("STEWARD_AUDIT_KEY", key)
    return key
