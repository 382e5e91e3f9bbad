"""Drafts: a rule and its four templates as an author edits them in the console, before review.

A draft lives in the proposal store (its bytes in `content_blob`, by hash; a `rule_draft` row names
them), never in the rules or templates folders and never in an approved snapshot, so nothing edited
in the browser runs before a compliance reviewer approves it. Submitting a draft lays its files over
the last approved version and hands that whole snapshot to `review.submit`, the code path of
`steward review submit`.

Live checks load only the edited rule, its templates and the lint lists, in this process: YAML and
sandboxed templates, never Python (Python rule files are not editable here, and the full snapshot
with any approved Python files is checked in a child process at submission, as the CLI does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Engine, select, update
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from engine import clock
from engine.audit import log as auditlog
from engine.compliance import review, users
from engine.config.base import Config
from engine.errors import Problem, StewardError
from engine.language.loading import RuleSet
from engine.pipeline.matching import Match
from engine.pipeline.run import render_firing
from engine.yamlio import loads

auditlog.register_event_name("draft.saved", "an author saved a rule and its templates as a draft in the console")
auditlog.register_event_name("draft.submitted", "an author submitted a console draft as a proposal")

LOCALES = ("zh-CN", "zh-TW", "en", "es")
"""The four message locales a rule's template has, one file each."""


class RuleDraft(SQLModel, table=True):
    __tablename__ = "rule_draft"

    id: int | None = Field(default=None, primary_key=True)
    author: str = Field(max_length=64, index=True)
    rule_path: str = Field(max_length=255)
    """Snapshot path of the rule file (rules/dormant_activation.yaml)."""
    base_version: int | None = None
    """The approved version the draft was saved against."""
    files: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    """Snapshot path -> sha256 of the edited rule file and its templates (bytes in content_blob)."""
    status: str = Field(default="open", max_length=16)
    """open or submitted."""
    proposal_id: int | None = None
    created_at: datetime
    updated_at: datetime


DRAFT = RuleDraft.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Edit:
    """What the editor holds: one rule file's text and its template text per locale."""

    rule_path: str
    rule_text: str
    templates: Mapping[str, str]


# ------------------------------------------------------------------ reading


def base_files(conn: Connection, cfg: Config) -> tuple[dict[str, bytes], int | None]:
    """The files a draft starts from: the last approved version (the working files before any approval)."""
    approved = review.current(conn)
    if approved is None:
        return review.working_files(cfg), None
    blobs = review.get_blobs(conn, set(approved.manifest.values()))
    return {p: blobs[h] for p, h in approved.manifest.items()}, approved.version


def rule_paths(cfg: Config, files: Mapping[str, bytes]) -> list[str]:
    """Snapshot paths of the YAML rule files an author may edit here (Python rules only from the CLI)."""
    out = []
    for label in review._labels(cfg, "rules"):
        for p in files:
            rest = p[len(label) + 1:] if p.startswith(label + "/") else ""
            if rest and "/" not in rest and rest.endswith((".yaml", ".yml")):
                out.append(p)
    return sorted(out)


def template_name(rule_text: str) -> str | None:
    """The template a rule file names (action.template), or None when the text does not say."""
    try:
        data = loads(rule_text)
    except Exception:  # noqa: BLE001 - the live check reports the located YAML error
        return None
    action = data.get("action") if isinstance(data, dict) else None
    name = action.get("template") if isinstance(action, dict) else None
    return name if isinstance(name, str) and name and "/" not in name and not name.startswith(".") else None


def template_path(cfg: Config, name: str, locale: str) -> str:
    return f"{review._labels(cfg, 'templates')[0]}/{name}/{locale}.j2"


def edit_of(cfg: Config, files: Mapping[str, bytes], rule_path: str) -> Edit:
    """The editor's starting point for one rule, from a snapshot's files."""
    if rule_path not in rule_paths(cfg, files):
        raise StewardError(f"no editable rule file {rule_path!r}; choose one from the list")
    text = files[rule_path].decode("utf-8")
    name = template_name(text)
    tpl = {loc: files.get(template_path(cfg, name, loc), b"").decode("utf-8") if name else "" for loc in LOCALES}
    return Edit(rule_path, text, tpl)


def edit_files(cfg: Config, edit: Edit, fallback_template: str | None = None) -> dict[str, bytes]:
    """The edit as snapshot files: the rule file and each non-empty template."""
    out = {edit.rule_path: edit.rule_text.encode("utf-8")}
    name = template_name(edit.rule_text) or fallback_template
    if name:
        for loc in LOCALES:
            text = edit.templates.get(loc, "")
            if text.strip():
                out[template_path(cfg, name, loc)] = text.encode("utf-8")
    return out


def open_draft(conn: Connection, author: str, rule_path: str) -> Any:
    return conn.execute(select(DRAFT).where(DRAFT.c.author == users.canonical(author), DRAFT.c.rule_path == rule_path,
                                            DRAFT.c.status == "open")).first()


def drafts_of(conn: Connection, author: str) -> list[Any]:
    return list(conn.execute(select(DRAFT).where(DRAFT.c.author == users.canonical(author))
                             .order_by(DRAFT.c.updated_at.desc(), DRAFT.c.id.desc())))


def draft_edit(conn: Connection, cfg: Config, row: Any) -> Edit:
    blobs = review.get_blobs(conn, set(row.files.values()))
    return edit_of(cfg, {p: blobs[h] for p, h in row.files.items()}, row.rule_path)


# ------------------------------------------------------------------ checking and preview


def check(cfg: Config, base: Mapping[str, bytes], edit: Edit) -> tuple[RuleSet | None, list[Problem]]:
    """Located problems of the edited rule and its templates, as `rules check` reports them."""
    if edit.rule_path not in rule_paths(cfg, base):
        raise StewardError(f"no editable rule file {edit.rule_path!r}; choose one from the list")
    fallback = template_name(base[edit.rule_path].decode("utf-8"))
    lists = review._labels(cfg, "compliance")[0] + "/"
    files = {p: v for p, v in base.items() if p.startswith(lists)}
    files.update(edit_files(cfg, edit, fallback))
    return review.check_files(cfg, files)


@dataclass(frozen=True)
class Preview:
    rule_id: str
    fires: bool
    messages: dict[str, tuple[str | None, str | None, str | None]]
    """locale -> (subject, text, error)."""


def preview(ruleset: RuleSet, facts: Mapping[str, Any], advisors: dict[str, dict[str, str]], as_of: date) -> Preview:
    """Whether the checked rule holds for these facts, and its message rendered in every locale."""
    rule = ruleset.rules[0]
    fires = bool(rule.predicate(dict(facts)))
    out = {}
    for loc in LOCALES:
        f = render_firing(ruleset, Match(rule, {**facts, "locale": loc}), advisors, as_of)
        out[loc] = (f.subject, f.message, f.error)
    return Preview(rule.id, fires, out)


# ------------------------------------------------------------------ saving and submitting


def save(engine: Engine, cfg: Config, actor: str, edit: Edit) -> int:
    """Store the edit as the author's open draft of that rule (author role); audit `draft.saved`."""
    with engine.begin() as conn:
        author = users.require(conn, actor, "review.submit")
        base, version = base_files(conn, cfg)
        if edit.rule_path not in rule_paths(cfg, base):
            raise StewardError(f"no editable rule file {edit.rule_path!r}; choose one from the list")
        files = edit_files(cfg, edit, template_name(base[edit.rule_path].decode("utf-8")))
        review.put_blobs(conn, files)
        manifest = review.manifest_of(files)
        now = clock.now()
        row = open_draft(conn, author.name, edit.rule_path)
        if row is None:
            did = int(conn.execute(DRAFT.insert().values(
                author=author.name, rule_path=edit.rule_path, base_version=version, files=manifest, status="open",
                created_at=now, updated_at=now)).inserted_primary_key[0])  # type: ignore[index]
        else:
            did = row.id
            conn.execute(update(DRAFT).where(DRAFT.c.id == did).values(files=manifest, base_version=version,
                                                                       updated_at=now))
        auditlog.append(conn, [auditlog.Event("draft.saved", actor=author.name, data={
            "draft": did, "rule": edit.rule_path, "base_version": version, "files": manifest})])
    return did


def submit(engine: Engine, cfg: Config, actor: str, draft_id: int, note: str) -> review.Submitted:
    """Submit the author's own open draft over the last approved version, as `steward review submit` does."""
    with engine.begin() as conn:
        author = users.require(conn, actor, "review.submit")
        row = conn.execute(select(DRAFT).where(DRAFT.c.id == draft_id)).first()
        if row is None or row.author != author.name:
            raise StewardError(f"no draft {draft_id} of yours; open the rule from the Author page")
        if row.status != "open":
            raise StewardError(f"draft {draft_id} is already submitted as proposal {row.proposal_id}")
        base, version = base_files(conn, cfg)
        if version != row.base_version:
            raise StewardError(f"draft {draft_id} was saved against approved version {row.base_version}, but version "
                               f"{version} has been approved since: open the rule again, check, and save the draft")
        blobs = review.get_blobs(conn, set(row.files.values()))
    files = {**base, **{p: blobs[h] for p, h in row.files.items()}}

    def mark(c: Connection, pid: int) -> None:
        c.execute(update(DRAFT).where(DRAFT.c.id == draft_id).values(status="submitted", proposal_id=pid,
                                                                     updated_at=clock.now()))
        auditlog.append(c, [auditlog.Event("draft.submitted", actor=author.name, data={
            "draft": draft_id, "proposal": pid, "rule": row.rule_path, "files": dict(row.files)})])

    return review.submit(engine, cfg, author.name, note, files=files, on_submit=mark)
