"""Issue 12, holes in `audit verify` (item 6), on SQLite and PostgreSQL.

verify cross-checks firings, outbox and blobs against their events; events carry an HMAC
under a key the database does not hold; a chain-head checkpoint outside the database is
compared by default.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, select, update

from engine.audit import checkpoint, crosscheck
from engine.audit import log as auditlog
from engine.config.base import Config
from engine.dispatch.outbox import OUTBOX
from engine.pipeline.recording import FIRING
from tests.audit_helpers import run_book, unprotected
from tests.test_cli import steward

KEY = b"test-audit-key"
AT = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def keyed(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv(auditlog.KEY_ENV, KEY.decode())
    return KEY


def test_an_emptied_log_with_firings_present_fails(db: Engine, cfg: Config, keyed: bytes) -> None:
    run_book(db, cfg)
    with db.connect() as c:
        assert auditlog.verify(c, key=keyed).ok and crosscheck.cross_check(c) == []
    with unprotected(db) as c:
        c.execute(delete(auditlog.EVENT))
    with db.connect() as c:
        assert auditlog.verify(c, key=keyed).events == 0  # the chain alone cannot see it
        problems = crosscheck.cross_check(c)
    assert problems and all("has no rule.fired event" in p for p in problems)


def test_a_deleted_blob_and_edited_firing_and_outbox_words_are_noticed(db: Engine, cfg: Config, keyed: bytes) -> None:
    run_book(db, cfg)
    with db.connect() as c:
        blob = c.execute(select(auditlog.BLOB.c.sha256).where(auditlog.BLOB.c.kind == "template")).scalars().first()
        fid, oid = c.execute(select(OUTBOX.c.firing_id, OUTBOX.c.id).where(OUTBOX.c.kind == "client")).first()  # type: ignore[misc]
    with unprotected(db) as c:
        c.execute(delete(auditlog.BLOB).where(auditlog.BLOB.c.sha256 == blob))
    with db.begin() as c:
        c.execute(update(FIRING).where(FIRING.c.id == fid).values(message="稳赚不赔"))
        c.execute(update(OUTBOX).where(OUTBOX.c.id == oid).values(body="稳赚不赔"))
        other = c.execute(select(FIRING.c.id).where(FIRING.c.id != fid)).scalars().first()
        c.execute(update(FIRING).where(FIRING.c.id == other).values(client_id="C999"))
    with db.connect() as c:
        problems = crosscheck.cross_check(c)
    text = "\n".join(problems)
    assert f"audit_blob {blob[:12]}… is named by events but missing" in text
    assert f"firing #{fid}: its message differs from the text its rule.fired event recorded" in text
    assert f"outbox message #{oid}: its words differ from what firing #{fid} rendered" in text
    assert f"firing #{other} differs from its rule.fired event" in text


def test_insert_rights_alone_cannot_forge_an_event(db: Engine, keyed: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    with db.begin() as c:
        auditlog.append(c, [auditlog.Event("role.granted", actor="root", data={"user": "ann", "role": "author"})])
    monkeypatch.delenv(auditlog.KEY_ENV)  # the forger has INSERT rights, not the key
    with db.begin() as c:  # a well-formed, correctly chained proposal.approved
        auditlog.append(c, [auditlog.Event("proposal.approved", actor="bo", data={"proposal": 99})])
    with db.connect() as c:
        assert auditlog.verify(c).ok  # without the key the chain looks fine
        res = auditlog.verify(c, key=keyed)
    assert not res.ok and res.broken is not None and res.broken.seq == 2 and "no HMAC" in res.broken.problem
    with db.begin() as c:  # nor with a guessed key
        monkeypatch.setenv(auditlog.KEY_ENV, "guess")
        auditlog.append(c, [auditlog.Event("proposal.approved", actor="bo", data={"proposal": 100})])
    with unprotected(db) as c:
        c.execute(delete(auditlog.EVENT).where(auditlog.EVENT.c.seq == 2))
    with db.connect() as c:
        assert "missing" in str(auditlog.verify(c, key=keyed).broken)


def test_the_checkpoint_outside_the_database_catches_a_rebuilt_chain(db: Engine, cfg: Config, keyed: bytes,
                                                                      tmp_path: Path) -> None:
    run_book(db, cfg)
    path = tmp_path / "var/audit-checkpoints.jsonl"
    with db.connect() as c:
        cp = checkpoint.write(c, path, keyed, AT)
    assert checkpoint.latest(path, keyed) == cp and cp.seq > 0
    with unprotected(db) as c:  # cut the last events off the end
        c.execute(delete(auditlog.EVENT).where(auditlog.EVENT.c.seq > cp.seq - 3))
    with db.connect() as c:
        assert auditlog.verify(c, key=keyed).ok  # what is left still chains
        res = auditlog.verify(c, [(cp.seq, cp.hash)], key=keyed)
    assert not res.ok and "published head" in str(res.broken)
    path.write_text(path.read_text(encoding="utf-8").replace(cp.hash, "0" * 64), encoding="utf-8")
    with pytest.raises(auditlog_errors(), match="HMAC does not match"):
        checkpoint.latest(path, keyed)


def auditlog_errors() -> type[Exception]:
    from engine.errors import SourceErrors

    return SourceErrors


def test_audit_verify_command_checks_key_checkpoint_and_tables(sqlite_engine: Engine, cfg: Config, tmp_path: Path,
                                                               keyed: bytes) -> None:
    run_book(sqlite_engine, cfg)
    conf = tmp_path / "config.yaml"
    conf.write_text(f"audit:\n  checkpoint_file: {tmp_path / 'cp.jsonl'}\n", encoding="utf-8")
    g = ["--config", str(conf), "--database", sqlite_engine.url.render_as_string(hide_password=False)]
    env = {auditlog.KEY_ENV: keyed.decode()}
    assert steward(*g, "audit", "checkpoint", env=env).returncode == 0
    ok = steward(*g, "audit", "verify", env=env)
    assert ok.returncode == 0 and "checkpoint #" in ok.stdout, ok.stdout + ok.stderr
    with sqlite_engine.begin() as c:
        c.execute(update(FIRING).where(FIRING.c.id == 1).values(message="稳赚不赔"))
    bad = steward(*g, "audit", "verify", env=env)
    assert bad.returncode == 1 and "firing #1: its message differs" in bad.stderr
