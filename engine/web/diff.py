"""Side-by-side, word-level diff for the proposal page; Chinese is compared character by character."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

_TOKEN = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]|\w+|\s+|[^\w\s]")
"""One CJK character (no spaces between Chinese words), a run of word characters, whitespace, or a mark."""


@dataclass(frozen=True)
class Piece:
    text: str
    changed: bool


@dataclass(frozen=True)
class Row:
    """One line pair: left (approved) and right (proposed); None where a side has no line."""

    kind: str  # equal, replace, delete, insert
    left: list[Piece] | None
    right: list[Piece] | None
    line: int | None = None
    """Line number in the proposed file (None for a deleted line): lint findings attach here."""


def tokens(line: str) -> list[str]:
    return _TOKEN.findall(line)


def _words(a: str, b: str) -> tuple[list[Piece], list[Piece]]:
    ta, tb = tokens(a), tokens(b)
    left: list[Piece] = []
    right: list[Piece] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        if i2 > i1:
            left.append(Piece("".join(ta[i1:i2]), op != "equal"))
        if j2 > j1:
            right.append(Piece("".join(tb[j1:j2]), op != "equal"))
    return left, right


def side_by_side(old: str, new: str) -> list[Row]:
    a, b = old.splitlines(), new.splitlines()
    rows: list[Row] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            rows += [Row("equal", [Piece(x, False)], [Piece(x, False)], j1 + k + 1) for k, x in enumerate(a[i1:i2])]
            continue
        n = max(i2 - i1, j2 - j1)
        for k in range(n):
            la = a[i1 + k] if i1 + k < i2 else None
            lb = b[j1 + k] if j1 + k < j2 else None
            line = j1 + k + 1 if lb is not None else None
            if la is not None and lb is not None:
                left, right = _words(la, lb)
                rows.append(Row("replace", left, right, line))
            else:
                rows.append(Row("delete" if lb is None else "insert", None if la is None else [Piece(la, True)],
                                None if lb is None else [Piece(lb, True)], line))
    return rows
