"""Event schema: one frozen pydantic model per event type, parsed at the boundary.

Every event carries `id` (the sender's unique id: posting it twice stores it once),
`type`, `client_id` and `at` (when it happened, with a UTC offset). The other
fields depend on the type; docs/events.md lists them (generated from these models
by `event_fields_doc`). Rules read an event's fields as `event_<field>` (see
`rule_fields`); derived fields such as `event_price_gap` are computed here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from engine.errors import Problem, SourceErrors, did_you_mean

PREFIX = "event_"
NUMBER, STRING, BOOL = "number", "string", "bool"


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, allow_inf_nan=False)

    id: str = Field(min_length=1, max_length=128)
    """The sender's unique id for this event; a second post with the same id is ignored."""
    client_id: str = Field(min_length=1, max_length=64)
    at: datetime
    """When it happened, ISO 8601 with a UTC offset: 2026-11-20T10:01:00+08:00."""

    @field_validator("at")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        if v.tzinfo is None or v.utcoffset() is None:
            raise ValueError("add a UTC offset, e.g. 2026-11-20T10:01:00+08:00")
        return v


class TradeEvent(_Event):
    """An executed trade (writes a `trade` row, so the activity facts see it at once)."""

    type: Literal["trade"]
    symbol: str = Field(min_length=1, max_length=32)
    side: Literal["buy", "sell"]
    quantity: float = Field(gt=0)
    price: float = Field(gt=0)
    """Execution price, CNY."""
    market_price: float | None = Field(default=None, gt=0)
    """Reference market price (last or previous close) when the trade executed; gives price_gap."""


class CashMovementEvent(_Event):
    """Money in or out of the account (writes a `cash_movement` row)."""

    type: Literal["cash_movement"]
    kind: Literal["deposit", "withdrawal", "transfer_out"]
    amount: float = Field(gt=0)
    """CNY, always positive; `kind` gives the direction."""


class MarginRatioEvent(_Event):
    """A maintenance ratio reported by the margin system (updates that day's `margin_snapshot`)."""

    type: Literal["margin_ratio"]
    maintenance_ratio: float = Field(ge=0)
    """As a fraction: 1.5 = 150%."""


class OrderEvent(_Event):
    """An order placed, cancelled or rejected (not a trade: facts are unchanged)."""

    type: Literal["order"]
    order_id: str = Field(min_length=1, max_length=64)
    status: Literal["placed", "cancelled", "rejected"]
    symbol: str = Field(min_length=1, max_length=32)
    side: Literal["buy", "sell"]
    quantity: float = Field(gt=0)
    price: float = Field(gt=0)
    market_price: float | None = Field(default=None, gt=0)


class TaskOutcomeEvent(_Event):
    """An advisor's call outcome (writes a `contact` row: reached/declined set callback_done)."""

    type: Literal["task_outcome"]
    outcome: Literal["reached", "declined", "wrong_number", "no_answer", "callback_later"]
    task_id: int | None = None
    """The call task (firing id) this closes, if any; it must be open."""
    by_user: str | None = Field(default=None, max_length=64)


class LoginEvent(_Event):
    """A client login to the app or web (facts are unchanged)."""

    type: Literal["login"]
    channel: Literal["app", "web", "phone"]


Event = Annotated[
    Union[TradeEvent, CashMovementEvent, MarginRatioEvent, OrderEvent, TaskOutcomeEvent, LoginEvent],
    Field(discriminator="type"),
]
EVENT_MODELS: dict[str, type[_Event]] = {
    "trade": TradeEvent, "cash_movement": CashMovementEvent, "margin_ratio": MarginRatioEvent,
    "order": OrderEvent, "task_outcome": TaskOutcomeEvent, "login": LoginEvent,
}
EVENT_TYPES = tuple(EVENT_MODELS)
_ADAPTER: TypeAdapter[Any] = TypeAdapter(Event)

DERIVED: dict[str, dict[str, tuple[str, str]]] = {
    "trade": {"price_gap": (NUMBER, "|price - market_price| / market_price; null without market_price."),
              "amount": (NUMBER, "price x quantity, CNY.")},
    "order": {"price_gap": (NUMBER, "|price - market_price| / market_price; null without market_price."),
              "amount": (NUMBER, "price x quantity, CNY.")},
}
COMMON = {"day": (STRING, "Local date of `at` (YYYY-MM-DD, config timezone)."),
          "time": (STRING, "Local time of `at` (HH:MM)."), "type": (STRING, "The event type.")}


def _type_name(annotation: Any) -> str:
    text = str(annotation)
    if "float" in text or "int" in text:
        return NUMBER
    if "bool" in text:
        return BOOL
    return STRING


def fields_of(event_type: str) -> dict[str, tuple[str, str]]:
    """Field -> (type, doc) of one event type as rules see it (without the prefix)."""
    model = EVENT_MODELS[event_type]
    out = {k: v for k, v in COMMON.items()}
    for name, f in model.model_fields.items():
        if name in ("at", "type"):
            continue
        out[name] = (_type_name(f.annotation), (f.description or "").strip())
    out.update(DERIVED.get(event_type, {}))
    return out


def rule_fields(event_type: str) -> dict[str, str]:
    """`event_<field>` -> expression type, for checking a rule's `when:` on this event type."""
    return {PREFIX + k: t for k, (t, _) in fields_of(event_type).items()}


def all_rule_fields() -> set[str]:
    return {k for t in EVENT_TYPES for k in rule_fields(t)}


def _gap(price: float, market: float | None) -> float | None:
    return abs(price - market) / market if market else None


def rule_values(ev: _Event, tz: ZoneInfo) -> dict[str, Any]:
    """The event as `event_<field>` values (JSON-native: rules, templates and the audit record)."""
    data = ev.model_dump(mode="json", exclude={"at"})
    local = ev.at.astimezone(tz)
    data.update(day=local.date().isoformat(), time=local.strftime("%H:%M"))
    if isinstance(ev, (TradeEvent, OrderEvent)):
        data.update(price_gap=_gap(ev.price, ev.market_price), amount=ev.price * ev.quantity)
    return {PREFIX + k: v for k, v in data.items()}


def local_day(ev: _Event, tz: ZoneInfo) -> date:
    return ev.at.astimezone(tz).date()


def parse_event(data: Any, source: str = "<event>", line: int | None = None) -> _Event:
    """One event from decoded JSON; SourceErrors naming source, line, key and value otherwise."""
    if not isinstance(data, Mapping):
        raise SourceErrors([Problem(source, line, "", f"an event is a JSON object, got {type(data).__name__}")])
    kind = data.get("type")
    if kind not in EVENT_MODELS:
        hint = did_you_mean(str(kind), EVENT_TYPES) if isinstance(kind, str) else ""
        raise SourceErrors([Problem(source, line, "type", f"unknown event type {kind!r}{hint}; "
                                    f"use one of {', '.join(EVENT_TYPES)}")])
    try:
        return _ADAPTER.validate_python(dict(data))  # type: ignore[no-any-return]
    except ValidationError as e:
        raise SourceErrors([_problem(err, data, source, line, str(kind)) for err in e.errors()]) from e


def _problem(err: Any, data: Mapping[str, Any], source: str, line: int | None, kind: str) -> Problem:
    loc = [str(p) for p in err["loc"] if str(p) != kind]
    key = ".".join(loc)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        known = tuple(EVENT_MODELS[kind].model_fields)
        msg = f"unknown field for a {kind} event{did_you_mean(key, known)}"
    elif err["type"] == "missing":
        msg = "required field is missing"
    elif key in data:
        got = repr(data[key])
        msg = f"{msg} (got {got if len(got) <= 80 else got[:80] + '...'})"
    return Problem(source, line, key, msg)


MAX_JSON_DEPTH = 32
"""Deepest nesting of JSON in an event post or file; deeper is refused before decoding."""


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(r"[\[\]{}]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number: send finite numbers")


def decode_json(text: str) -> Any:
    """json.loads for untrusted text: depth bounded before decoding, NaN/Infinity refused.

    Raises ValueError with a message fit for the sender.
    """
    depth = 0
    for m in _BRACKETS.finditer(_STRINGS.sub('""', text)):  # json.loads would recurse once per level
        depth += 1 if m.group() in "[{" else -1
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"JSON nested too deeply (limit {MAX_JSON_DEPTH})")
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
    except RecursionError as e:
        raise ValueError(f"JSON nested too deeply (limit {MAX_JSON_DEPTH})") from e


def parse_jsonl(text: str, source: str) -> list[_Event]:
    """Every event of a JSON-lines text; all problems of all lines collected, then raised."""
    events: list[_Event] = []
    problems: list[Problem] = []
    for n, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            events.append(parse_event(decode_json(raw), source, n))
        except SourceErrors as e:
            problems += e.problems
        except ValueError as e:
            problems.append(Problem(source, n, "", str(e)[:300]))
    if problems:
        raise SourceErrors(problems)
    return events


AnyEvent = _Event


def event_fields_doc() -> str:
    """Markdown tables of every event type's fields (docs/events.md)."""
    lines: list[str] = []
    for t in EVENT_TYPES:
        lines += [f"### `{t}`", "", (EVENT_MODELS[t].__doc__ or "").strip(), "",
                  "| field in rules | type | meaning |", "|---|---|---|"]
        for name, (typ, doc) in fields_of(t).items():
            lines.append(f"| `{PREFIX}{name}` | {typ} | {doc} |")
        lines.append("")
    return "\n".join(lines)
