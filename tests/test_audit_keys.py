"""Audit key rotation and the external append-only checkpoint store (issue 12, item 6 completed).

Rotation: events record the id of the key that signed them; verify checks old events with old
keys and names a key missing from the ring; `steward audit rotate-key` writes `audit.key_rotated`.
Notary: a real HTTP server on loopback that refuses overwrites; checkpoints go to it, and verify
compares the file and the chain with it.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from engine.audit import checkpoint, keys, notary
from engine.audit import log as auditlog
from engine.config.base import Config
from engine.errors import SourceErrors
from tests.identity_helpers import cli_token
from tests.notary_helpers import TOKEN, running_notary
from tests.test_cli import steward

AT = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)


def _events(eng: Engine, n: int, actor: str) -> None:
    with eng.begin() as c:
        auditlog.append(c, [auditlog.Event("client.viewed", actor=actor, client_id=f"C{i}", at=AT) for i in range(n)])


def _rows(eng: Engine) -> list[tuple[int, str | None, str | None]]:
    with eng.connect() as c:
        return [(r.seq, r.key_id, r.mac) for r in c.execute(select(auditlog.EVENT).order_by(auditlog.EVENT.c.seq))]


def test_rotated_keys_verify_old_events_with_old_keys(db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      audit_key: str) -> None:
    _events(db, 2, "before")
    ring_file = tmp_path / "audit.keys"
    monkeypatch.setenv(keys.KEYS_FILE_ENV, str(ring_file))
    assert keys.rotate(ring_file) == ("default", "k2")  # the single key in use stays, as `default`
    assert ring_file.stat().st_mode & 0o777 == 0o600
    _events(db, 2, "after")
    assert [k for _, k, _ in _rows(db)] == ["default", "default", "k2", "k2"]
    ring = keys.keyring()
    assert ring.current == "k2" and ring.keys["default"] == audit_key.encode()
    with db.connect() as c:
        assert auditlog.verify(c, ring=ring).ok
        # the old key alone cannot vouch for the new events, and a ring without the old key names it
        assert "does not match" in str(auditlog.verify(c, key=audit_key.encode()).broken)
        partial = keys.KeyRing("k2", {"k2": ring.keys["k2"]})
        broken = auditlog.verify(c, ring=partial).broken
    assert broken is not None and broken.seq == 1 and "audit key 'default', which is not in the key ring" in broken.problem


def test_a_forgery_under_a_guessed_key_id_is_caught(db: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ring_file = tmp_path / "audit.keys"
    ring_file.write_text("k1 " + "a" * 64 + "\n", encoding="utf-8")
    monkeypatch.setenv(keys.KEYS_FILE_ENV, str(ring_file))
    _events(db, 1, "real")
    forged = tmp_path / "forger.keys"
    forged.write_text("k1 " + "b" * 64 + "\n", encoding="utf-8")  # same id, the forger's own secret
    monkeypatch.setenv(keys.KEYS_FILE_ENV, str(forged))
    _events(db, 1, "forger")
    monkeypatch.setenv(keys.KEYS_FILE_ENV, str(ring_file))
    with db.connect() as c:
        broken = auditlog.verify(c, ring=keys.keyring()).broken
    assert broken is not None and broken.seq == 2 and "HMAC does not match" in broken.problem


def test_a_bad_key_ring_is_a_located_error(tmp_path: Path) -> None:
    with pytest.raises(SourceErrors) as e:
        keys.parse("# ring\nk1 " + "a" * 40 + "\nk1 " + "b" * 40 + "\nk 2 short\nnospace\n", "audit.keys")
    text = str(e.value)
    assert "audit.keys:3: k1: this key id is already used" in text
    assert "audit.keys:4: k: the secret is shorter than 16 characters" in text
    assert "audit.keys:5: expected `<key id> <secret>`" in text and "b" * 40 not in text


def test_rotate_key_command_writes_an_event_signed_with_the_new_key(
        sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _events(sqlite_engine, 1, "before")
    url = sqlite_engine.url.render_as_string(hide_password=False)
    conf = tmp_path / "config.yaml"
    conf.write_text(f"audit:\n  checkpoint_file: {tmp_path / 'cp.jsonl'}\n", encoding="utf-8")
    g = ["--config", str(conf), "--database", url]
    token = cli_token(sqlite_engine, "olga", ["operator"])
    ring_file = tmp_path / "audit.keys"
    res = steward(*g, "audit", "rotate-key", env={"STEWARD_TOKEN": token})
    assert res.returncode != 0 and "set STEWARD_AUDIT_KEYS_FILE" in res.stderr
    env = {"STEWARD_TOKEN": token, keys.KEYS_FILE_ENV: str(ring_file)}
    res = steward(*g, "audit", "rotate-key", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "audit key k2 is now current (was default)" in " ".join(res.stdout.split())
    with sqlite_engine.connect() as c:
        row = c.execute(select(auditlog.EVENT).where(auditlog.EVENT.c.name == "audit.key_rotated")).one()
    body = auditlog.body_of(row)
    assert row.key_id == "k2" and body["actor"] == "olga"
    assert body["data"]["old_key_id"] == "default" and body["data"]["new_key_id"] == "k2"
    assert ring_file.read_text(encoding="utf-8").split()[-1] not in row.body  # no secret in the log
    ok = steward(*g, "audit", "verify", "--no-checkpoint", env=env)
    assert ok.returncode == 0 and "audit chain OK:" in ok.stdout, ok.stdout + ok.stderr
    monkeypatch.setenv(keys.KEYS_FILE_ENV, str(ring_file))
    with sqlite_engine.connect() as c:
        assert auditlog.verify(c, ring=keys.keyring()).ok


# ------------------------------------------------------------------ the external append-only store


def _notary_cfg(cfg: Config, tmp_path: Path, url: str) -> Config:
    return cfg.model_copy(update={"base_dir": tmp_path, "audit": cfg.audit.model_copy(update={
        "checkpoint_file": str(tmp_path / "cp.jsonl"), "checkpoint_url": url, "checkpoint_token_env": "NOTARY_TOKEN"})})


def test_checkpoints_go_to_the_notary_which_refuses_overwrites(db: Engine, cfg: Config, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTARY_TOKEN", TOKEN)
    with running_notary(tmp_path / "notary.jsonl") as n:
        c = _notary_cfg(cfg, tmp_path, n.url)
        _events(db, 3, "x")
        with db.connect() as conn:
            cp = checkpoint.publish(conn, c, AT)
            checkpoint.publish(conn, c, AT)  # a day without events: the same head again is accepted
        assert [(e["seq"], e["hash"], e["key_id"]) for e in n.entries] == [(3, cp.hash, "default")]
        assert checkpoint.latest_external(c, keys.keyring()) == cp
        with pytest.raises(notary.NotaryError, match="already holds a different checkpoint #3 and refuses to overwrite"):
            notary.post(n.url, {**cp.__dict__, "hash": "f" * 64}, TOKEN, 5)
        assert len(n.entries) == 1
        monkeypatch.setenv("NOTARY_TOKEN", "wrong")
        with pytest.raises(notary.NotaryError, match="answered 401"), db.connect() as conn:
            checkpoint.publish(conn, c, AT)
    with pytest.raises(notary.NotaryError, match="cannot be reached"), db.connect() as conn:
        checkpoint.publish(conn, c, AT)  # notary down: the job fails loudly ...
    assert len((tmp_path / "cp.jsonl").read_text(encoding="utf-8").splitlines()) == 4  # ... after the file line


def test_verify_compares_file_and_chain_with_the_notary(sqlite_engine: Engine, tmp_path: Path) -> None:
    with running_notary(tmp_path / "notary.jsonl") as n:
        conf = tmp_path / "config.yaml"
        conf.write_text(f"audit:\n  checkpoint_file: {tmp_path / 'cp.jsonl'}\n  checkpoint_url: {n.url}\n"
                        "  checkpoint_token_env: NOTARY_TOKEN\n", encoding="utf-8")
        g = ["--config", str(conf), "--database", sqlite_engine.url.render_as_string(hide_password=False)]
        env = {"NOTARY_TOKEN": TOKEN}
        _events(sqlite_engine, 2, "x")
        assert steward(*g, "audit", "checkpoint", env=env).returncode == 0
        _events(sqlite_engine, 2, "y")
        res = steward(*g, "audit", "checkpoint", env=env)
        assert res.returncode == 0 and f"posted to {n.url}" in " ".join(res.stdout.split()), res.stdout + res.stderr
        ok = steward(*g, "audit", "verify", env=env)
        assert ok.returncode == 0 and "notary checkpoint #4" in " ".join(ok.stdout.split()), ok.stdout + ok.stderr
        # someone cuts the last checkpoint off the file: the notary still has it
        f = tmp_path / "cp.jsonl"
        f.write_text(f.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
        cut = steward(*g, "audit", "verify", env=env)
        err = " ".join(cut.stderr.split())
        assert cut.returncode != 0 and "holds checkpoint #4" in err and "cut short" in err, err
        # an entry edited in the notary's store does not carry the key's HMAC
        n.store.write_text(json.dumps({**n.entries[-1], "seq": 9}) + "\n", encoding="utf-8")
        gone = steward(*g, "audit", "verify", env=env)
        err = " ".join(gone.stderr.split())
        assert gone.returncode != 0 and f"{n.url}: mac: the checkpoint's HMAC does not match" in err, err
