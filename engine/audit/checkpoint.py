"""Chain-head checkpoints written outside the database: a file, and optionally an HTTP notary.

Once a day (the scheduler's nightly job, or `steward audit checkpoint`) the head of the chain
(seq, hash) is appended as one JSON line to a file outside the database (`audit.checkpoint_file`,
default var/audit-checkpoints.jsonl) and, when `audit.checkpoint_url` is set, posted to an
external append-only store (engine.audit.notary) that refuses to overwrite. `steward audit
verify` checks the latest checkpoint of each by default: rows cut off the end, or a chain rebuilt
from scratch by someone with write access to the database, no longer contain that head. With an
audit key, each checkpoint carries an HMAC and the id of its key, so neither copy can be rewritten
to match.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from engine.audit import keys, notary
from engine.audit.log import event_mac, head
from engine.config.base import Config
from engine.errors import Problem, SourceErrors, StewardError


@dataclass(frozen=True)
class Checkpoint:
    at: str
    seq: int
    hash: str
    mac: str | None
    key_id: str | None = None
    """Id of the audit key that wrote `mac` (engine.audit.keys); none on lines written before key ids."""


def write(conn: Connection, path: Path, key: bytes | None, now: datetime, key_id: str | None = None) -> Checkpoint:
    seq, h = head(conn)
    cp = Checkpoint(now.isoformat(), seq, h, event_mac(key, f"{seq}:{h}"), key_id if key else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(cp), sort_keys=True) + "\n")
    return cp


def publish(conn: Connection, cfg: Config, now: datetime) -> Checkpoint:
    """Append the head to the checkpoint file, then post it to the notary when one is configured.

    The file line is written first: a notary that is down fails the job loudly (StewardError) and
    the next run posts the newer head.
    """
    ring = keys.keyring()
    cp = write(conn, cfg.path(cfg.audit.checkpoint_file), ring.current_key, now, ring.current)
    if cfg.audit.checkpoint_url:
        notary.post(cfg.audit.checkpoint_url, asdict(cp), _token(cfg), cfg.audit.checkpoint_timeout_seconds)
    return cp


def _token(cfg: Config) -> str | None:
    name = cfg.audit.checkpoint_token_env
    if name and not os.environ.get(name):
        raise StewardError(f"audit.checkpoint_token_env names {name}, but it is not set in this process's environment")
    return os.environ.get(name) if name else None


def _checked(cp: Checkpoint, key: bytes | None, ring: keys.KeyRing | None, where: str, line: int | None) -> Checkpoint:
    if ring is not None and ring.keys:
        key = ring.key_for(cp.key_id)
        if key is None and cp.mac is not None:
            raise SourceErrors([Problem(where, line, "key_id", f"the checkpoint was signed with audit key "
                                        f"{cp.key_id or keys.DEFAULT_ID!r}, which is not in the key ring "
                                        "(add it to STEWARD_AUDIT_KEYS_FILE)")])
    if key is not None and cp.mac != event_mac(key, f"{cp.seq}:{cp.hash}"):
        raise SourceErrors([Problem(where, line, "mac", "the checkpoint's HMAC does not match under the audit key "
                                                        "(the file was edited, or another key wrote it)")])
    return cp


def _parse(obj: Any, where: str, line: int | None) -> Checkpoint:
    try:
        return Checkpoint(**obj)
    except TypeError as e:
        raise SourceErrors([Problem(where, line, "", f"not a checkpoint: {e}")]) from e


def latest(path: Path, key: bytes | None, ring: keys.KeyRing | None = None) -> Checkpoint | None:
    """The last checkpoint of the file (None when there is none yet); a damaged line is an error."""
    if not path.is_file():
        return None
    lines = [(i, line) for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
    if not lines:
        return None
    i, line = lines[-1]
    try:
        obj = json.loads(line)
    except ValueError as e:
        raise SourceErrors([Problem(str(path), i, "", f"not a checkpoint line: {e}")]) from e
    return _checked(_parse(obj, str(path), i), key, ring, str(path), i)


def latest_external(cfg: Config, ring: keys.KeyRing | None) -> Checkpoint | None:
    """The notary's latest checkpoint (None when no notary is configured or it holds none yet)."""
    if not cfg.audit.checkpoint_url:
        return None
    obj = notary.latest(cfg.audit.checkpoint_url, _token(cfg), cfg.audit.checkpoint_timeout_seconds)
    if obj is None:
        return None
    return _checked(_parse(obj, cfg.audit.checkpoint_url, None), None, ring, cfg.audit.checkpoint_url, None)
