"""A scratch database for one benchmark run: a temporary SQLite file, or a fresh PostgreSQL
database created next to the one a URL names (dropped afterwards)."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine

from engine.db import make_engine, upgrade


@contextmanager
def scratch_engine(url: str | None, migrate: bool = True) -> Iterator[Engine]:
    """`url` None: SQLite in a temp folder; a postgresql URL: a new database beside it."""
    if not url or url.startswith("sqlite"):
        with tempfile.TemporaryDirectory() as d:
            eng = make_engine(url or f"sqlite:///{Path(d) / 'bench.db'}")
            if migrate:
                upgrade(eng)
            try:
                yield eng
            finally:
                eng.dispose()
        return
    import psycopg

    admin_url = url.replace("postgresql+psycopg://", "postgresql://")
    name = f"steward_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    eng = make_engine(f"{url.rsplit('/', 1)[0]}/{name}")
    try:
        if migrate:
            upgrade(eng)
        yield eng
    finally:
        eng.dispose()
        with psycopg.connect(admin_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
