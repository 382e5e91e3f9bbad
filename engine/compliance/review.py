"""Maker-checker review: proposals, approved versions, and the approved snapshot that runs.

A proposal is a snapshot of every rule file, event rule file, template file and lint list, stored in the
database by content hash at submission, so the reviewer approves exactly the bytes the
author submitted. Approval records the hash of every file, who approved, when and why.

Only approved content runs: `approved_ruleset` unpacks the last approved version from the
database (into `compliance.approved_dir/<content hash>/`) and loads it from there, whatever the
working files say; files that differ from it are reported as unapproved and never run.
`approved_event_rules` does the same for the event engine's rules (`events.rules_dir`).

Integrity at every load: each stored blob must hash to its manifest entry, the unpacked folder
must hold exactly the manifest's files with exactly those bytes (an extra file, a changed byte
or a missing file is refused, never repaired silently), and the loaded rules must carry the
approved hashes. A mismatch writes a `snapshot.refused` audit event and raises
`SnapshotMismatch`: nothing runs until someone investigates.

Proposed content is never loaded in a reviewer's process (it may hold Python): `show` and
`approve` check it in a child process (engine.compliance.proposal_check). Approval needs no
lint error and every rule test of the proposal (rules/tests, rules/events/tests, which are part
of the snapshot) to pass.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import JSON, Column, Engine, LargeBinary, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from engine.compliance import config_review, proposal_check, users
from engine.audit import log as auditlog
from engine.config import governed
from engine.config.base import Config
from engine import clock
from engine.errors import Problem, SourceErrors, StewardError, rel
from engine.language.event_rules import EventRuleSet, load_event_rules
from engine.language.loading import RuleSet, SnapshotMismatch, check_ruleset, load_ruleset, verify_tree
from engine.language.rules import rule_files

auditlog.register_event_name("proposal.submitted", "an author submitted rules, templates or lint lists for review (content hash)")
auditlog.register_event_name("snapshot.refused", "the approved snapshot failed its integrity check at load: nothing ran")

Manifest = dict[str, str]
"""Snapshot path (rules/x.yaml, rules/events/y.yaml, templates/t/zh-CN.j2, compliance/prohibited.yaml) -> sha256."""


class ContentBlob(SQLModel, table=True):
    """The bytes of every submitted file, once per content hash."""

    __tablename__ = "content_blob"
    hash: str = Field(primary_key=True, max_length=64)
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    size: int


class Proposal(SQLModel, table=True):
    __tablename__ = "proposal"

    id: int | None = Field(default=None, primary_key=True)
    author: str = Field(max_length=64)
    note: str
    created_at: datetime
    status: str = Field(default="submitted", max_length=16)
    """submitted, approved or rejected."""
    base_version: int | None = None
    """The approved version the proposal was made against (its diff base)."""
    content_hash: str = Field(max_length=64)
    manifest: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    lint_errors: int = 0
    lint_warnings: int = 0
    config_source: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """Where the governed config.yaml keys came from: {"file": ..., "lines": {key: line}} (not hashed)."""
    decided_by: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = None
    comment: str | None = None


class ApprovedVersion(SQLModel, table=True):
    __tablename__ = "approved_version"

    id: int | None = Field(default=None, primary_key=True)
    proposal_id: int = Field(index=True)
    content_hash: str = Field(max_length=64)
    manifest: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    author: str = Field(max_length=64)
    approved_by: str = Field(max_length=64)
    approved_at: datetime
    comment: str


BLOB = ContentBlob.__table__  # type: ignore[attr-defined]
PROPOSAL = Proposal.__table__  # type: ignore[attr-defined]
VERSION = ApprovedVersion.__table__  # type: ignore[attr-defined]


class NothingApproved(StewardError):
    """No approved version exists yet: nothing may run."""


@dataclass(frozen=True)
class Change:
    path: str
    state: str
    """added, modified or deleted (relative to the base)."""
    old: str | None
    new: str | None


UnapprovedFile = Change


@dataclass(frozen=True)
class Approved:
    version: int
    content_hash: str
    manifest: Manifest
    approved_by: str
    approved_at: datetime
    comment: str


# ------------------------------------------------------------------ snapshots


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _label(configured: str, fallback: str) -> str:
    """Where a configured folder sits in a snapshot: its own relative path when it has one."""
    p = PurePosixPath(configured.replace("\\", "/"))
    parts = [x for x in p.parts if x not in (".", "")]
    return "/".join(parts) if parts and not p.is_absolute() and ".." not in parts else fallback


def _areas(cfg: Config) -> list[tuple[str, str, Path, list[Path]]]:
    """(kind, label, folder, files) of everything under approval: rules, event rules, templates, lint lists.

    Rule tests (<rules>/tests, <events>/tests) are part of the snapshot: approval needs them to pass.
    """
    out = []
    for i, (conf, d) in enumerate(zip(cfg.rules_dirs, cfg.rules_paths)):
        label = _label(conf, f"rules{i + 1}")
        out.append(("rules", label, d, rule_files([d])))
        out.append(("tests", f"{label}/tests", d / "tests", _yaml(d / "tests")))
    e = cfg.path(cfg.events.rules_dir)
    label = _label(cfg.events.rules_dir, "events")
    out.append(("events", label, e, _yaml(e)))
    out.append(("tests", f"{label}/tests", e / "tests", _yaml(e / "tests")))
    t = cfg.templates_path
    out.append(("templates", _label(cfg.templates_dir, "templates"), t, sorted(p for p in t.glob("*/*.j2") if p.is_file())))
    c = cfg.path(cfg.compliance.lists_dir)
    out.append(("compliance", _label(cfg.compliance.lists_dir, "compliance"), c, sorted(p for p in c.glob("*.yaml") if p.is_file())))
    return out


def _yaml(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.yaml") if p.is_file())


def working_files(cfg: Config) -> dict[str, bytes]:
    """The current files under approval, keyed by snapshot path, and the governed config.yaml keys in force."""
    files = {f"{label}/{p.relative_to(folder).as_posix()}": p.read_bytes()
             for _, label, folder, files in _areas(cfg) for p in files}
    files[governed.SNAPSHOT_PATH] = governed.render(governed.values(cfg))
    return files


def manifest_of(files: Mapping[str, bytes]) -> Manifest:
    return {k: sha256(v) for k, v in sorted(files.items())}


def content_hash(manifest: Mapping[str, str]) -> str:
    return sha256("".join(f"{k}\0{v}\n" for k, v in sorted(manifest.items())).encode())


def diff_manifests(old: Mapping[str, str], new: Mapping[str, str]) -> list[Change]:
    out = []
    for path in sorted(set(old) | set(new)):
        a, b = old.get(path), new.get(path)
        if a != b:
            out.append(Change(path, "added" if a is None else "deleted" if b is None else "modified", a, b))
    return out


def put_blobs(conn: Connection, files: Mapping[str, bytes]) -> None:
    by_hash = {sha256(v): v for v in files.values()}
    have = {r[0] for r in conn.execute(select(BLOB.c.hash).where(BLOB.c.hash.in_(list(by_hash))))}
    rows = [{"hash": h, "content": v, "size": len(v)} for h, v in by_hash.items() if h not in have]
    if rows:
        conn.execute(BLOB.insert(), rows)


def get_blobs(conn: Connection, hashes: set[str]) -> dict[str, bytes]:
    return {r.hash: bytes(r.content) for r in conn.execute(select(BLOB.c.hash, BLOB.c.content).where(BLOB.c.hash.in_(list(hashes))))}


def _labels(cfg: Config, kind: str | None = None) -> list[str]:
    return [label for k, label, _, _ in _areas(cfg) if kind is None or k == kind]


def write_snapshot(root: Path, cfg: Config, manifest: Mapping[str, str], blobs: Mapping[str, bytes]) -> None:
    for label in _labels(cfg):
        (root / label).mkdir(parents=True, exist_ok=True)
    for path, h in manifest.items():
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(blobs[h])


def snapshot_config(cfg: Config, root: Path) -> tuple[Config, list[Path], Path]:
    """Config, rules folders and templates folder that load a snapshot unpacked at root (event rules too)."""
    c = cfg.model_copy(update={
        "compliance": cfg.compliance.model_copy(update={"lists_dir": str(root / _labels(cfg, "compliance")[0])}),
        "events": cfg.events.model_copy(update={"rules_dir": str(root / _labels(cfg, "events")[0])})})
    return c, [root / label for label in _labels(cfg, "rules")], root / _labels(cfg, "templates")[0]


def blob_problems(manifest: Mapping[str, str], blobs: Mapping[str, bytes]) -> list[Problem]:
    """Stored bytes that are missing or do not hash to their manifest entry."""
    out = []
    for path, h in sorted(manifest.items()):
        b = blobs.get(h)
        if b is None:
            out.append(Problem(path, None, "content_blob", f"the stored bytes {h[:12]}… are missing from the database"))
        elif (got := sha256(b)) != h:
            out.append(Problem(path, None, "content_blob",
                               f"the stored bytes hash to {got[:12]}…, not the approved {h[:12]}… (row edited)"))
    return out


def materialise(conn: Connection, cfg: Config, manifest: Mapping[str, str], chash: str) -> Path:
    """Unpack a stored snapshot under compliance.approved_dir (reused when intact), checking every byte.

    Raises SnapshotMismatch when a stored blob or the unpacked folder is not the approved bytes.
    """
    blobs = get_blobs(conn, set(manifest.values()))
    if bad := blob_problems(manifest, blobs):
        raise SnapshotMismatch(bad)
    base = cfg.path(cfg.compliance.approved_dir)
    root = base / chash[:16]
    if not root.exists():
        base.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{chash[:16]}-", dir=base))
        write_snapshot(tmp, cfg, manifest, blobs)
        try:
            os.replace(tmp, root)
        except OSError:  # another process unpacked it first; checked below like any folder
            shutil.rmtree(tmp, ignore_errors=True)
    if bad := verify_tree(root, manifest):
        raise SnapshotMismatch(bad)
    return root


def integrity_problems(conn: Connection, cfg: Config, approved: Approved) -> list[Problem]:
    """What `review status` shows: stored blobs and the unpacked folder against the manifest (read only)."""
    bad = blob_problems(approved.manifest, get_blobs(conn, set(approved.manifest.values())))
    root = cfg.path(cfg.compliance.approved_dir) / approved.content_hash[:16]
    return bad + (verify_tree(root, approved.manifest) if root.is_dir() else [])


def _refuse(engine: Engine, cfg: Config, approved: Approved, e: SnapshotMismatch) -> SnapshotMismatch:
    """Record the refusal (its own transaction, so it stays) and the error that stops the run."""
    root = cfg.path(cfg.compliance.approved_dir) / approved.content_hash[:16]
    with engine.begin() as conn:
        auditlog.append(conn, [auditlog.Event("snapshot.refused", actor="engine", status="refused", data={
            "version": approved.version, "content_hash": approved.content_hash,
            "problems": [str(p) for p in e.problems]})])
    head = Problem(rel(root), None, "", (
        f"approved version {approved.version} (content {approved.content_hash[:12]}) is not the approved bytes, "
        "so nothing runs (audit event snapshot.refused). Investigate who changed it; then delete this folder "
        "to unpack it again from the database, or restore the database rows from a backup"))
    return SnapshotMismatch([head, *e.problems])


def relabel(problems: list[Problem], root: Path) -> list[Problem]:
    """Problems found in an unpacked snapshot, named by snapshot path (rules/x.yaml)."""
    prefixes = sorted({str(root) + "/", str(root.resolve()) + "/", rel(root) + "/"}, key=len, reverse=True)

    def fix(p: str) -> str:
        return next((p[len(x):] for x in prefixes if p.startswith(x)), p)

    return [Problem(fix(p.path), p.line, p.key, p.message, p.severity) for p in problems]


def check_files(cfg: Config, files: Mapping[str, bytes]) -> tuple[RuleSet | None, list[Problem]]:
    """Load and lint a snapshot given as bytes (a proposal), as it would run."""
    with tempfile.TemporaryDirectory(prefix="steward-check-") as d:
        root = Path(d)
        write_snapshot(root, cfg, manifest_of(files), {sha256(v): v for v in files.values()})
        c, rules, templates = snapshot_config(cfg, root)
        ruleset, problems = check_ruleset(c, rules, templates)
        try:
            load_event_rules(c, templates_dir=templates, snapshot_ids={r.id for r in ruleset.rules} if ruleset else None)
        except SourceErrors as e:
            problems = [*problems, *e.problems]
        return ruleset, relabel(problems, root)


def check_proposal(cfg: Config, files: Mapping[str, bytes], tests: bool = False) -> proposal_check.Check:
    """Lint a proposal, and with `tests` run its rule tests, in a child process (never in this one)."""
    return proposal_check.check_in_child(cfg, files, tests, write_snapshot)


def proposal_config(cfg: Config, files: Mapping[str, bytes]) -> Config:
    """The config a proposal's rules and tests are checked with: its own governed keys, this process's others."""
    snap = files.get(governed.SNAPSHOT_PATH)
    return governed.apply(cfg, governed.parse(snap)) if snap is not None else cfg


def python_files(manifest: Mapping[str, str]) -> list[str]:
    """Snapshot paths of Python rule files: code that only ever runs in a check child or once approved."""
    return sorted(p for p in manifest if p.endswith(".py"))


# ------------------------------------------------------------------ versions


def current(conn: Connection) -> Approved | None:
    row = conn.execute(select(VERSION).order_by(VERSION.c.id.desc()).limit(1)).first()
    if row is None:
        return None
    return Approved(row.id, row.content_hash, dict(row.manifest), row.approved_by, row.approved_at, row.comment)


def unapproved(cfg: Config, approved: Approved | None) -> list[Change]:
    """Working files that differ from the approved version: drafts that do not run."""
    return diff_manifests(approved.manifest if approved else {}, manifest_of(working_files(cfg)))


def _verified_root(engine: Engine, cfg: Config, approved: Approved) -> Path:
    try:
        with engine.begin() as conn:
            return materialise(conn, cfg, approved.manifest, approved.content_hash)
    except SnapshotMismatch as e:
        raise _refuse(engine, cfg, approved, e) from e


def approved_ruleset(engine: Engine, cfg: Config, for_run: bool = False) -> tuple[RuleSet, list[Change], Approved]:
    """The last approved version, loaded from its stored bytes, and the unapproved working files.

    `for_run` (every path that evaluates or sends) also refuses when the governed config.yaml keys in
    force are not the approved ones (config_review.ConfigNotApproved)."""
    with engine.begin() as conn:
        approved = current(conn)
        if approved is None:
            raise NothingApproved(
                "nothing is approved yet, so nothing runs: an author submits the rules and templates with "
                "`steward review submit --note ...` (signed in as an author), and a compliance reviewer approves them with "
                "`steward review approve ID --comment ...` (docs/compliance.md)")
    root = _verified_root(engine, cfg, approved)
    if for_run:
        config_review.require_approved(engine, cfg, approved.version, root, approved.manifest)
    c, rules, templates = snapshot_config(cfg, root)
    try:
        ruleset = load_ruleset(c, rules, templates, snapshot=(root, approved.manifest))
    except SnapshotMismatch as e:
        raise _refuse(engine, cfg, approved, e) from e
    return ruleset, unapproved(cfg, approved), approved


def approved_event_rules(engine: Engine, cfg: Config) -> tuple[EventRuleSet, list[Change], Approved]:
    """The event rules and templates of the last approved version, and the unapproved working files."""
    with engine.begin() as conn:
        approved = current(conn)
        if approved is None:
            raise NothingApproved(
                "nothing is approved yet, so no event is processed (stored events wait and are processed once a "
                "version is approved): an author submits the rules, event rules and templates with "
                "`steward review submit --note ...` (signed in as an author), and a compliance reviewer approves them with "
                "`steward review approve ID --comment ...`; then `steward events replay` (docs/compliance.md)")
    root = _verified_root(engine, cfg, approved)
    config_review.require_approved(engine, cfg, approved.version, root, approved.manifest)
    c, _, templates = snapshot_config(cfg, root)
    return load_event_rules(c, templates_dir=templates), unapproved(cfg, approved), approved


def approved_versions(conn: Connection) -> list[Approved]:
    """Every approved version, newest first."""
    return [Approved(r.id, r.content_hash, dict(r.manifest), r.approved_by, r.approved_at, r.comment)
            for r in conn.execute(select(VERSION).order_by(VERSION.c.id.desc()))]


def ruleset_that_ran(engine: Engine, cfg: Config, rules_versions: set[str]) -> tuple[RuleSet, Approved] | None:
    """The approved version whose rules hash is one an evaluation run recorded (`why` on a past day)."""
    with engine.connect() as conn:
        versions = approved_versions(conn)
    for a in versions:
        root = _verified_root(engine, cfg, a)
        c, rules, templates = snapshot_config(cfg, root)
        ruleset = load_ruleset(c, rules, templates, snapshot=(root, a.manifest))
        if ruleset.version in rules_versions:
            return ruleset, a
    return None


# ------------------------------------------------------------------ lifecycle


@dataclass(frozen=True)
class Submitted:
    proposal_id: int
    changes: list[Change]
    problems: list[Problem]
    config_changes: list[config_review.Located]


def _open_with(conn: Connection, chash: str) -> int | None:
    return conn.execute(select(PROPOSAL.c.id).where(PROPOSAL.c.content_hash == chash, PROPOSAL.c.status == "submitted")).scalar()


def submit(engine: Engine, cfg: Config, actor: str | None, note: str, files: Mapping[str, bytes] | None = None,
           on_submit: Callable[[Connection, int], None] | None = None) -> Submitted:
    """Snapshot the working files (or `files`, a whole snapshot: the console's drafts) as a proposal (author
    role). Lint runs; errors will block approval. `on_submit(conn, id)` runs in the proposal's transaction."""
    if not note.strip():
        raise StewardError("--note: say what changed and why; the reviewer reads it")
    files = working_files(cfg) if files is None else dict(files)
    manifest = manifest_of(files)
    chash = content_hash(manifest)
    where = config_review.source(cfg)
    # Python rule files are code: even the author's submit checks them in a child process.
    problems = check_proposal(cfg, files).problems if python_files(manifest) else check_files(cfg, files)[1]
    with engine.begin() as conn:
        author = users.require(conn, actor, "review.submit")
        base = current(conn)
        if base is not None and base.content_hash == chash:
            raise StewardError(f"nothing to submit: the files equal approved version {base.version}")
        dup = _open_with(conn, chash)
        if dup is not None:
            raise StewardError(f"these files are already submitted as proposal {dup}")
        put_blobs(conn, files)
        pid = int(conn.execute(PROPOSAL.insert().values(
            author=author.name, note=note.strip(), created_at=clock.now(), status="submitted",
            base_version=base.version if base else None, content_hash=chash, manifest=manifest, config_source=where,
            lint_errors=sum(p.severity == "error" for p in problems),
            lint_warnings=sum(p.severity == "warning" for p in problems),
        )).inserted_primary_key[0])  # type: ignore[index]
        changes = diff_manifests(base.manifest if base else {}, manifest)
        keys = config_changes(conn, base.manifest if base else {}, files, where)
        auditlog.append(conn, [auditlog.Event("proposal.submitted", actor=author.name, data={
            "proposal": pid, "content_hash": chash, "note": note.strip(), "config_changes": [str(k) for k in keys],
            "changes": {c.path: c.state for c in changes}, "lint_errors": sum(p.severity == "error" for p in problems)})])
        if on_submit is not None:
            on_submit(conn, pid)
    return Submitted(pid, changes, problems, keys)


def unapproved_config(conn: Connection, cfg: Config, approved: Approved | None) -> list[config_review.Located]:
    """Governed config.yaml keys in force that differ from the approved version (a run refuses them)."""
    return config_changes(conn, approved.manifest if approved else {},
                          {governed.SNAPSHOT_PATH: governed.render(governed.values(cfg))}, config_review.source(cfg))


def config_changes(conn: Connection, base: Mapping[str, str], files: Mapping[str, bytes],
                   where: Mapping[str, Any] | None) -> list[config_review.Located]:
    """Governed config.yaml keys a proposal changes against its base version: old -> new, by file and line."""
    snap = files.get(governed.SNAPSHOT_PATH)
    if snap is None:
        return []
    old = config_review.values_of(base, get_blobs(conn, set(base.values())))
    return config_review.located_changes(old, governed.parse(snap), where, snap)


def proposal(conn: Connection, pid: int) -> Any:
    row = conn.execute(select(PROPOSAL).where(PROPOSAL.c.id == pid)).first()
    if row is None:
        raise StewardError(f"no proposal {pid}; `steward review list` shows them")
    return row


def proposals(conn: Connection, status: str | None = None) -> list[Any]:
    q = select(PROPOSAL).order_by(PROPOSAL.c.id.desc())
    return list(conn.execute(q.where(PROPOSAL.c.status == status) if status else q))


def proposal_files(conn: Connection, row: Any) -> dict[str, bytes]:
    blobs = get_blobs(conn, set(row.manifest.values()))
    return {p: blobs[h] for p, h in row.manifest.items()}


def base_manifest(conn: Connection, row: Any) -> Manifest:
    if row.base_version is None:
        return {}
    m = conn.execute(select(VERSION.c.manifest).where(VERSION.c.id == row.base_version)).scalar()
    return dict(m or {})


def _decidable(conn: Connection, actor: str | None, pid: int, comment: str) -> tuple[users.User, Any]:
    reviewer = users.require(conn, actor, "review.decide")
    row = proposal(conn, pid)
    if row.status != "submitted":
        raise StewardError(f"proposal {pid} is already {row.status} (by {row.decided_by})")
    if users.canonical(row.author) == reviewer.name:  # one person however the name was typed
        raise users.PermissionDenied(f"{reviewer.name!r} wrote proposal {pid}: the author can never approve or reject "
                                     "their own change; another compliance reviewer must")
    if not comment.strip():
        raise StewardError("--comment: the decision needs a comment; it is kept with the approval record")
    return reviewer, row


def approve(engine: Engine, cfg: Config, actor: str | None, pid: int, comment: str) -> Approved:
    """Approve a proposal (compliance role, not the author, no lint errors, made against the current version)."""
    with engine.begin() as conn:
        reviewer, row = _decidable(conn, actor, pid, comment)
        base = current(conn)
        if (base.version if base else None) != row.base_version:
            raise StewardError(f"proposal {pid} was made against version {row.base_version}, but version "
                               f"{base.version if base else None} has been approved since: the author resubmits")
        files = proposal_files(conn, row)
        check = check_proposal(proposal_config(cfg, files), files, tests=True)
        if check.errors:
            raise StewardError(f"proposal {pid} has {len(check.errors)} error(s) and cannot be approved:\n"
                               + "\n".join(f"  {p}" for p in check.errors))
        if check.failed:
            raise StewardError(f"proposal {pid} fails {len(check.failed)} of its {len(check.tests)} rule test(s) and "
                               "cannot be approved; the author fixes the rules or the tests and resubmits:\n"
                               + "\n".join(f"  {t.path}: {t.rule}: {t.case}: {t.detail}" for t in check.failed))
        now = clock.now()
        vid = int(conn.execute(VERSION.insert().values(
            proposal_id=pid, content_hash=row.content_hash, manifest=row.manifest, author=row.author,
            approved_by=reviewer.name, approved_at=now, comment=comment.strip())).inserted_primary_key[0])  # type: ignore[index]
        conn.execute(update(PROPOSAL).where(PROPOSAL.c.id == pid).values(
            status="approved", decided_by=reviewer.name, decided_at=now, comment=comment.strip()))
        auditlog.append(conn, [auditlog.Event("proposal.approved", actor=reviewer.name, data={
            "proposal": pid, "version": vid, "author": row.author, "comment": comment.strip(),
            "content_hash": row.content_hash, "files": dict(row.manifest)})])
        return Approved(vid, row.content_hash, dict(row.manifest), reviewer.name, now, comment.strip())


def reject(engine: Engine, actor: str | None, pid: int, comment: str) -> None:
    with engine.begin() as conn:
        reviewer, row = _decidable(conn, actor, pid, comment)
        conn.execute(update(PROPOSAL).where(PROPOSAL.c.id == pid).values(
            status="rejected", decided_by=reviewer.name, decided_at=clock.now(), comment=comment.strip()))
        auditlog.append(conn, [auditlog.Event("proposal.rejected", actor=reviewer.name, data={
            "proposal": pid, "author": row.author, "comment": comment.strip(), "content_hash": row.content_hash})])


def text_diff(path: str, old: bytes | None, new: bytes | None) -> str:
    """A unified diff of one file (text), as the reviewer reads it."""
    a = (old or b"").decode("utf-8", "replace").splitlines(keepends=True)
    b = (new or b"").decode("utf-8", "replace").splitlines(keepends=True)
    return "".join(difflib.unified_diff(a, b, f"approved/{path}" if old is not None else "/dev/null",
                                        f"proposed/{path}" if new is not None else "/dev/null"))


# ------------------------------------------------------------------ demo


DEMO_AUTHOR, DEMO_REVIEWER, DEMO_ADMIN = "author", "compliance", "admin"


def is_demo_database(conn: Connection) -> bool:
    """True when `steward demo` built this database (its bootstrap proposal is there)."""
    row = conn.execute(select(PROPOSAL.c.id).where(PROPOSAL.c.author == DEMO_AUTHOR,
                                                   PROPOSAL.c.note.like("demo bootstrap:%")).limit(1)).first()
    return row is not None


def demo_bootstrap(engine: Engine, cfg: Config) -> int | None:
    """On a database without users: create demo users, submit and approve the shipped pack.

    Recorded honestly: the users are created by `bootstrap`, the approval comment says it was
    the demo. Returns the approved version id, or None when the database already has users.
    """
    with engine.begin() as conn:
        if users.count(conn):
            return None
        users.add(conn, None, DEMO_ADMIN, ["admin"], "Demo administrator")
        users.add(conn, DEMO_ADMIN, DEMO_AUTHOR, ["author"], "Demo rule author")
        users.add(conn, DEMO_ADMIN, DEMO_REVIEWER, ["compliance"], "Demo compliance reviewer")
    sub = submit(engine, cfg, DEMO_AUTHOR, "demo bootstrap: the shipped rules, event rules, templates and lint lists")
    return approve(engine, cfg, DEMO_REVIEWER, sub.proposal_id,
                   "demo bootstrap: approved automatically by `steward demo` so a newcomer sees the pipeline run; "
                   "in production a compliance reviewer reads `steward review show` first").version
