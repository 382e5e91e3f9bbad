"""Event rules: the YAML form (`kind: event`), parsed and checked like snapshot rules.

An event rule holds every key of a snapshot rule except `when` at the top level
(title, class, action, cooldown, urgent, ...: the same policy, rendering, approval
and audit apply) plus exactly one of:

- `event: TYPE` and an optional `when:` over the event's `event_*` fields and the
  client's facts (a single event);
- `sequence: {first: STEP, then: STEP, within: WINDOW}` (fires on `then`);
- `absence: {start: STEP, cured_by: STEP, deadline: DEADLINE}` (fires at the deadline).

A STEP is `{event: TYPE, when: EXPR}`. WINDOW is `5td` (trading days), or a duration
(`30d`, `12h`, `45min`). DEADLINE is a WINDOW or `next_session_close`; trading-day
windows and deadlines end at `events.session_close` of that trading day.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from engine.language import expr
from engine.language import lint
from engine.facts import base as facts
from engine.config.base import Config
from engine.errors import Problem, SourceErrors, did_you_mean, rel
from engine.language import event_schema as schema
from engine.language.loading import RuleSet
from engine.language.rendering import Renderer
from engine.language.rules import MAX_RULE_FILE_BYTES, Rule, RuleSpec, _validation_problems, parse_duration, short_repr, when_problems
from engine.yamlio import LineDict, line_of, loads, read_text

EVENT_KEYS = ("kind", "event", "when", "sequence", "absence")
_TD = re.compile(r"^(\d+)\s*td$")
NEXT_CLOSE = "next_session_close"
EventType = Literal["trade", "cash_movement", "margin_ratio", "order", "task_outcome", "login"]


@dataclass(frozen=True)
class Window:
    """A span after an event: whole trading days (ending at the session close) or a duration."""

    trading_days: int | None = None
    delta: timedelta | None = None

    def __str__(self) -> str:
        return f"{self.trading_days}td" if self.trading_days is not None else str(self.delta)


def parse_window(text: str, allow_next_close: bool = False) -> Window:
    s = str(text).strip()
    if allow_next_close and s == NEXT_CLOSE:
        return Window(trading_days=1)
    m = _TD.match(s)
    if m:
        return Window(trading_days=int(m.group(1)))
    try:
        return Window(delta=parse_duration(s))
    except ValueError:
        extra = f", {NEXT_CLOSE}" if allow_next_close else ""
        raise ValueError(f"expected 5td (trading days) or a duration such as 30d, 12h or 45min{extra}") from None


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Step(_M):
    event: EventType
    when: str | None = None


class SequenceSpec(_M):
    first: Step
    then: Step
    within: str

    @field_validator("within")
    @classmethod
    def _within(cls, v: str) -> str:
        parse_window(v)
        return v


class AbsenceSpec(_M):
    start: Step
    cured_by: Step
    deadline: str

    @field_validator("deadline")
    @classmethod
    def _deadline(cls, v: str) -> str:
        parse_window(v, allow_next_close=True)
        return v


class EventPart(_M):
    kind: Literal["event"]
    event: EventType | None = None
    when: str | None = None
    sequence: SequenceSpec | None = None
    absence: AbsenceSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> EventPart:
        given = [k for k in ("event", "sequence", "absence") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"an event rule has exactly one of event:, sequence: or absence: (got {given or 'none'})")
        if self.when is not None and self.event is None:
            raise ValueError("when: at the top goes with event:; put conditions in the steps of sequence:/absence:")
        return self

    def steps(self) -> dict[str, Step]:
        if self.event is not None:
            return {"single": Step(event=self.event, when=self.when)}
        if self.sequence is not None:
            return {"first": self.sequence.first, "then": self.sequence.then}
        assert self.absence is not None
        return {"start": self.absence.start, "cured_by": self.absence.cured_by}

    @property
    def form(self) -> str:
        return "single" if self.event else "sequence" if self.sequence else "absence"


@dataclass(frozen=True)
class EventRule:
    rule: Rule
    """The shared part as a snapshot-rule object: what policy, rendering and audit see."""
    part: EventPart
    steps: dict[str, tuple[str, expr.Node | None]]
    """step name -> (event type, checked condition or None for always)."""
    window: Window | None

    @property
    def id(self) -> str:
        return self.rule.id


@dataclass(frozen=True)
class EventRuleSet:
    rules: tuple[EventRule, ...]
    ruleset: RuleSet
    """Rules and renderer in the snapshot pipeline's shape (render_firing, record hooks)."""

    @property
    def version(self) -> str:
        return self.ruleset.version

    def get(self, rule_id: str) -> EventRule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


def _summary(part: EventPart) -> str:
    if part.form == "single":
        return f"on {part.event}" + (f": {part.when}" if part.when else "")
    if part.sequence is not None:
        s = part.sequence
        return f"{s.first.event} then {s.then.event} within {s.within}"
    assert part.absence is not None
    a = part.absence
    return f"{a.start.event} not cured by {a.cured_by.event} by {a.deadline}"


def _split(data: LineDict) -> tuple[dict[str, Any], dict[str, Any]]:
    mine = (*EVENT_KEYS, "True")  # YAML 1.1 reads `on:` as true: reported with a fix by _event_problems
    return ({k: v for k, v in data.items() if k in mine}, {k: v for k, v in data.items() if k not in mine})


def _check_steps(part: EventPart, data: LineDict, path: str, types: Mapping[str, str],
                 problems: list[Problem]) -> dict[str, tuple[str, expr.Node | None]]:
    out: dict[str, tuple[str, expr.Node | None]] = {}
    form = part.form
    for name, step in part.steps().items():
        node = None
        if step.when is not None:
            loc: tuple[Any, ...] = ("when",) if form == "single" else (form, name, "when")
            node, found = when_problems(step.when, {**types, **schema.rule_fields(step.event)},
                                        path, line_of(data, loc), ".".join(loc))
            problems += found
        out[name] = (step.event, node)
    return out


def _event_problems(e: ValidationError, data: LineDict, path: str) -> list[Problem]:
    out = []
    for err in e.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden" and str(loc[-1]) == "True":
            msg = "YAML reads the key on: as true: write event: TYPE instead"
        elif err["type"] == "extra_forbidden":
            msg = f"unknown field '{loc[-1]}'{did_you_mean(str(loc[-1]), ('event', 'when', 'first', 'then', 'within', 'start', 'cured_by', 'deadline'))}"
        elif err["type"] == "missing":
            msg, loc = "required field is missing", loc[:-1]
        elif "input" in err and not isinstance(err["input"], (dict, LineDict)):
            msg = f"{msg} (got {short_repr(err['input'])})"
        out.append(Problem(path, line_of(data, loc) or 1, key, msg))
    return out


def parse_event_rule(text: str, path: str, types: Mapping[str, str]) -> tuple[EventRule | None, list[Problem]]:
    """One event rule file; the rule (or None) and every problem found."""
    data = loads(text, path)
    if not isinstance(data, LineDict):
        return None, [Problem(path, 1, "", "an event rule file holds one mapping (id, kind: event, on/sequence/absence, action, ...)")]
    problems: list[Problem] = []
    stem = Path(path).stem
    if data.get("id") is not None and data.get("id") != stem:
        problems.append(Problem(path, data.key_lines.get("id"), "id", f"id {short_repr(data.get('id'))} must equal the file name {stem!r}"))
    ev_data, shared = _split(data)
    part = spec = None
    try:
        part = EventPart.model_validate(ev_data)
    except ValidationError as e:
        problems += _event_problems(e, data, path)
    try:
        spec = RuleSpec.model_validate({**shared, "when": _summary(part) if part else "event"})
    except ValidationError as e:
        problems += [p for p in _validation_problems(e, data, path) if p.key != "when"]
    steps = _check_steps(part, data, path, types, problems) if part else {}
    if part is None or spec is None or problems:
        return None, problems
    window = parse_window(part.sequence.within) if part.sequence else (
        parse_window(part.absence.deadline, allow_next_close=True) if part.absence else None)
    content_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
    rule = Rule(spec, path, content_hash, lambda f: False, None, "event")
    return EventRule(rule, part, steps, window), []


def template_fields() -> set[str]:
    """Variables an event rule's template may read under `client.`: facts, event_*, first_*."""
    ev = schema.all_rule_fields() | {"event_deadline"}
    return set(facts.all_fields()) | ev | {"first_" + k.removeprefix(schema.PREFIX) for k in ev}


def load_event_rules(cfg: Config, rules_dir: Path | None = None, templates_dir: Path | None = None,
                     snapshot_ids: set[str] | None = None) -> EventRuleSet:
    """Load and check every event rule with its templates; SourceErrors listing all problems."""
    d = rules_dir or cfg.path(cfg.events.rules_dir)
    problems: list[Problem] = [] if d.is_dir() else [Problem(rel(d), None, "events.rules_dir", "event rules folder not found")]
    rules: list[EventRule] = []
    types = facts.field_types()
    for path in sorted(d.glob("*.yaml")) if d.is_dir() else []:
        try:
            r, found = parse_event_rule(read_text(path, MAX_RULE_FILE_BYTES), rel(path), types)
        except SourceErrors as e:
            problems += e.problems
            continue
        problems += found
        if r is not None:
            if r.id in (snapshot_ids or set()):
                problems.append(Problem(rel(path), 1, "id", f"rule id {r.id!r} is also a snapshot rule: event and snapshot rules share the firing log, pick another id"))
            rules.append(r)
    renderer = Renderer(templates_dir or cfg.templates_path, cfg.default_locale, cfg.firm.model_dump())
    problems += renderer.load((r.rule.spec.action.template for r in rules), template_fields())
    problems += lint.check(cfg.path(cfg.compliance.lists_dir), [r.rule for r in rules],
                           {n: t.files for n, t in renderer.sets.items()}, renderer.env)
    if any(p.severity == "error" for p in problems):
        raise SourceErrors(problems)
    digest = hashlib.sha256()
    for r in sorted(rules, key=lambda r: r.id):
        digest.update(f"{r.id}\0{r.rule.content_hash}\0{renderer.template_hash(r.rule.spec.action.template) or ''}\n".encode())
    ordered = tuple(sorted(rules, key=lambda r: (-r.rule.spec.action.priority, r.id)))
    rs = RuleSet(tuple(r.rule for r in ordered), renderer, "ev" + digest.hexdigest()[:14])
    return EventRuleSet(ordered, rs)

