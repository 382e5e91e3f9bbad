"""Loading stage: rules and their templates checked together, all problems in one pass.

An approved snapshot loads with its manifest (`load_ruleset(..., snapshot=(root, manifest))`):
every file under the unpacked folder must be named in the manifest with exactly those bytes
before anything is read, and every loaded rule's content hash must equal its manifest entry
after; anything else raises `SnapshotMismatch` and nothing runs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.language import lint
from engine.facts import base as facts
from engine.config.base import Config
from engine.errors import Problem, SourceErrors
from engine.language.rendering import Renderer
from engine.language.rules import Rule, load_rules


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    renderer: Renderer
    version: str
    """Hash over every rule's and template's content: which words and logic ran."""

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    @property
    def enabled(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.spec.enabled)


def check_ruleset(
    cfg: Config, rules_dirs: list[Path] | None = None, templates_dir: Path | None = None
) -> tuple[RuleSet | None, list[Problem]]:
    rules, problems = load_rules(rules_dirs or cfg.rules_paths, facts.field_types())
    renderer = Renderer(templates_dir or cfg.templates_path, cfg.default_locale, cfg.firm.model_dump())
    problems += renderer.load((r.spec.action.template for r in rules), facts.all_fields())
    problems += renderer.check_budget({n: f.type for n, f in facts.all_fields().items()})
    problems += lint.check(cfg.path(cfg.compliance.lists_dir), rules, {n: t.files for n, t in renderer.sets.items()}, renderer.env)
    if any(p.severity == "error" for p in problems):
        return None, problems
    digest = hashlib.sha256()
    for r in sorted(rules, key=lambda r: r.id):
        th = renderer.template_hash(r.spec.action.template) or ""
        digest.update(f"{r.id}\0{r.content_hash}\0{th}\n".encode())
    ordered = tuple(sorted(rules, key=lambda r: (-r.spec.action.priority, r.id)))
    return RuleSet(ordered, renderer, digest.hexdigest()[:16]), problems


Snapshot = tuple[Path, Mapping[str, str]]
"""(unpacked folder, manifest: path relative to the folder -> sha256) of an approved version."""


class SnapshotMismatch(SourceErrors):
    """The approved snapshot on disk or in the database is not the approved bytes: nothing may run."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_tree(root: Path, manifest: Mapping[str, str]) -> list[Problem]:
    """Every file under root is in the manifest with exactly its bytes, and no manifest file is missing."""
    problems: list[Problem] = []
    seen: set[str] = set()
    for p in sorted(root.rglob("*")):
        key = p.relative_to(root).as_posix()
        if p.is_dir() and not p.is_symlink():
            continue
        seen.add(key)
        want = manifest.get(key)
        if want is None:
            problems.append(Problem(key, None, "", "this file is not in the approved manifest: nobody approved it"))
        elif p.is_symlink() or not p.is_file():
            problems.append(Problem(key, None, "", "is a link or special file, not the approved file"))
        elif (got := _sha256(p.read_bytes())) != want:
            problems.append(Problem(key, None, "", f"sha256 {got[:12]}… differs from the approved {want[:12]}… "
                                                   "(changed after approval)"))
    problems += [Problem(key, None, "", "an approved file is missing") for key in sorted(set(manifest) - seen)]
    return problems


def _check_loaded(ruleset: RuleSet, root: Path, manifest: Mapping[str, str]) -> list[Problem]:
    """The rules that loaded are the approved bytes (their hash is taken over the bytes parsed)."""
    problems = []
    base = root.resolve()
    for r in ruleset.rules:
        try:
            key = Path(r.path).resolve().relative_to(base).as_posix()
        except ValueError:
            problems.append(Problem(r.path, None, "", f"rule {r.id!r} loaded from outside the approved snapshot"))
            continue
        if manifest.get(key) != r.content_hash:
            problems.append(Problem(key, None, "", f"rule {r.id!r} loaded with sha256 {r.content_hash[:12]}…, "
                                                   "which is not the approved content"))
    return problems


def load_ruleset(cfg: Config, rules_dirs: list[Path] | None = None, templates_dir: Path | None = None,
                 snapshot: Snapshot | None = None) -> RuleSet:
    """Load and check everything; raise SourceErrors listing every problem if any.

    With `snapshot`, only an intact approved snapshot loads (else `SnapshotMismatch`).
    """
    if snapshot is not None and (bad := verify_tree(*snapshot)):
        raise SnapshotMismatch(bad)
    ruleset, problems = check_ruleset(cfg, rules_dirs, templates_dir)
    if ruleset is None:
        raise SourceErrors(problems)
    if snapshot is not None and (bad := _check_loaded(ruleset, *snapshot)):
        raise SnapshotMismatch(bad)
    return ruleset
