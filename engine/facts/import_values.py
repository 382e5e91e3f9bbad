"""Cell parsers for the CSV import: strict text -> value, each error saying what was expected."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from engine.errors import did_you_mean
from engine.facts.validation import INT64_MAX, MAX_JSON_DEPTH, check_json

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_BOOLS = {"true": True, "false": False, "1": True, "0": False}


def _date(v: Any) -> Any:
    if isinstance(v, str):
        if not _DATE_RE.fullmatch(v):
            raise ValueError("expected a date as YYYY-MM-DD")
        try:
            return date.fromisoformat(v)
        except ValueError:
            raise ValueError("not a calendar date (YYYY-MM-DD)") from None
    return v


def _datetime(v: Any) -> Any:
    if isinstance(v, str):
        try:
            dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("expected a date and time such as 2026-11-20T09:30:00+08:00") from None
        if dt.utcoffset() is None:
            raise ValueError("the time needs a UTC offset, such as 2026-11-20T09:30:00+08:00")
        return dt
    return v




def _number(v: Any) -> Any:
    if isinstance(v, str):
        if len(v) > 40 or not _NUMBER_RE.fullmatch(v):
            raise ValueError("expected a number such as 1234.56 (no thousands separators)")
        v = float(v)
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError("expected a finite number (not infinity or NaN)")
    return v


def _whole(v: Any) -> Any:
    if isinstance(v, str):
        if not re.fullmatch(r"-?\d+", v):
            raise ValueError("expected a whole number")
        if len(v) > 20:
            raise ValueError(f"expected a whole number of at most 19 digits, not {len(v)}")
        v = int(v)
    if isinstance(v, int) and not -INT64_MAX <= v <= INT64_MAX:
        raise ValueError(f"expected a whole number between -{INT64_MAX} and {INT64_MAX}")
    return v


def _bool(v: Any) -> Any:
    if isinstance(v, str):
        if v.lower() not in _BOOLS:
            raise ValueError("expected true, false, 1 or 0")
        return _BOOLS[v.lower()]
    return v


def _one_of(*allowed: str) -> Callable[[str], str]:
    def check(v: str) -> str:
        if v not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}{did_you_mean(v, allowed)}")
        return v

    return check


def _at_least(lo: float, strict: bool = False) -> Callable[[float], float]:
    def check(v: float) -> float:
        if v < lo or (strict and v == lo):
            raise ValueError(f"expected a number {'>' if strict else '>='} {lo:g}")
        return v

    return check


def _json_object(v: Any) -> Any:
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except json.JSONDecodeError as e:
            raise ValueError(f"expected a JSON object such as {{\"job\": \"stable_salary\"}} ({e.msg})") from None
        except (RecursionError, ValueError):
            raise ValueError(f"JSON nested too deeply (limit {MAX_JSON_DEPTH}) or a number too long") from None
        if not isinstance(v, dict):
            raise ValueError("expected a JSON object ({...}), not a list or a single value")
        check_json(v)
    return v


def _at_most(hi: float) -> Callable[[int], int]:
    def check(v: int) -> int:
        if v > hi:
            raise ValueError(f"expected a number <= {hi:g}")
        return v

    return check


def _zone(v: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"expected an IANA time zone such as Asia/Shanghai or America/New_York (got {v!r})") from None
    return v
