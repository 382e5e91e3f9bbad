"""Generated documentation: a registry of generated files (docs/facts.md, docs/rules.md, ...).

`steward docs write` regenerates the files; tests fail when a file is stale.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


GENERATED: dict[str, Callable[[], str]] = {}
"""File name -> generator; engine.composition registers facts.md and rules.md."""


def register_doc(name: str, make: Callable[[], str]) -> None:
    GENERATED[name] = make


def write_all(docs_dir: Path) -> list[Path]:
    out = []
    for name, make in GENERATED.items():
        path = docs_dir / name
        path.write_text(make(), encoding="utf-8")
        out.append(path)
    return out


def stale(docs_dir: Path) -> list[str]:
    return [n for n, make in GENERATED.items() if not (docs_dir / n).exists() or (docs_dir / n).read_text(encoding="utf-8") != make()]
