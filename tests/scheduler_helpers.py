"""A job function for scheduler tests: referenced by id (module:function), like the real jobs."""

from __future__ import annotations

from pathlib import Path


def record_call(path: str) -> None:
    with Path(path).open("a", encoding="utf-8") as f:
        f.write("ran\n")
