"""Migrated SQLite databases without migrating each time: one template per process (per
xdist worker), copied per test."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from sqlalchemy import Engine

from engine.db import make_engine, upgrade

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
_template: Path | None = None


def sqlite_template() -> Path:
    """The worker's migrated SQLite file, made on first use."""
    global _template
    if _template is None:
        path = Path(tempfile.mkdtemp(prefix=f"steward_tpl_{WORKER}_")) / "template.db"
        eng = make_engine(f"sqlite:///{path}")
        upgrade(eng)
        eng.dispose()  # the last connection closed: WAL checkpointed, one self-contained file
        _template = path
    return _template


def migrated_sqlite(path: Path) -> Engine:
    """A migrated SQLite database at `path`: a copy of the worker's template."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sqlite_template(), path)
    return make_engine(f"sqlite:///{path}")


def drop_sqlite_template() -> None:
    global _template
    if _template is not None:
        shutil.rmtree(_template.parent, ignore_errors=True)
        _template = None
