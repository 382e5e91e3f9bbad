"""The durable-rules adapter: the only module in Steward that imports durable_rules.

Snapshot rules run as compiled Python predicates (engine.language.expr). This module runs
the same checked `when:` trees on durable-rules 2.0.28, inside the envelope
measured on that version (docs/durable.md), so event rules (sequences, absences,
timers) can later be built on the same layer. Two levels:

- `DurableEngine` (one per process, `get_engine()`): owns durable's host, is
  called only from the thread that created it, registers rulesets under
  content-hash names (cached; durable can never drop one), opens a bounded
  number of sessions, turns exceptions raised inside actions into exceptions
  of the call that ran them, and checks that no firing was lost.
- `DurableMatcher`: (rule_id, node) pairs -> one ruleset; `match(facts)` asserts
  one client's facts as one fact in a fresh session and returns the rule ids
  that fired, then deletes the session.

Translation (`condition()`, in engine.events.conditions) makes durable answer exactly like
`engine.language.expr.evaluate`; that module's docstring says how.

Fact values must be well typed (engine.facts.base.type_ok): numbers finite and ints
within +-2**53, the range in which durable's numbers are exact.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from durable import engine as _durable

from engine.events.conditions import (  # noqa: F401  (condition and fnv1a32 are part of this API)
    MARK,
    MARK_FIELD,
    _JSON,
    _Translator,
    _field,
    _marked,
    _number_ok,
    alpha_load,
    condition,
    fnv1a32,
    groups,
    names,
)
from engine.language import expr as E

MAX_LIVE_SESSIONS = 256
"""Sessions open at once per ruleset; durable 2.0.28 crashes near 1,000."""

MAX_GROUPS = 15
"""`$and`/`$or` groups per rule: durable 2.0.28 fails ruleset creation (error 113) past 15."""

MAX_ALPHA_LOAD = 512
"""Bound from `alpha_load`: durable 2.0.28 walks its alpha network with a 512-node stack."""

SENTINEL = "steward_seen"


class DurableError(RuntimeError):
    """durable-rules misbehaved or was used outside the safe envelope."""


class WrongThreadError(DurableError):
    """The engine was called from a thread other than the one that owns it."""


class ConditionTooLarge(DurableError):
    """A condition needs more and/or groups than one durable-rules rule holds."""


# ------------------------------------------------------------------ engine


_string = json.encoder.encode_basestring  # JSON string literal, non-ASCII kept (C speed)


def _dumps(obj: Any, ensure_ascii: bool = False, **_: Any) -> str:
    """JSON as durable's parser reads it: its parser rejects `1e-05` and `1e+20`
    (an exponent after a mantissa without a point, error 204), so such floats are
    written `1.0e-05`, the same double. Otherwise standard JSON, UTF-8 kept."""
    t = type(obj)
    if t is str:
        return _string(obj)
    if t is dict:
        return "{" + ",".join([_string(str(k)) + ":" + _dumps(v) for k, v in obj.items()]) + "}"
    if t is bool:
        return "true" if obj else "false"
    if t is int:
        return int.__repr__(obj)
    if obj is None:
        return "null"
    if t is float:
        if not math.isfinite(obj):
            raise ValueError(f"non-finite number {obj} cannot be sent to durable-rules")
        text = float.__repr__(obj)
        mantissa, e, exponent = text.partition("e")
        return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else text
    if t is list or t is tuple:
        return "[" + ",".join([_dumps(v) for v in obj]) + "]"
    return json.dumps(obj, ensure_ascii=False)  # anything else: as durable would have sent it


class _DurableJson:
    """Stands in for the `json` module inside durable.engine (facts, rulesets, state)."""

    dumps = staticmethod(_dumps)
    loads = staticmethod(json.loads)


_durable.json = _DurableJson()


class _Host(_durable.Host):  # type: ignore[misc]
    """durable's host without its two background timer threads.

    The stock host dispatches every ruleset from timer threads every 0.2 s, a
    second thread taking actions off the engine; here only the owner calls it.
    """

    def _run(self) -> None:
        pass


@dataclass(frozen=True)
class Firing:
    rule: str
    sid: str


Hook = Callable[[Firing, Any], None]
"""hook(firing, durable closure), run inside a rule's action."""


class DurableEngine:
    """The process's single durable-rules host, owned by the thread that made it."""

    def __init__(self) -> None:
        self._owner = threading.current_thread()
        self._host = _Host()
        self._names: dict[str, dict[int, str]] = {}  # ruleset -> property hash -> name
        self._known: dict[str, set[str]] = {}  # ruleset -> property names checked
        self._broken: str | None = None
        self._live: dict[str, dict[str, int]] = {}  # ruleset -> live sid -> sid hash
        self._ids = itertools.count(1)
        self._firings: list[Firing] = []
        self._errors: list[BaseException] = []
        self._hook: Hook | None = None

    def check_thread(self) -> None:
        """Raise unless called from the owning thread of a usable engine."""
        if threading.current_thread() is not self._owner:
            raise WrongThreadError(
                f"durable-rules is owned by thread {self._owner.name!r}; "
                f"called from {threading.current_thread().name!r}"
            )
        if self._broken is not None:
            raise DurableError(f"durable-rules is unusable until the process restarts: {self._broken}")

    @property
    def rulesets(self) -> frozenset[str]:
        """Names registered in this process (they stay until the process exits)."""
        return frozenset(self._names)

    def register(self, rules: Mapping[str, _JSON], prefix: str = "steward") -> str:
        """Register single-fact rules {rule name: condition or True}; returns the ruleset name.

        The name carries a hash of the definition, so the same rules reuse one
        ruleset and a changed rule gets a new one (the old one stays in memory
        until the process exits: durable cannot drop a ruleset).
        """
        self.check_thread()
        if SENTINEL in rules:
            raise ValueError(f"rule name {SENTINEL!r} is reserved")
        body = json.dumps(rules, sort_keys=True, separators=(",", ":"))
        name = f"{prefix}_{hashlib.sha256(body.encode()).hexdigest()[:24]}"
        if name in self._names:
            return name
        marked = {SENTINEL: _marked(True), **{r: _marked(c) for r, c in rules.items()}}
        for rule, m in marked.items():
            if groups(m) > MAX_GROUPS:
                raise ConditionTooLarge(
                    f"rule {rule}: {groups(m)} and/or groups; durable-rules takes {MAX_GROUPS}"
                )
        load = alpha_load(marked.values())
        if load > MAX_ALPHA_LOAD:
            raise DurableError(
                f"ruleset too wide for durable-rules: alpha load {load}, limit {MAX_ALPHA_LOAD} "
                "(see docs/durable.md); split it or shorten long `in` lists"
            )
        hashes: dict[int, str] = {}
        known = {"sid", "id", MARK_FIELD}.union(*map(names, marked.values()))
        self._check_names(hashes, known)
        definition = {r: {"all": [{"m": m}], "run": self._action(r)} for r, m in marked.items()}
        try:
            self._host.register_rulesets({name: definition})
        except _durable.durable_rules_engine.error as e:  # 107, 108: other fixed tables
            raise DurableError(f"durable-rules refused ruleset {name}: {e}") from e
        self._names[name], self._known[name], self._live[name] = hashes, known, {}
        return name

    @staticmethod
    def _check_names(hashes: dict[int, str], new: Iterable[str]) -> None:
        for n in new:
            other = hashes.setdefault(fnv1a32(n), n)
            if other != n:
                raise DurableError(f"properties {other!r} and {n!r} share a durable-rules hash")

    def _action(self, rule: str) -> Callable[[Any], None]:
        def action(c: Any) -> None:
            # durable swallows what an action raises: keep it and raise after the call.
            try:
                f = Firing(rule, str(c.s.sid))
                self._firings.append(f)
                if self._hook is not None and rule != SENTINEL:
                    self._hook(f, c)
            except BaseException as e:  # noqa: BLE001 - re-raised by _call
                self._errors.append(e)

        return action

    def _call(self, hook: Hook | None, fn: Callable[..., Any], *args: Any) -> list[Firing]:
        """Run one engine call; return its firings; raise what its actions raised."""
        self.check_thread()
        self._firings, self._errors, self._hook = [], [], hook
        try:
            fn(*args)
        finally:
            firings, errors = self._firings, self._errors
            self._firings, self._errors, self._hook = [], [], None
        if errors:
            raise errors[0]
        return firings

    @property
    def live_sessions(self) -> int:
        return sum(len(s) for s in self._live.values())

    def open(self, ruleset: str) -> Session:
        """A new session (its own sid) on a registered ruleset; close it after use."""
        self.check_thread()
        live = self._live[ruleset]
        if len(live) >= MAX_LIVE_SESSIONS:
            raise DurableError(f"{ruleset}: {len(live)} sessions open; close some first")
        taken = set(live.values())
        while True:  # sids are looked up by a 32-bit hash: no two live ones may share it
            sid = f"s{next(self._ids)}"
            h = fnv1a32(sid)
            if h not in taken:
                break
        live[sid] = h
        return Session(self, ruleset, sid)


class Session:
    """One client's durable session: its own sid, unique fact ids, closed after use."""

    def __init__(self, eng: DurableEngine, ruleset: str, sid: str):
        self.engine, self.ruleset, self.sid = eng, ruleset, sid
        self.closed = False
        self._state = False  # durable holds state for this sid (a fact was asserted)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def assert_fact(self, fields: Mapping[str, Any], hook: Hook | None = None) -> list[str]:
        """Assert one fact (property names as durable sees them); the rules it fired, in order."""
        eng = self.engine
        if self.closed:
            raise DurableError(f"session {self.sid} is closed")
        known = eng._known[self.ruleset]
        if not known.issuperset(fields):  # a property the rules do not read: check its hash
            eng._check_names(eng._names[self.ruleset], fields)
            known.update(fields)
        fact = dict(fields)
        fact.update(sid=self.sid, id=f"{self.sid}.{next(eng._ids)}")
        fact[MARK_FIELD] = MARK
        self._state = True
        try:
            firings = eng._call(hook, eng._host.assert_fact, self.ruleset, fact)
        except _durable.durable_rules_engine.error as e:
            # Refused (e.g. error 303): durable's state for this sid is then corrupt,
            # touching it crashes, and later calls can hang. Stop using the engine.
            self._state = False
            eng._broken = f"it refused fact {fact['id']}: {e}"
            raise DurableError(f"durable-rules refused fact {fact['id']}: {e}") from e
        if any(f.sid != self.sid for f in firings):
            raise DurableError(f"firings for another session during {self.sid}: {firings}")
        rules = [f.rule for f in firings if f.rule != SENTINEL]
        if len(rules) + 1 != len(firings):
            raise DurableError(f"durable-rules lost the firings of fact {fact['id']}: {firings}")
        return rules

    def close(self) -> None:
        """Delete the session's state (and with it its facts); safe to call twice."""
        if self.closed:
            return
        if self._state:  # durable 2.0.28 segfaults deleting some states it never made
            self.engine.check_thread()
            self.engine._host.delete_state(self.ruleset, self.sid)
        self.closed = True
        del self.engine._live[self.ruleset][self.sid]


_ENGINE: DurableEngine | None = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> DurableEngine:
    """The process's engine; the first caller's thread owns it for good."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = DurableEngine()
    _ENGINE.check_thread()
    return _ENGINE


# ------------------------------------------------------------------ matcher


def _fit(cond: _JSON) -> list[_JSON]:
    """Split a condition too large for one durable rule at its top-level `or`."""
    if groups(_marked(cond)) <= MAX_GROUPS:
        return [cond]
    if isinstance(cond, dict) and "$or" in cond:
        return [part for item in cond["$or"] for part in _fit(item)]
    raise ConditionTooLarge(f"{groups(_marked(cond))} and/or groups; durable-rules takes {MAX_GROUPS}")


class DurableMatcher:
    """Snapshot matching on durable-rules: same answers as the compiled predicates.

    rules: (rule_id, checked `when:` tree) pairs. on_fire(rule_id, facts), if
    given, runs inside durable's action, once per matching rule; what it raises
    is raised by `match`.
    """

    def __init__(
        self,
        rules: Iterable[tuple[str, E.Node]],
        on_fire: Callable[[str, Mapping[str, Any]], None] | None = None,
    ):
        self.engine = get_engine()
        self.rule_ids: dict[str, str] = {}  # durable rule name -> rule id
        conditions: dict[str, _JSON] = {}
        t = _Translator({})
        fields: set[str] = set()
        for i, (rule_id, node) in enumerate(rules):
            fields |= E.fields_of(node)
            cond = t.cond(node)
            if cond is False:
                continue  # never true: nothing to register
            try:
                parts = [True] if cond is True else _fit(cond)
            except ConditionTooLarge as e:
                raise ConditionTooLarge(f"rule {rule_id}: {e}") from None
            for j, part in enumerate(parts):
                name = f"r{i}" if len(parts) == 1 else f"r{i}_{j}"
                self.rule_ids[name] = rule_id
                conditions[name] = part
        used = set().union(set(), *map(names, conditions.values()))
        self.fields = tuple((n, _field(n)) for n in sorted(fields) if _field(n) in used)
        self.derived = tuple((name, n) for n, name in t.derived.items() if name in used)
        self.ruleset = self.engine.register(conditions)
        self._on_fire = on_fire

    def fact(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        """The fact asserted for a client: fields the rules read and derived
        operands (engine.language.expr.value), nulls left out."""
        out: dict[str, Any] = {}
        for name, prop in self.fields:
            v = facts.get(name)
            if v is not None:
                out[prop] = _number_ok(v)
        for prop, node in self.derived:
            v = E.value(node, facts)
            if v is not None:
                out[prop] = _number_ok(v)
        return out

    def match(self, facts: Mapping[str, Any]) -> set[str]:
        """Rule ids whose condition holds for one client's facts."""
        fact = self.fact(facts)
        hook = None
        if self._on_fire is not None:
            on_fire, rule_ids, seen = self._on_fire, self.rule_ids, set()

            def hook(firing: Firing, c: Any) -> None:
                rule_id = rule_ids[firing.rule]
                if rule_id not in seen:  # a rule split at its `or` may fire twice
                    seen.add(rule_id)
                    on_fire(rule_id, facts)

        with self.engine.open(self.ruleset) as session:
            return {self.rule_ids[r] for r in session.assert_fact(fact, hook)}

    def match_many(self, batch: Iterable[Mapping[str, Any]]) -> list[set[str]]:
        """`match` for each client in turn; one session open at a time."""
        return [self.match(f) for f in batch]
