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
    error: str | None = None
    """Set when the rule's condition failed to evaluate for this client: recorded as a failed firing."""


EVAL_FAILED = "RULE_EVAL_FAILED"
"""Reason code of a firing whose condition raised instead of answering."""


def _failure(rule: Rule, f: Facts, e: Exception) -> str:
    return f"{EVAL_FAILED}: rule {rule.id!r} failed on client {f.get('client_id')!r}: {type(e).__name__}: {str(e)[:200]}"


def holds(rule: Rule, f: Facts) -> tuple[bool, str | None]:
    """Whether the rule's condition holds for these facts, and the error if it failed to evaluate."""
    try:
        return bool(rule.predicate(f)), None
    except Exception as e:  # noqa: BLE001 - one rule failing on one client must not stop the run
        return False, _failure(rule, f, e)


def match(rules: Iterable[Rule], batch: Iterable[Facts]) -> Iterator[Match]:
    """Every (rule, client) whose condition holds, or failed to evaluate; rules in priority order per client.

    `holds` inlined: this loop runs once per rule and client of the book.
    """
    enabled = [(r, r.predicate) for r in rules if r.spec.enabled]
    for f in batch:
        for rule, predicate in enabled:
            try:
                if not predicate(f):
                    continue
                error = None
            except Exception as e:  # noqa: BLE001 - one rule failing on one client must not stop the run
                error = _failure(rule, f, e)
            yield Match(rule, f, error)


def matching_rule_ids(rules: Iterable[Rule], f: dict[str, Any]) -> list[str]:
    return [r.id for r in rules if r.spec.enabled and holds(r, f)[0]]
