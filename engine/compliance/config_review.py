"""Governed config.yaml keys in review: located key-level diffs, and the run-time refusal.

The governed keys (engine.config.governed) travel in every proposal as one snapshot file,
`config.governed.txt`, so they are hashed, approved and refused exactly like a rule file. This
module turns that file into what people read: key-level changes, old -> new, located by the
line of config.yaml they came from (`steward review show`, `steward review submit`), and the
located error plus `config.refused` audit event when a run finds governed values in force that
no one approved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from engine.audit import log as auditlog
from engine.config import governed
from engine.config.base import Config
from engine.errors import Problem, SourceErrors, rel

auditlog.register_event_name("config.refused", "the governed config.yaml keys in force differ from the approved ones: nothing ran")


class ConfigNotApproved(SourceErrors):
    """Governed config.yaml values in force are not the approved ones: nothing may run."""


@dataclass(frozen=True)
class Located:
    change: governed.KeyChange
    path: str
    line: int | None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.change.describe()}" if self.line else f"{self.path}: {self.change.describe()}"


def source_name(cfg: Config) -> str:
    return rel(cfg.source) if cfg.source is not None else "config.yaml"


def source(cfg: Config) -> dict[str, Any]:
    """Where the governed values of a submission came from: the file and the line of each key."""
    vals = governed.values(cfg)
    return {"file": source_name(cfg), "lines": governed.source_lines(cfg.source, vals)}


def values_of(manifest: Mapping[str, str], blobs: Mapping[str, bytes]) -> dict[str, Any] | None:
    """The governed values of a stored snapshot (None: approved before config was governed)."""
    h = manifest.get(governed.SNAPSHOT_PATH)
    return governed.parse(blobs[h]) if h is not None and h in blobs else None


def located_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any], where: Mapping[str, Any] | None,
                    snapshot: bytes | None = None) -> list[Located]:
    """Key-level changes, each located in the config file of the submission (else the snapshot file)."""
    lines = dict((where or {}).get("lines") or {})
    path = str((where or {}).get("file") or "config.yaml")
    snap = governed.snapshot_lines(snapshot) if snapshot else {}
    out = []
    for ch in governed.diff(old or {}, new):
        if ch.key in lines:
            out.append(Located(ch, path, int(lines[ch.key])))
        elif ch.key in snap:
            out.append(Located(ch, governed.SNAPSHOT_PATH, snap[ch.key]))
        else:  # a value that came from the model's default: no line says it
            out.append(Located(ch, f"{path} (default)", None))
    return out


def require_approved(engine: Engine, cfg: Config, version: int, root: Path, manifest: Mapping[str, str]) -> None:
    """Refuse (ConfigNotApproved, `config.refused` event) when the governed values in force are not approved.

    `root` is the verified unpacked snapshot; its config.governed.txt holds the approved values.
    """
    in_force = governed.values(cfg)
    p = root / governed.SNAPSHOT_PATH
    approved = governed.parse(p.read_bytes()) if governed.SNAPSHOT_PATH in manifest and p.is_file() else None
    if approved == in_force:
        return
    name = source_name(cfg)
    changes = governed.diff(approved or {}, in_force)
    lines = governed.source_lines(cfg.source, [c.key for c in changes])
    with engine.begin() as conn:
        auditlog.append(conn, [auditlog.Event("config.refused", actor="engine", status="refused", data={
            "version": version, "file": name,
            "changes": [{"key": c.key, "approved": c.old, "in_force": c.new, "line": lines.get(c.key)} for c in changes]
            if approved is not None else [], "never_approved": approved is None})])
    if approved is None:
        raise ConfigNotApproved([Problem(name, None, "", (
            f"approved version {version} holds no governed config.yaml keys (it was approved before config.yaml "
            "was governed), so nothing runs (audit event config.refused): an author submits the current files "
            "and config with `steward review submit --note ...` and a compliance reviewer approves them "
            "(docs/config.md, \"Governed keys\")"))])
    head = Problem(name, None, "", (
        f"{len(changes)} governed key(s) differ from approved version {version}, so nothing runs (audit event "
        "config.refused). Either restore the approved value(s), or have the change reviewed: an author runs "
        "`steward review submit --note ...` and a compliance reviewer approves it (docs/config.md, \"Governed keys\")"))
    raise ConfigNotApproved([head, *(Problem(name, lines.get(c.key), c.key,
                                             f"{_v(c.new, c.removed)} is in force, approved is {_v(c.old, c.added)}")
                                     for c in changes)])


def _v(value: Any, unset: bool) -> str:
    return "(not set)" if unset else governed.as_text(value)
