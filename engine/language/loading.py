"""Loading stage: rules and their templates checked together, all problems in one pass."""

from __future__ import annotations

import hashlib
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


def load_ruleset(cfg: Config, rules_dirs: list[Path] | None = None, templates_dir: Path | None = None) -> RuleSet:
    """Load and check everything; raise SourceErrors listing every problem if any."""
    ruleset, problems = check_ruleset(cfg, rules_dirs, templates_dir)
    if ruleset is None:
        raise SourceErrors(problems)
    return ruleset
