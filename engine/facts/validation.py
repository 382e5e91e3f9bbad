"""Checks on untrusted input values shared by the importers: bounded, located, never a traceback.

Non-finite numbers (1e999, NaN, Infinity), integers past int64, NUL characters (which
PostgreSQL refuses) and deeply nested JSON are refused before anything is written.
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

INT64_MAX = 2**63 - 1
MAX_JSON_DEPTH = 10
"""Deepest nesting of a JSON value in an import cell (risk_assessments.csv `answers`)."""


def _walk(v: Any) -> Iterator[tuple[Any, int]]:
    """Every node of decoded JSON with its depth, iteratively (no recursion limit to hit)."""
    stack = [(v, 1)]
    while stack:
        node, d = stack.pop()
        yield node, d
        if isinstance(node, dict):
            stack += [(k, d + 1) for k in node] + [(x, d + 1) for x in node.values()]
        elif isinstance(node, list):
            stack += [(x, d + 1) for x in node]


def check_json(v: Any) -> None:
    """ValueError unless decoded JSON is shallow, finite and free of NUL characters."""
    for node, depth in _walk(v):
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"JSON nested too deeply (limit {MAX_JSON_DEPTH})")
        if isinstance(node, str) and "\x00" in node:
            raise ValueError("contains a NUL character (\\u0000): remove it")
        if isinstance(node, float) and not math.isfinite(node):
            raise ValueError("expected finite numbers (not 1e999, NaN or Infinity)")
        if isinstance(node, int) and not isinstance(node, bool) and abs(node) > INT64_MAX:
            raise ValueError(f"a whole number past {INT64_MAX}")


def finite(v: float) -> float:
    """A pydantic AfterValidator: refuse infinity and NaN."""
    if not math.isfinite(v):
        raise ValueError("expected a finite number (not infinity or NaN)")
    return v


def first_bad_utf8(file: Path) -> tuple[int, int]:
    """(line, byte offset) of the first byte that is not UTF-8, read in bounded chunks."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line, offset = 1, 0
    with file.open("rb") as f:
        if f.read(3) != codecs.BOM_UTF8:
            f.seek(0)
        else:
            offset = 3
        while chunk := f.read(1 << 16):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as e:
                return line + chunk[:max(e.start, 0)].count(b"\n"), offset + e.start
            line += chunk.count(b"\n")
            offset += len(chunk)
    return line, offset
