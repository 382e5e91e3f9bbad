"""Shared fixtures: one clock, and migrated databases on SQLite and on PostgreSQL.

Time: every test runs on a `FixedClock` installed as `engine.clock` (fixture `clock`, at
TEST_NOW), so no test depends on the day it runs. `STEWARD_FAKE_TODAY=YYYY-MM-DD` also
moves the machine's clock of the whole session (and of the subprocesses tests start) to
that day, which proves it (see tests/faketoday.py).

Databases: each xdist worker (or the one process without xdist) migrates one SQLite file
and one PostgreSQL database once, as templates; each test gets a copy of one.

PostgreSQL tests use STEWARD_TEST_PG_URL (a URL to an existing database the user
may create databases from). Without it they skip with a visible reason; under
CI (CI=true) an unset or unreachable server fails the run instead.
"""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engine.composition import install
from engine.config.base import Config, parse_config
from engine import clock as clock_mod
from engine.db import make_engine, upgrade
from tests import faketoday
from tests.databases import WORKER, drop_sqlite_template, migrated_sqlite

install()  # the composition root, as the steward command and the scheduler call it

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("STEWARD_TEST_PG_URL", "")
IN_CI = os.environ.get("CI", "").lower() == "true"

TEST_NOW = datetime(2026, 11, 20, 1, 0, tzinfo=timezone.utc)
"""The tests' now: 09:00 in Shanghai on tests.book.AS_OF (a Friday, a trading day)."""


def pytest_configure(config: pytest.Config) -> None:
    line = faketoday.start()
    if line and WORKER == "main":
        print(f"\n{line}\n", flush=True)


DATE_MODULES = {
    # processes that run on the machine's clock: the `steward` command, the scheduler service
    "test_cli", "test_review_cli", "test_calllist", "test_risk", "test_events_approval", "test_events_intake",
    "test_scheduler", "test_scheduler_leader", "test_auditlog", "test_explain", "test_report",
    # stamps, windows, caps, holds and overdue checks computed from "now"
    "test_clock", "test_outbox", "test_outbox_feedback", "test_contact_policy", "test_supervision", "test_retention",
    "test_webhook", "test_calendar", "test_demo",
}
"""Test modules marked `dates`: CI runs them again on far-apart fake days (STEWARD_FAKE_TODAY, `-m dates`)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.stem in DATE_MODULES:
            item.add_marker(pytest.mark.dates)


def pytest_report_header(config: pytest.Config) -> str | None:
    return None if faketoday.shift_days() is None else f"fake today: {datetime.now(timezone.utc).date()} (STEWARD_FAKE_TODAY)"


def pytest_unconfigure(config: pytest.Config) -> None:
    faketoday.stop()


@pytest.fixture(autouse=True)
def clock() -> Iterator[clock_mod.FixedClock]:
    """The one clock of every test: stands at TEST_NOW until the test sets or advances it."""
    c = clock_mod.FixedClock(TEST_NOW)
    with clock_mod.using(c):
        yield c


# ------------------------------------------------------------------ databases


def _admin_conn():  # type: ignore[no-untyped-def]
    import psycopg

    url = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def _pg_url(dbname: str) -> str:
    base = PG_URL.rsplit("/", 1)[0]
    return f"{base}/{dbname}"


def _unique(kind: str) -> str:
    """A database name unique to this worker (several sessions may share the server)."""
    return f"steward_{kind}_{WORKER}_{uuid.uuid4().hex[:10]}"


class _PgTemplate:
    """One migrated template database per worker; each test clones it (CREATE DATABASE ... TEMPLATE)."""

    name: str | None = None

    @classmethod
    def get(cls) -> str:
        if cls.name is None:
            name = _unique("tpl")
            with _admin_conn() as c:
                c.execute(f'CREATE DATABASE "{name}"')
            try:
                eng = make_engine(_pg_url(name))
                upgrade(eng)
                eng.dispose()  # no connection may stay open on a template
            except BaseException:
                with _admin_conn() as c:
                    c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                raise
            cls.name = name
        return cls.name


def pytest_sessionfinish(session, exitstatus):  # type: ignore[no-untyped-def]
    drop_sqlite_template()
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


@contextmanager
def pg_databases(n: int) -> Iterator[list[Engine]]:
    """`n` fresh PostgreSQL databases cloned from the migrated template, dropped afterwards."""
    _require_pg()
    tpl = _PgTemplate.get()
    names = [f"steward_t_{uuid.uuid4().hex[:10]}" for _ in range(n)]
    with _admin_conn() as c:
        for name in names:
            c.execute(f'CREATE DATABASE "{name}" TEMPLATE "{tpl}"')
    engs = [make_engine(_pg_url(name)) for name in names]
    try:
        yield engs
    finally:
        for e in engs:
            e.dispose()
        with _admin_conn() as c:
            for name in names:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_engine() -> Iterator[Engine]:
    """A fresh, migrated PostgreSQL database for one test."""
    _require_pg()
    tpl = _PgTemplate.get()
    name = _unique("t")
    with _admin_conn() as c:
        c.execute(f'CREATE DATABASE "{name}" TEMPLATE "{tpl}"')
    eng = make_engine(_pg_url(name))
    yield eng
    eng.dispose()
    with _admin_conn() as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh, migrated SQLite database for one test."""
    eng = migrated_sqlite(tmp_path / "steward.db")
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


@pytest.fixture(autouse=True)
def _fast_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap argon2id parameters in tests (the hashes are still real argon2id; see tests/test_identity.py)."""
    from engine.compliance import auth
    from tests.identity_helpers import fast_hasher

    monkeypatch.setattr(auth, "_HASHER", fast_hasher())
