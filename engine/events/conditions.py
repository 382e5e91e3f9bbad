"""Translation of checked `when:` trees into durable-rules conditions (pure; no durable import).

Translation (`condition()`), chosen so durable answers exactly like
`engine.language.expr.evaluate`:

- Facts are normalised before asserting: only referenced fields are sent, a
  None/missing field is omitted, so "null" is "absent" and `is null` is `$nex`.
  durable evaluates a test on an absent property as false (so `x > 5` needs no
  guard), except the right side of a field-to-field test (`a > b`, b absent
  compares as if present): that one is guarded with `$ex`.
- Arithmetic and unary minus are not sent to durable: each distinct arithmetic
  operand is computed in Python with `engine.language.expr.value` (null in, null out,
  `x / 0` null) and asserted as a derived field `e_<n>`; the comparison over it
  stays in durable. This keeps division by zero, null propagation and Python's
  exact int arithmetic identical.
- `not` is pushed down to the leaves (De Morgan) with the null rules:
  not(a > b) == a absent | b absent | a <= b; not(x in L) == x absent | x != each;
  not(flag) == flag absent | flag != true. Constant parts are folded.
- Every rule also requires the Steward marker field, so no rule can match
  durable's own session-state object (a `$nex`-only rule otherwise matches it
  and loops forever), and every ruleset has a sentinel rule matching every
  asserted fact: a fact no rule handles makes delete_state segfault, and the
  sentinel's firing proves the fact was processed.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.language import expr as E

MARK_FIELD, MARK = "kind", "steward"
_MAX_EXACT_INT = 2**53
_JSON = Any


# ------------------------------------------------------------------ translation


def _field(name: str) -> str:
    return f"f_{name}"


_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_INVERT = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_OPS = {"!=": "$neq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}


def _and(items: Iterable[_JSON | bool]) -> _JSON | bool:
    out: list[_JSON] = []
    for i in items:
        if i is False:
            return False
        if i is True:
            continue
        out.extend(i["$and"] if "$and" in i else [i])
    return True if not out else out[0] if len(out) == 1 else {"$and": out}


def _or(items: Iterable[_JSON | bool]) -> _JSON | bool:
    out: list[_JSON] = []
    for i in items:
        if i is True:
            return True
        if i is False:
            continue
        out.extend(i["$or"] if "$or" in i else [i])
    return False if not out else out[0] if len(out) == 1 else {"$or": out}


def _cmp(op: str, name: str, right: _JSON) -> _JSON:
    return {name: right} if op == "==" else {_OPS[op]: {name: right}}


@dataclass
class _Translator:
    """Checked expression tree -> durable JSON condition, plus derived operands."""

    derived: dict[E.Node, str]

    def operand(self, node: E.Node) -> tuple[str | None, Any]:
        """(fact field, None) for a fact or derived value; (None, value) for a literal."""
        if isinstance(node, E.Literal):
            return None, node.value
        if isinstance(node, E.FieldRef):
            return _field(node.name), None
        if node not in self.derived:
            self.derived[node] = f"e_{len(self.derived) + 1}"
        return self.derived[node], None

    def cond(self, node: E.Node, positive: bool = True) -> _JSON | bool:
        if isinstance(node, E.Literal):
            return bool(node.value) == positive
        if isinstance(node, E.Not):
            return self.cond(node.item, not positive)
        if isinstance(node, (E.And, E.Or)):
            items = [self.cond(i, positive) for i in node.items]
            return _and(items) if isinstance(node, E.And) == positive else _or(items)
        if isinstance(node, E.IsNull):
            absent = node.negated != positive
            return {"$nex" if absent else "$ex": {_field(node.operand.name): 1}}
        if isinstance(node, E.Truthy):
            name = _field(node.operand.name)
            return {name: True} if positive else _or([{"$nex": {name: 1}}, {"$neq": {name: True}}])
        if isinstance(node, E.Compare):
            return self.compare(node, positive)
        if isinstance(node, E.InList):
            return self.in_list(node, positive)
        raise TypeError(f"not a condition node: {node!r}")

    def compare(self, node: E.Compare, positive: bool) -> _JSON | bool:
        (lname, lval), (rname, rval) = self.operand(node.left), self.operand(node.right)
        op = node.op
        if lname is None and rname is None:
            return E.evaluate(node, {}) == positive
        if lname is None:  # literal on the left: mirror so a field leads
            lname, rname, rval, op = rname, None, lval, _MIRROR[op]
        assert lname is not None
        # A test on an absent property is false in durable, except that an absent
        # property on the right ({"$m": name}) compares as if present: guard that one.
        right = {"$m": rname} if rname is not None else rval
        if positive:
            guard = [{"$ex": {rname: 1}}] if rname is not None else []
            return _and([*guard, _cmp(op, lname, right)])
        absent = [{"$nex": {n: 1}} for n in (lname, rname) if n is not None]
        return _or([*absent, _cmp(_INVERT[op], lname, right)])

    def in_list(self, node: E.InList, positive: bool) -> _JSON | bool:
        name, val = self.operand(node.operand)
        if name is None:
            return E.evaluate(node, {}) == positive
        member = node.negated != positive  # the non-null value must be in the list
        if member:
            test = _or(_cmp("==", name, v) for v in node.values)
        else:
            test = _and(_cmp("!=", name, v) for v in node.values)
        if positive:  # an absent property fails every test; `not in []` needs it present
            return test if test is not True else {"$ex": {name: 1}}
        return _or([{"$nex": {name: 1}}, test])


def condition(node: E.Node) -> tuple[_JSON | bool, tuple[tuple[str, E.Node], ...]]:
    """A checked tree as a durable condition on one fact, and its derived fields.

    The condition is True or False when the tree is constant. Derived fields are
    (name, value node) pairs the caller computes with `engine.language.expr.value`.
    """
    t = _Translator({})
    c = t.cond(node)
    return c, tuple((name, n) for n, name in t.derived.items())


def _number_ok(v: Any) -> Any:
    if isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        if -_MAX_EXACT_INT <= v <= _MAX_EXACT_INT:
            return v
        raise ValueError(f"integer {v} is outside +-2**53, where durable-rules is not exact")
    if isinstance(v, float):
        if math.isfinite(v):
            return v
        raise ValueError(f"non-finite number {v} cannot be sent to durable-rules")
    raise TypeError(f"fact value {v!r} ({type(v).__name__}) is not a number, string or bool")


def groups(cond: _JSON) -> int:
    """`$and`/`$or` groups in a condition; durable 2.0.28 takes at most MAX_GROUPS per rule."""
    if isinstance(cond, dict):
        return sum((k in ("$and", "$or")) + groups(v) for k, v in cond.items())
    if isinstance(cond, list):
        return sum(groups(v) for v in cond)
    return 0


def names(cond: _JSON) -> set[str]:
    """Fact property names a condition reads."""
    out: set[str] = set()
    if isinstance(cond, dict):
        for k, v in cond.items():
            if k == "$m":
                out.add(v)
            elif not k.startswith("$"):
                out.add(k)
            out |= names(v)
    elif isinstance(cond, list):
        for v in cond:
            out |= names(v)
    return out


def fnv1a32(text: str) -> int:
    """durable's 32-bit hash of property names and sids (C `char` is signed on x86)."""
    h = 2166136261
    for b in text.encode():
        h = ((h ^ (b - 256 if b > 127 else b)) * 16777619) & 0xFFFFFFFF
    return h


def alpha_load(conds: Iterable[_JSON]) -> int:
    """Upper bound on durable's alpha-node stack for one fact, and on any node's fan-out.

    Mirrors how durable builds its alpha network: `$and` chains tests, each `$or`
    branch starts at the current node and links to a fresh join node, equal
    tests under one node are shared. A fact walks the network depth first with a
    fixed stack of 512 nodes; the bound is the largest sum of out-degrees along a
    path. Past 512 durable refuses facts (error 303, after which its state is
    corrupt and later calls hang or crash), and a node with 513 tests under it
    makes ruleset creation loop forever.
    """
    children: dict[int, dict[str, int]] = {}
    links: dict[int, list[int]] = {}
    ids = itertools.count(1)

    def walk(node: int, cond: _JSON) -> int:
        if "$and" in cond:
            for item in cond["$and"]:
                node = walk(node, item)
            return node
        if "$or" in cond:
            join = next(ids)
            for item in cond["$or"]:
                links.setdefault(walk(node, item), []).append(join)
            return join
        kids = children.setdefault(node, {})
        key = json.dumps(cond, sort_keys=True)
        if key not in kids:
            kids[key] = next(ids)
        return kids[key]

    for c in conds:
        walk(0, c)
    load: dict[int, int] = {}

    def bound(node: int) -> int:
        if node not in load:
            out = [*children.get(node, {}).values(), *links.get(node, [])]
            load[node] = len(out) + max(map(bound, out), default=0)
        return load[node]

    return bound(0)


def _marked(cond: _JSON) -> _JSON:
    """The condition plus the Steward marker, merged into a top-level `$and`."""
    if cond is True:
        return {MARK_FIELD: MARK}
    items = cond["$and"] if "$and" in cond else [cond]
    return {"$and": [{MARK_FIELD: MARK}, *items]}
