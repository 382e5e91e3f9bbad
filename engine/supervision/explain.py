"""Why did (or didn't) a client get a message? Every rule, for one client and one day.

For each rule: whether its condition holds on the client's facts for the day and, if
not, which leaf conditions failed with the actual values; whether a firing was
recorded, and if so which contact-policy stage passed, held or dropped it and why
(from the firing's policy trail), and what dispatch did with it (from the audit log).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from engine.language import expr
from engine.audit import facts_store
from engine.audit.log import EVENT
from engine.config.base import Config
from engine.errors import StewardError
from engine.facts.base import DATE, Facts, all_fields, facts_for
from engine.language.loading import RuleSet
from engine.models import Client, EvaluationRun
from engine.pipeline.recording import BLOCKED_BY_GATE, FIRING
from engine.language.rules import Rule

CLIENT = Client.__table__  # type: ignore[attr-defined]
RUN = EvaluationRun.__table__  # type: ignore[attr-defined]
_DISPATCH_EVENTS = ("send.attempted", "send.receipt", "task.outcome")


@dataclass(frozen=True)
class Leaf:
    text: str
    holds: bool
    values: dict[str, Any]

    def __str__(self) -> str:
        vals = ", ".join(f"{k} = {_show(v)}" for k, v in self.values.items())
        return f"{self.text}  ({vals})" if vals else self.text


@dataclass
class RuleVerdict:
    rule_id: str
    title: str
    rule_class: str
    enabled: bool
    holds: bool
    failing: list[Leaf] = field(default_factory=list)
    leaves: list[Leaf] = field(default_factory=list)
    firing: Any = None
    """The firing row recorded for this client, rule and day, if any."""
    stages: list[str] = field(default_factory=list)
    """One line per policy stage: what it did and why."""
    dispatch: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def fired(self) -> bool:
        return self.firing is not None


@dataclass
class Explanation:
    client_id: str
    as_of: date
    facts: Facts
    verdicts: list[RuleVerdict]
    evaluated: bool
    """Whether an evaluation run exists for the day."""
    facts_source: str = "recomputed from the data as it is now"
    """Where the facts come from: recorded with that day's firing, or recomputed."""


def _show(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, float):
        if v.is_integer():
            return f"{v:,.0f}"
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.2f}"
    return repr(v) if isinstance(v, str) else str(v)


def failing_leaves(node: expr.Node, facts: Facts) -> list[Leaf]:
    """The leaf conditions that make `node` false (empty when it holds)."""
    if expr.evaluate(node, facts):
        return []
    if isinstance(node, expr.And):
        return [leaf for item in node.items for leaf in failing_leaves(item, facts)]
    if isinstance(node, expr.Or):  # every alternative failed: show the group, with its values
        return [Leaf(expr.unparse(node), False, {f: facts.get(f) for f in sorted(expr.fields_of(node))})]
    return [Leaf(*t) for t in expr.explain(node, facts)]


def _trail_lines(trail: list[dict[str, Any]]) -> list[str]:
    out = []
    for t in trail or []:
        outcome = t.get("outcome")
        reason = f" {t['reason']}" if t.get("reason") else ""
        detail = f": {t['detail']}" if t.get("detail") else ""
        out.append(f"{t.get('stage')}: {outcome}{reason}{detail}")
    return out


def _firing_note(f: Any) -> str:
    if f.status in ("suppressed", "held", "deferred", "dropped"):
        return f"fired, then {f.status} by policy ({f.reason})"
    if f.status == "failed":
        return f"fired, but the message could not be rendered: {f.error}"
    if f.action_type == "task":
        return f"fired: call task for the advisor, status {f.status}"
    return f"fired: {f.channel} message, status {f.status}"


def _not_fired_note(rule: Rule, last: date | None, as_of: date, evaluated: bool) -> str:
    if last is not None and as_of - last < rule.spec.cooldown_delta:
        return (f"condition holds, but held back by cooldown: last fired {last} "
                f"(cooldown {rule.spec.cooldown}, next possible {last + rule.spec.cooldown_delta})")
    if not evaluated:
        return f"condition holds, but no evaluation has run for {as_of} (steward run --as-of {as_of})"
    return "condition holds, but no firing was recorded (the rule may have been added or enabled after the run)"


def _verdict(rule: Rule, facts: Facts, firing: Any, last: date | None, as_of: date, evaluated: bool) -> RuleVerdict:
    holds = bool(rule.predicate(facts))
    v = RuleVerdict(rule.id, rule.spec.title, rule.spec.rule_class, rule.spec.enabled, holds, firing=firing)
    if rule.node is not None:
        v.leaves = [Leaf(*t) for t in expr.explain(rule.node, facts)]
        v.failing = failing_leaves(rule.node, facts)
    if firing is not None:
        v.note = _firing_note(firing)
        v.stages = _trail_lines(firing.policy)
    elif not rule.spec.enabled:
        v.note = "rule is disabled"
    elif not holds:
        v.note = "condition does not hold" + ("" if rule.node is not None else " (Python rule: no breakdown)")
    else:
        v.note = _not_fired_note(rule, last, as_of, evaluated)
    return v


def _dispatch_lines(conn: Connection, firing_ids: list[int]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    if not firing_ids:
        return out
    q = (select(EVENT.c.firing_id, EVENT.c.name, EVENT.c.at, EVENT.c.status, EVENT.c.reason, EVENT.c.actor)
         .where(EVENT.c.firing_id.in_(firing_ids), EVENT.c.name.in_(_DISPATCH_EVENTS)).order_by(EVENT.c.seq))
    for r in conn.execute(q):
        reason = f" ({r.reason})" if r.reason else ""
        out.setdefault(r.firing_id, []).append(f"{r.at:%Y-%m-%d %H:%M} {r.name} {r.status or ''}{reason} by {r.actor}")
    return out


def _recorded(stored: Mapping[str, Any]) -> Facts:
    """A firing's facts snapshot back to facts: ISO dates of date fields become dates again."""
    out: dict[str, Any] = dict(stored)
    for name, f in all_fields().items():
        if f.type == DATE and isinstance(out.get(name), str):
            out[name] = date.fromisoformat(out[name])
    return out


def explain_client(conn: Connection, cfg: Config, ruleset: RuleSet, client_id: str, as_of: date) -> Explanation:
    """Every rule's verdict for one client and day; raises StewardError for an unknown client."""
    opened = conn.execute(select(CLIENT.c.opened_on).where(CLIENT.c.id == client_id)).first()
    if opened is None:
        raise StewardError(f"no client with id {client_id!r}; `steward audit list --client ID` shows recorded ones")
    if opened[0] > as_of:
        raise StewardError(f"client {client_id!r} opened on {opened[0]}, after {as_of}: nothing was evaluated that day")
    facts = facts_for(conn, cfg, as_of, client_id)
    if facts is None:
        raise StewardError(f"no facts for client {client_id!r} on {as_of}")
    firings = {r.rule_id: r for r in conn.execute(
        select(FIRING).where(FIRING.c.client_id == client_id, FIRING.c.as_of == as_of))}
    source = f"recomputed from the data as it is now (no firing of {client_id} was recorded on {as_of})"
    ordered = sorted(firings.values(), key=lambda f: f.id)
    rec, snap = next(((f, s) for f, s in zip(ordered, facts_store.load(conn, ordered)) if s), (None, None))
    if rec is not None and snap:  # the facts in force that day, as the evaluation recorded them
        facts = _recorded(snap)
        source = f"recorded by the evaluation of {as_of} (with firing {rec.id}), not today's data"
    last = {r[0]: r[1] for r in conn.execute(
        select(FIRING.c.rule_id, func.max(FIRING.c.as_of))
        .where(FIRING.c.client_id == client_id, FIRING.c.as_of < as_of, FIRING.c.status.not_in(BLOCKED_BY_GATE))
        .group_by(FIRING.c.rule_id))}
    evaluated = conn.execute(select(func.count()).select_from(RUN).where(RUN.c.as_of == as_of)).scalar() or 0
    verdicts = [_verdict(r, facts, firings.get(r.id), last.get(r.id), as_of, evaluated > 0)
                for r in sorted(ruleset.rules, key=lambda r: r.id)]
    lines = _dispatch_lines(conn, [f.id for f in firings.values()])
    for v in verdicts:
        if v.firing is not None:
            v.dispatch = lines.get(v.firing.id, [])
    return Explanation(client_id, as_of, facts, verdicts, evaluated > 0, source)
