"""The `when:` expression tree, its limits and its text form (engine.language.expr parses and runs it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Union

NUMBER, STRING, BOOL = "number", "string", "bool"
FieldTypes = Mapping[str, str]
"""Fact field name -> one of number, string, bool."""


MAX_EXPR_LENGTH = 8000
"""Longest `when:` expression, in characters."""
MAX_EXPR_DEPTH = 32
"""Deepest nesting of an expression: parentheses, `not`, unary `-` and chained arithmetic."""
MAX_NUMBER_DIGITS = 15
"""Most digits in a number literal (so it is exact as a float and far from overflow)."""
MAX_STRING_LENGTH = 200
"""Longest string literal, in characters."""
MAX_LIST_ITEMS = 1000
"""Most values in an `in [...]` list."""


MAX_CONSTANT_SCALE = 1e100
"""Largest product of the constants in one arithmetic term (keeps evaluation far from overflow)."""


class ExprError(ValueError):
    def __init__(self, message: str, column: int):
        super().__init__(message)
        self.message = message
        self.column = column


# ---------------------------------------------------------------- tree


@dataclass(frozen=True)
class Literal:
    value: float | int | str | bool
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class FieldRef:
    name: str
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Neg:
    operand: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Arith:
    op: str  # + - * /
    left: Node
    right: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Compare:
    op: str  # == != < <= > >=
    left: Node
    right: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class InList:
    operand: Node
    values: tuple[float | int | str | bool, ...]
    negated: bool = False
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class IsNull:
    operand: FieldRef
    negated: bool = False
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Truthy:
    operand: FieldRef
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Not:
    item: Node
    pos: int = field(default=0, compare=False)


Node = Union[Literal, FieldRef, Neg, Arith, Compare, InList, IsNull, Truthy, And, Or, Not]
Condition = Union[Compare, InList, IsNull, Truthy, And, Or, Not, Literal]


def fields_of(node: Node) -> set[str]:
    if isinstance(node, FieldRef):
        return {node.name}
    if isinstance(node, (Truthy, IsNull, InList, Neg)):
        return fields_of(node.operand)
    if isinstance(node, (Arith, Compare)):
        return fields_of(node.left) | fields_of(node.right)
    if isinstance(node, (And, Or)):
        return set().union(*(fields_of(i) for i in node.items))
    if isinstance(node, Not):
        return fields_of(node.item)
    return set()


def _has_div(node: Node) -> bool:
    if isinstance(node, Arith):
        return node.op == "/" or _has_div(node.left) or _has_div(node.right)
    if isinstance(node, Neg):
        return _has_div(node.operand)
    return False



# ---------------------------------------------------------------- text


def unparse(node: Node) -> str:
    if isinstance(node, Literal):
        if isinstance(node.value, bool):
            return "true" if node.value else "false"
        return repr(node.value) if isinstance(node.value, str) else str(node.value)
    if isinstance(node, FieldRef):
        return node.name
    if isinstance(node, Truthy):
        return node.operand.name
    if isinstance(node, Neg):
        return f"-{unparse(node.operand)}"
    if isinstance(node, Arith):
        return f"({unparse(node.left)} {node.op} {unparse(node.right)})"
    if isinstance(node, Compare):
        return f"{unparse(node.left)} {node.op} {unparse(node.right)}"
    if isinstance(node, InList):
        vals = ", ".join(unparse(Literal(v)) for v in node.values)
        return f"{unparse(node.operand)} {'not in' if node.negated else 'in'} [{vals}]"
    if isinstance(node, IsNull):
        return f"{node.operand.name} is {'not ' if node.negated else ''}null"
    if isinstance(node, And):
        return " and ".join(_wrap(i, Or) for i in node.items)
    if isinstance(node, Or):
        return " or ".join(unparse(i) for i in node.items)
    if isinstance(node, Not):
        return f"not {_wrap(node.item, (And, Or))}"
    raise TypeError(node)


def _wrap(node: Node, kinds: Any) -> str:
    text = unparse(node)
    return f"({text})" if isinstance(node, kinds) else text
