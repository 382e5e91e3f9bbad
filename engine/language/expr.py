"""The `when:` expression language: tokenizer, parser, type checker, compiler.

An expression parses once into a small typed tree. From the tree the engine
compiles a plain Python predicate (generated from the tree, never from user
text), interprets it to explain a decision, and the durable-rules adapter
translates it into a ruleset.

Semantics, documented in docs/rules.md:
- A comparison, `in` or `not in` with a null operand is false.
- `x / 0` is null (so any comparison over it is false).
- `not` inverts the truth value: `not (x > 5)` is true when x is null.
- A bare boolean field is true only when the field is true.
- `40%` is the number 0.4.

Limits (docs/rule-language.md): an expression over a limit is an `ExprError` naming the
limit, so hostile or careless input never reaches Python's recursion limit, its parser
or float overflow.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import did_you_mean
from engine.language.exprtree import (  # noqa: F401 - the tree is part of this module's API
    BOOL as BOOL, MAX_CONSTANT_SCALE as MAX_CONSTANT_SCALE, MAX_EXPR_DEPTH as MAX_EXPR_DEPTH,
    MAX_EXPR_LENGTH as MAX_EXPR_LENGTH, MAX_LIST_ITEMS as MAX_LIST_ITEMS, MAX_NUMBER_DIGITS as MAX_NUMBER_DIGITS,
    MAX_STRING_LENGTH as MAX_STRING_LENGTH, NUMBER as NUMBER, STRING as STRING, And as And, Arith as Arith,
    Compare as Compare, Condition as Condition, ExprError as ExprError, FieldRef as FieldRef,
    FieldTypes as FieldTypes, InList as InList, IsNull as IsNull, Literal as Literal, Neg as Neg, Node as Node,
    Not as Not, Or as Or, Truthy as Truthy, _has_div as _has_div, fields_of as fields_of, unparse as unparse,
)


# ---------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>[0-9]+(?:_[0-9]+)*(?:\.[0-9]+(?:_[0-9]+)*)?%?)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|<|>|\+|-|\*|/|\(|\)|\[|\]|,)
    """,
    re.VERBOSE,
)
KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}


@dataclass(frozen=True)
class Token:
    kind: str  # number string ident op kw end
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if not m:
            hint = " (use == to compare)" if text[i] == "=" else ""
            raise ExprError(f"unexpected character {text[i]!r}{hint}", i)
        kind = m.lastgroup or ""
        tok = m.group()
        if kind == "number" and m.end() < len(text) and (text[m.end()].isalnum() or text[m.end()] in "_."):
            raise ExprError(f"malformed number {clip(text[i:m.end() + 1])} (write digits like 1000 or 1_000 or 2.5)", i)
        if kind == "ident" and tok in KEYWORDS:
            kind = "kw"
        if kind != "ws":
            tokens.append(Token(kind, tok, i))
        i = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# ---------------------------------------------------------------- parser


class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    def nest(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_EXPR_DEPTH:
            raise ExprError(f"expression nested too deeply (limit {MAX_EXPR_DEPTH})", pos)

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def accept(self, kind: str, text: str | None = None) -> Token | None:
        t = self.tok
        if t.kind == kind and (text is None or t.text == text):
            self.i += 1
            return t
        return None

    def expect(self, kind: str, text: str, what: str) -> Token:
        t = self.accept(kind, text)
        if t is None:
            raise ExprError(f"expected {what}, found {self.tok.text or 'end of expression'!r}", self.tok.pos)
        return t

    def parse(self) -> Node:
        node = self.or_expr()
        if self.tok.kind != "end":
            raise ExprError(f"unexpected {self.tok.text!r} (missing 'and' or 'or'?)", self.tok.pos)
        return node

    def or_expr(self) -> Node:
        pos = self.tok.pos
        items = [self.and_expr()]
        while self.accept("kw", "or"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items), pos)

    def and_expr(self) -> Node:
        pos = self.tok.pos
        items = [self.not_expr()]
        while self.accept("kw", "and"):
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items), pos)

    def not_expr(self) -> Node:
        t = self.accept("kw", "not")
        if t:
            self.nest(t.pos)
            node = Not(self.not_expr(), t.pos)
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> Node:
        pos = self.tok.pos
        left = self.sum()
        t = self.tok
        if t.kind == "op" and t.text in ("==", "!=", "<", "<=", ">", ">="):
            self.i += 1
            return Compare(t.text, left, self.sum(), t.pos)
        if self.accept("kw", "in"):
            return InList(left, self.literal_list(), False, t.pos)
        if t.kind == "kw" and t.text == "not" and self.tokens[self.i + 1].text == "in":
            self.i += 2
            return InList(left, self.literal_list(), True, t.pos)
        if self.accept("kw", "is"):
            negated = bool(self.accept("kw", "not"))
            self.expect("kw", "null", "'null' after 'is'")
            if not isinstance(left, FieldRef):
                raise ExprError("'is null' applies to a fact field", pos)
            return IsNull(left, negated, t.pos)
        return left

    def literal_list(self) -> tuple[float | int | str | bool, ...]:
        self.expect("op", "[", "'[' to start the list")
        values: list[float | int | str | bool] = []
        if not self.accept("op", "]"):
            while True:
                node = self.unary()
                if not isinstance(node, Literal):
                    raise ExprError("lists hold literal values only", node.pos)
                if len(values) >= MAX_LIST_ITEMS:
                    raise ExprError(f"list has too many values (limit {MAX_LIST_ITEMS})", node.pos)
                values.append(node.value)
                if self.accept("op", "]"):
                    break
                self.expect("op", ",", "',' or ']'")
        return tuple(values)

    def sum(self) -> Node:
        node = self.term()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            t = self.tok
            self.i += 1
            node = Arith(t.text, node, self.term(), t.pos)
            self.chain(node)
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/"):
            t = self.tok
            self.i += 1
            node = Arith(t.text, node, self.unary(), t.pos)
            self.chain(node)
        return node

    def chain(self, node: Node) -> None:
        """Chained arithmetic nests to the left: bound it like parentheses."""
        if self.depth + _depth(node) > MAX_EXPR_DEPTH:
            raise ExprError(f"expression nested too deeply (limit {MAX_EXPR_DEPTH})", node.pos)

    def unary(self) -> Node:
        t = self.accept("op", "-")
        if t:
            self.nest(t.pos)
            operand = self.unary()
            self.depth -= 1
            if isinstance(operand, Literal) and isinstance(operand.value, (int, float)) and not isinstance(operand.value, bool):
                return Literal(-operand.value, t.pos)
            return Neg(operand, t.pos)
        return self.atom()

    def atom(self) -> Node:
        t = self.tok
        self.i += 1
        if t.kind == "number":
            return Literal(_number(t), t.pos)
        if t.kind == "string":
            body = t.text[1:-1]
            if len(body) > MAX_STRING_LENGTH:
                raise ExprError(f"string of {len(body)} characters is too long (limit {MAX_STRING_LENGTH})", t.pos)
            return Literal(re.sub(r"\\(.)", r"\1", body), t.pos)
        if t.kind == "kw" and t.text in ("true", "false"):
            return Literal(t.text == "true", t.pos)
        if t.kind == "kw" and t.text == "null":
            raise ExprError("compare with null using 'is null' or 'is not null'", t.pos)
        if t.kind == "ident":
            return FieldRef(t.text, t.pos)
        if t.kind == "op" and t.text == "(":
            self.nest(t.pos)
            node = self.or_expr()
            self.expect("op", ")", "')'")
            self.depth -= 1
            return node
        self.i -= 1
        raise ExprError(f"expected a value, found {t.text or 'end of expression'!r}", t.pos)


def _number(t: Token) -> float | int:
    text = t.text.replace("_", "")
    digits = sum(c.isdigit() for c in text)
    if digits > MAX_NUMBER_DIGITS:
        raise ExprError(f"number with {digits} digits is too long (limit {MAX_NUMBER_DIGITS})", t.pos)
    if text.endswith("%"):
        return float(text[:-1]) / 100
    v: float | int = float(text) if "." in text else int(text)
    if not math.isfinite(v):  # unreachable within the digit limit; kept as the invariant
        raise ExprError("number is not finite", t.pos)
    return v


def _scale(node: Node) -> float:
    """Upper bound of how much the constants of a value tree can scale a fact value."""
    if isinstance(node, Literal) and isinstance(node.value, (int, float)):
        return max(1.0, abs(float(node.value)))
    if isinstance(node, Neg):
        return _scale(node.operand)
    if isinstance(node, Arith):
        left, right = _scale(node.left), _scale(node.right)
        return left * right if node.op == "*" else left + right if node.op in "+-" else left
    return 1.0


def _depth(node: Node) -> int:
    """Depth of a value tree (Arith and Neg), iteratively."""
    best, stack = 0, [(node, 1)]
    while stack:
        n, d = stack.pop()
        best = max(best, d)
        if isinstance(n, Arith):
            stack += [(n.left, d + 1), (n.right, d + 1)]
        elif isinstance(n, Neg):
            stack.append((n.operand, d + 1))
    return best


def parse(text: str) -> Node:
    if not isinstance(text, str) or not text.strip():
        raise ExprError("empty expression", 0)
    if len(text) > MAX_EXPR_LENGTH:
        raise ExprError(f"expression of {len(text)} characters is too long (limit {MAX_EXPR_LENGTH})", 0)
    return _Parser(text).parse()


def clip(text: str, limit: int = 120) -> str:
    """Repr of user text for a message, never longer than about `limit` characters."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} characters)"


def check_all(node: Node, types: FieldTypes) -> tuple[Node | None, list[ExprError]]:
    """Type-check like `check`, but report every unknown fact field, not only the first."""
    unknown = sorted(_refs(node, lambda r: r.name not in types), key=lambda r: r.pos)
    if unknown:
        return None, [ExprError(f"unknown fact field '{r.name}'{did_you_mean(r.name, types)}", r.pos) for r in unknown]
    try:
        return check(node, types), []
    except ExprError as e:
        return None, [e]


def _refs(node: Node, keep: Callable[[FieldRef], bool]) -> list[FieldRef]:
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        if isinstance(n, FieldRef):
            if keep(n):
                out.append(n)
        elif isinstance(n, (Truthy, IsNull, InList, Neg)):
            stack.append(n.operand)
        elif isinstance(n, (Arith, Compare)):
            stack += [n.left, n.right]
        elif isinstance(n, (And, Or)):
            stack += list(n.items)
        elif isinstance(n, Not):
            stack.append(n.item)
    return out


# ---------------------------------------------------------------- type check


def _type_of(node: Node, types: FieldTypes) -> str:
    """Type of a value node; raises ExprError on a type problem or unknown field."""
    if isinstance(node, Literal):
        if isinstance(node.value, bool):
            return BOOL
        return STRING if isinstance(node.value, str) else NUMBER
    if isinstance(node, FieldRef):
        if node.name not in types:
            raise ExprError(f"unknown fact field '{node.name}'{did_you_mean(node.name, types)}", node.pos)
        return types[node.name]
    if isinstance(node, Neg):
        if _type_of(node.operand, types) != NUMBER:
            raise ExprError("'-' needs a number", node.pos)
        return NUMBER
    if isinstance(node, Arith):
        for side in (node.left, node.right):
            if _type_of(side, types) != NUMBER:
                raise ExprError(f"'{node.op}' needs numbers on both sides", side.pos)
        if _scale(node) > MAX_CONSTANT_SCALE:
            raise ExprError(f"constants in this term are too large: they could overflow (limit {MAX_CONSTANT_SCALE:g})", node.pos)
        return NUMBER
    raise ExprError("a condition cannot be used as a value here", node.pos)


def check(node: Node, types: FieldTypes) -> Node:
    """Type-check a condition tree; a bare bool field becomes `Truthy`. Returns the tree."""
    if isinstance(node, (And, Or)):
        return type(node)(tuple(check(i, types) for i in node.items), node.pos)
    if isinstance(node, Not):
        return Not(check(node.item, types), node.pos)
    if isinstance(node, Compare):
        lt, rt = _type_of(node.left, types), _type_of(node.right, types)
        if lt != rt:
            raise ExprError(f"cannot compare {lt} with {rt}", node.pos)
        if lt != NUMBER and node.op not in ("==", "!="):
            raise ExprError(f"'{node.op}' needs numbers; {lt} values take == or !=", node.pos)
        return node
    if isinstance(node, InList):
        ot = _type_of(node.operand, types)
        for v in node.values:
            vt = _type_of(Literal(v), types)
            if vt != ot:
                raise ExprError(f"list value {v!r} is a {vt}, the left side is a {ot}", node.pos)
        return node
    if isinstance(node, IsNull):
        _type_of(node.operand, types)
        return node
    if isinstance(node, FieldRef):
        if _type_of(node, types) != BOOL:
            raise ExprError(f"'{node.name}' is a {types[node.name]}, not a condition (compare it)", node.pos)
        return Truthy(node, node.pos)
    if isinstance(node, Literal) and isinstance(node.value, bool):
        return node
    raise ExprError("expected a condition (a comparison, 'in', 'is null' or a boolean field)", node.pos)


# ---------------------------------------------------------------- interpreter


def value(node: Node, facts: Mapping[str, Any]) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, FieldRef):
        return facts.get(node.name)
    if isinstance(node, Neg):
        v = value(node.operand, facts)
        return None if v is None else -v
    if isinstance(node, Arith):
        a, b = value(node.left, facts), value(node.right, facts)
        if a is None or b is None:
            return None
        if node.op == "+":
            return a + b
        if node.op == "-":
            return a - b
        if node.op == "*":
            return a * b
        return None if b == 0 else a / b
    raise TypeError(f"not a value node: {node!r}")


_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def evaluate(node: Node, facts: Mapping[str, Any]) -> bool:
    """Reference interpreter; the compiled predicate must always agree with it."""
    if isinstance(node, Literal):
        return bool(node.value)
    if isinstance(node, Compare):
        a, b = value(node.left, facts), value(node.right, facts)
        return a is not None and b is not None and _CMP[node.op](a, b)
    if isinstance(node, InList):
        v = value(node.operand, facts)
        return v is not None and ((v in node.values) != node.negated)
    if isinstance(node, IsNull):
        return (facts.get(node.operand.name) is None) != node.negated
    if isinstance(node, Truthy):
        return facts.get(node.operand.name) is True
    if isinstance(node, And):
        return all(evaluate(i, facts) for i in node.items)
    if isinstance(node, Or):
        return any(evaluate(i, facts) for i in node.items)
    if isinstance(node, Not):
        return not evaluate(node.item, facts)
    raise TypeError(f"not a condition node: {node!r}")


# ---------------------------------------------------------------- compiler


def _safe_div(a: Any, b: Any) -> Any:
    return None if a is None or b is None or b == 0 else a / b


def _safe(op: str) -> Callable[[Any, Any], Any]:
    f = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}[op]

    def g(a: Any, b: Any) -> Any:
        return None if a is None or b is None else f(a, b)  # type: ignore[no-untyped-call]

    return g


_RUNTIME: dict[str, Any] = {
    "_div": _safe_div,
    "_add": _safe("+"),
    "_sub": _safe("-"),
    "_mul": _safe("*"),
    "_neg": lambda a: None if a is None else -a,
}
_SAFE_NAMES = {"+": "_add", "-": "_sub", "*": "_mul", "/": "_div"}
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Compiler:
    def __init__(self) -> None:
        self.temps = 0

    def var(self, name: str) -> str:
        if not _IDENT.match(name):  # names come from the tokenizer; belt and braces
            raise ValueError(f"bad field name {name!r}")
        return f"v_{name}"

    def val(self, node: Node, safe: bool) -> str:
        if isinstance(node, Literal):
            return repr(node.value)
        if isinstance(node, FieldRef):
            return self.var(node.name)
        if isinstance(node, Neg):
            inner = self.val(node.operand, safe)
            return f"_neg({inner})" if safe else f"(-{inner})"
        if isinstance(node, Arith):
            left, right = self.val(node.left, safe), self.val(node.right, safe)
            if safe:
                return f"{_SAFE_NAMES[node.op]}({left}, {right})"
            return f"({left} {node.op} {right})"
        raise TypeError(node)

    def operand(self, node: Node) -> tuple[str, list[str]]:
        """Code for a value operand and the guards that make it non-null."""
        if isinstance(node, Literal):
            return repr(node.value), []
        if _has_div(node):
            self.temps += 1
            t = f"t{self.temps}"
            return t, [f"(({t} := {self.val(node, True)}) is not None)"]
        guards = [f"{self.var(n)} is not None" for n in sorted(fields_of(node))]
        return self.val(node, False), guards

    def cond(self, node: Node) -> str:
        if isinstance(node, Literal):
            return repr(bool(node.value))
        if isinstance(node, Compare):
            left, lg = self.operand(node.left)
            right, rg = self.operand(node.right)
            return "(" + " and ".join([*lg, *rg, f"{left} {node.op} {right}"]) + ")"
        if isinstance(node, InList):
            v, g = self.operand(node.operand)
            op = "not in" if node.negated else "in"
            return "(" + " and ".join([*g, f"{v} {op} {node.values!r}"]) + ")"
        if isinstance(node, IsNull):
            op = "is not" if node.negated else "is"
            return f"({self.var(node.operand.name)} {op} None)"
        if isinstance(node, Truthy):
            return f"({self.var(node.operand.name)} is True)"
        if isinstance(node, And):
            return "(" + " and ".join(self.cond(i) for i in node.items) + ")"
        if isinstance(node, Or):
            return "(" + " or ".join(self.cond(i) for i in node.items) + ")"
        if isinstance(node, Not):
            return f"(not {self.cond(node.item)})"
        raise TypeError(node)


Predicate = Callable[[Mapping[str, Any]], bool]


def compile_predicate(node: Node, name: str = "when") -> Predicate:
    """Compile a checked condition tree into a Python function of a facts mapping."""
    c = _Compiler()
    body = c.cond(node)
    loads = "".join(f"    {c.var(n)} = f.get({n!r})\n" for n in sorted(fields_of(node)))
    src = f"def _pred(f):\n{loads}    return bool({body})\n"
    namespace: dict[str, Any] = dict(_RUNTIME)
    exec(compile(src, f"<rule {name}>", "exec"), namespace)  # noqa: S102 - generated from the tree
    fn: Predicate = namespace["_pred"]
    fn.__doc__ = src
    return fn


# ---------------------------------------------------------------- text


def explain(node: Node, facts: Mapping[str, Any]) -> list[tuple[str, bool, dict[str, Any]]]:
    """Leaf conditions with their outcome and the actual field values, in order."""
    out: list[tuple[str, bool, dict[str, Any]]] = []

    def walk(n: Node) -> None:
        if isinstance(n, (And, Or)):
            for i in n.items:
                walk(i)
        elif isinstance(n, Not):
            out.append((unparse(n), evaluate(n, facts), {f: facts.get(f) for f in sorted(fields_of(n))}))
        else:
            out.append((unparse(n), evaluate(n, facts), {f: facts.get(f) for f in sorted(fields_of(n))}))

    walk(node)
    return out
