"""Rules: YAML files (one rule each, file name = rule id) and decorated Python rules.

`load_rules` parses every file in the configured rule folders, checks each
field and each `when:` expression against the known fact fields, and collects
every problem of every file before raising one `SourceErrors`.
"""

from __future__ import annotations

import hashlib
import re
import reprlib
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.language import expr
from engine.errors import Problem, SourceErrors, did_you_mean, rel
from engine.yamlio import LineDict, line_of, loads, read_text

MAX_RULE_FILE_BYTES = 64 * 1024
"""Largest rule file (YAML or Python) `load_rules` reads."""

RULE_ID = re.compile(r"^[a-z][a-z0-9_]{1,63}$")
_DURATION = re.compile(r"^(\d+)\s*(d|w|h|min)$")
_UNITS = {"d": "days", "w": "weeks", "h": "hours", "min": "minutes"}


def parse_duration(text: str) -> timedelta:
    """`30d`, `2w`, `12h` or `45min` -> timedelta; raises ValueError otherwise."""
    m = _DURATION.match(str(text).strip())
    if not m:
        raise ValueError(f"expected a duration such as 30d, 2w, 12h or 45min, got {text!r}")
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Action(_Model):
    type: Literal["task", "message"]
    """`task`: an advisor call task; `message`: a message sent to the client."""
    channel: Literal["phone", "sms", "email", "im"]
    template: str
    """Folder under templates/ holding one `<locale>.j2` file per language."""
    priority: int = Field(50, ge=0, le=100)
    """Higher goes first when several rules fire for one client on one day."""
    due: str | None = None
    """Tasks only: how long the advisor has, e.g. `3d`."""

    @field_validator("due")
    @classmethod
    def _due(cls, v: str | None) -> str | None:
        if v is not None:
            parse_duration(v)
        return v

    @model_validator(mode="after")
    def _shape(self) -> Action:
        if self.type == "task" and self.channel != "phone":
            raise ValueError("a task goes to the advisor's phone list: use channel: phone")
        if self.type == "message" and self.channel == "phone":
            raise ValueError("a message needs channel sms, email or im (phone is for tasks)")
        if self.type == "message" and self.due is not None:
            raise ValueError("due applies to tasks only")
        return self

    @property
    def due_delta(self) -> timedelta | None:
        return parse_duration(self.due) if self.due else None


class RuleSpec(_Model):
    id: str
    title: str
    description: str
    owner: str
    rule_class: Literal["service", "marketing"] = Field(alias="class")
    when: str
    action: Action
    cooldown: str = "30d"
    """No second firing for the same client within this period."""
    enabled: bool = True
    tags: tuple[str, ...] = ()
    urgent: bool = False
    """Evaluated intraday too; an urgent service message may be sent outside the contact window."""
    outside_window: Literal["hold", "drop"] = "hold"
    """Messages outside the client's contact window: hold until it opens, or drop."""
    on_conflict: Literal["defer", "drop"] = "defer"
    """When a higher-priority marketing message wins the day: defer to the next day, or drop."""
    product: str | None = None
    """Code or name of the product the message offers, if any (shown to reviewers)."""
    product_risk: Literal["R1", "R2", "R3", "R4", "R5"] | None = None
    """Risk level of the offered product: the suitability gate blocks unsuitable clients."""

    @field_validator("cooldown")
    @classmethod
    def _cooldown(cls, v: str) -> str:
        parse_duration(v)
        return v

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not RULE_ID.match(v):
            raise ValueError("use lower-case letters, digits and '_' (2-64 characters, starting with a letter)")
        return v

    @property
    def cooldown_delta(self) -> timedelta:
        return parse_duration(self.cooldown)


RULE_KEYS = tuple(a.alias or n for n, a in RuleSpec.model_fields.items())


@dataclass(frozen=True)
class Rule:
    """A loaded rule: its spec, compiled condition and content hash."""

    spec: RuleSpec
    path: str
    content_hash: str
    predicate: expr.Predicate
    node: expr.Node | None
    """The checked expression tree (None for Python rules)."""
    kind: str = "yaml"

    @property
    def id(self) -> str:
        return self.spec.id


# ------------------------------------------------------------------ python rules


def python_rule(**spec: Any) -> Callable[[Callable[[Mapping[str, Any]], bool]], Callable[[Mapping[str, Any]], bool]]:
    """Declare a Python rule: the decorated function takes a facts mapping and returns bool.

    Takes the same keys as a YAML rule except `when` (`class` may be passed as `class_`).
    """

    def deco(fn: Callable[[Mapping[str, Any]], bool]) -> Callable[[Mapping[str, Any]], bool]:
        data = {("class" if k == "class_" else k): v for k, v in spec.items()}
        fn.__steward_rule__ = data  # type: ignore[attr-defined]
        return fn

    return deco


def _load_python(path: Path, problems: list[Problem]) -> list[Rule]:
    """Import a Python rule file from the bytes read once, so its content hash names exactly what ran."""
    name = f"steward_rules_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}_{path.stem}"
    try:
        raw = path.read_bytes()
    except OSError as e:
        problems.append(Problem(rel(path), None, "", f"cannot read this Python rule file: {e}"))
        return []
    module = types.ModuleType(name)
    module.__file__ = str(path)
    try:
        sys.modules[name] = module
        exec(compile(raw, str(path), "exec"), module.__dict__)  # noqa: S102 - a rule file, imported deliberately
    except Exception as e:  # noqa: BLE001 - user code: report and go on collecting
        line = e.lineno if isinstance(e, SyntaxError) else None
        problems.append(Problem(rel(path), line, "", f"cannot import: {type(e).__name__}: {e}"))
        return []
    finally:
        sys.modules.pop(name, None)
    content_hash = hashlib.sha256(raw).hexdigest()
    rules = []
    for obj in vars(module).values():
        data = getattr(obj, "__steward_rule__", None)
        if data is None or not callable(obj):
            continue
        line = obj.__code__.co_firstlineno if hasattr(obj, "__code__") else None
        try:
            rs = RuleSpec.model_validate({**data, "when": f"python:{obj.__name__}"})
        except ValidationError as e:
            for err in e.errors():
                problems.append(Problem(rel(path), line, ".".join(map(str, err["loc"])), err["msg"]))
            continue
        rules.append(Rule(rs, rel(path), content_hash, _guarded(obj, rs.id), None, "python"))
    if not rules:
        problems.append(Problem(rel(path), None, "", "defines no rule (decorate a function with @python_rule)"))
    return rules


class RuleRuntimeError(RuntimeError):
    pass


def _guarded(fn: Callable[[Mapping[str, Any]], bool], rule_id: str) -> expr.Predicate:
    def pred(facts: Mapping[str, Any]) -> bool:
        try:
            return bool(fn(facts))
        except Exception as e:
            raise RuleRuntimeError(f"python rule {rule_id!r} failed on client {facts.get('client_id')!r}: {e}") from e

    return pred


# ------------------------------------------------------------------ yaml rules


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxtuple = 2, 4, 4, 4
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 80, 80, 40


def short_repr(value: Any) -> str:
    """A bounded repr of user input: never walks or prints more than a few items."""
    return _REPR.repr(value)


def when_problems(when: str, types: Mapping[str, str], path: str, line: int | None, key: str) -> tuple[expr.Node | None, list[Problem]]:
    """Parse and check one `when:` expression; every problem located at `path:line`."""
    try:
        node, errors = expr.check_all(expr.parse(when), types)
    except expr.ExprError as e:
        node, errors = None, [e]
    return node, [Problem(path, line, key, f"{e.message} at column {e.column + 1}: {expr.clip(when)}") for e in errors]


def _validation_problems(e: ValidationError, data: LineDict, path: str) -> list[Problem]:
    out = []
    for err in e.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) if loc else ""
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            known = RULE_KEYS if len(loc) == 1 else tuple(Action.model_fields)
            hint = did_you_mean(str(loc[-1]), known)
            if not hint and len(loc) == 1 and did_you_mean(str(loc[-1]), Action.model_fields):
                hint = did_you_mean(str(loc[-1]), Action.model_fields)[:-2] + " under action:?)"
            msg = f"unknown field '{loc[-1]}'{hint}"
        elif err["type"] == "missing":
            msg = "required field is missing"
            loc = loc[:-1]
        elif "input" in err and not isinstance(err["input"], dict):
            msg = f"{msg} (got {short_repr(err['input'])})"
        out.append(Problem(path, line_of(data, loc), key, msg))
    return out


def parse_rule_text(text: str, path: str, field_types: Mapping[str, str]) -> tuple[Rule | None, list[Problem]]:
    """Parse one YAML rule. Returns the rule (or None) and every problem found."""
    data = loads(text, path)
    if not isinstance(data, LineDict):
        return None, [Problem(path, 1, "", "a rule file holds one mapping of fields (id, title, when, action, ...)")]
    problems: list[Problem] = []
    stem = Path(path).stem
    if data.get("id") is not None and data.get("id") != stem:
        problems.append(Problem(path, data.key_lines.get("id"), "id", f"id {short_repr(data.get('id'))} must equal the file name {stem!r}"))
    try:
        spec = RuleSpec.model_validate(data)
    except ValidationError as e:
        problems += _validation_problems(e, data, path)
        spec = None
    when = data.get("when")
    node: expr.Node | None = None
    if isinstance(when, str):
        node, found = when_problems(when, field_types, path, data.key_lines.get("when"), "when")
        problems += found
    if spec is None or node is None or problems:
        return None, problems
    content_hash = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Rule(spec, path, content_hash, expr.compile_predicate(node, spec.id), node), []


def rule_files(dirs: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        if d.is_dir():
            files += sorted(p for p in d.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml", ".py") and not p.name.startswith("_"))
    return files


def load_rules(dirs: Iterable[Path], field_types: Mapping[str, str]) -> tuple[list[Rule], list[Problem]]:
    """Load every rule of the given folders; returns rules and all problems (not raised)."""
    dirs = list(dirs)
    problems: list[Problem] = [Problem(rel(d), None, "rules_dirs", "rules folder not found") for d in dirs if not d.is_dir()]
    rules: list[Rule] = []
    for path in rule_files(dirs):
        if path.suffix == ".py":
            rules += _load_python(path, problems)
            continue
        try:
            rule, found = parse_rule_text(read_text(path, MAX_RULE_FILE_BYTES), rel(path), field_types)
        except SourceErrors as e:
            problems += e.problems
            continue
        problems += found
        if rule:
            rules.append(rule)
    seen: dict[str, Rule] = {}
    for r in rules:
        if r.id in seen:
            problems.append(Problem(r.path, None, "id", f"rule id {r.id!r} is also defined in {seen[r.id].path}"))
        seen[r.id] = r
    return rules, problems
