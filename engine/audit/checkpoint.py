"""Chain-head checkpoints written outside the database.

Once a day (the scheduler's nightly job, or `steward audit checkpoint`) the head of the chain
(seq, hash) is appended as one JSON line to a file outside the database (`audit.checkpoint_file`,
default var/audit-checkpoints.jsonl; copy it to append-only storage if you have one). `steward
audit verify` checks the latest checkpoint by default: rows cut off the end, or a chain rebuilt
from scratch by someone with write access to the database, no longer contain that head. With
the audit key set, each line carries an HMAC too, so the file cannot be rewritten to match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import Connection

from engine.audit.log import event_mac, head
from engine.errors import Problem, SourceErrors


@dataclass(frozen=True)
class Checkpoint:
    at: str
    seq: int
    hash: str
    mac: str | None


def write(conn: Connection, path: Path, key: bytes | None, now: datetime) -> Checkpoint:
    seq, h = head(conn)
    cp = Checkpoint(now.isoformat(), seq, h, event_mac(key, f"{seq}:{h}"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(cp.__dict__, sort_keys=True) + "\n")
    return cp


def latest(path: Path, key: bytes | None) -> Checkpoint | None:
    """The last checkpoint of the file (None when there is none yet); a damaged line is an error."""
    if not path.is_file():
        return None
    lines = [(i, line) for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if line.strip()]
    if not lines:
        return None
    i, line = lines[-1]
    try:
        cp = Checkpoint(**json.loads(line))
    except (ValueError, TypeError) as e:
        raise SourceErrors([Problem(str(path), i, "", f"not a checkpoint line: {e}")]) from e
    if key is not None and cp.mac != event_mac(key, f"{cp.seq}:{cp.hash}"):
        raise SourceErrors([Problem(str(path), i, "mac", "the checkpoint's HMAC does not match under the audit key "
                                                          "(the file was edited, or another key wrote it)")])
    return cp
