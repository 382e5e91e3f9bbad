"""Matching stage: snapshot facts against compiled rule predicates.

Snapshot rules run as compiled Python predicates (see engine.language.expr). The
durable-rules adapter (engine.events.durable) runs the same conditions and a
property test keeps both answers identical; event rules use the adapter.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from engine.facts.base import Facts
from engine.language.rules import Rule


@dataclass(frozen=True)
class Match:
    rule: Rule
    facts: Facts


def match(rules: Iterable[Rule], batch: Iterable[Facts]) -> Iterator[Match]:
    """Every (rule, client) whose condition holds; rules in priority order per client."""
    compiled = [(r, r.predicate) for r in rules if r.spec.enabled]
    for f in batch:
        for rule, pred in compiled:
            if pred(f):
                yield Match(rule, f)


def matching_rule_ids(rules: Iterable[Rule], f: dict[str, Any]) -> list[str]:
    return [r.id for r in rules if r.spec.enabled and r.predicate(f)]
