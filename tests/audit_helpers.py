"""Helpers for the audit, explain, supervision, report and retention tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, select, text
from sqlalchemy.engine import Connection

from engine.audit.log import EVENT
from engine.config.base import Config
from engine.language.loading import RuleSet, load_ruleset
from engine.pipeline.run import RunSummary, run
from tests import book


def run_book(eng: Engine, cfg: Config) -> tuple[RuleSet, RunSummary]:
    """The tiny book, evaluated once on book.AS_OF."""
    book.build(eng)
    rs = load_ruleset(cfg)
    return rs, run(eng, cfg, rs, book.AS_OF)


def events(conn: Connection, name: str | None = None) -> list[Any]:
    q = select(EVENT).order_by(EVENT.c.seq)
    if name:
        q = q.where(EVENT.c.name == name)
    return list(conn.execute(q))


@contextmanager
def unprotected(eng: Engine) -> Iterator[Connection]:
    """Deliberately bypass the append-only triggers, as an attacker with DDL rights would."""
    with eng.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
            conn.execute(text("ALTER TABLE audit_blob DISABLE TRIGGER USER"))
        else:
            for t in ("audit_event", "audit_blob"):
                conn.execute(text(f"DROP TRIGGER {t}_no_update"))
                conn.execute(text(f"DROP TRIGGER {t}_no_delete"))
        yield conn
