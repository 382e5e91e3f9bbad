"""Generated documentation: docs/facts.md from the fact-provider registry.

`steward docs write` regenerates the files; tests fail when a file is stale.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine import facts

HEADER = """# Client facts

Generated from the fact providers by `steward docs write`; do not edit by hand.

Facts are one snapshot per client as of the evaluation date, computed in bulk (a few SQL
aggregates per batch of clients, never a query per client). A field the data lacks is
**null**, never a made-up default; in `when:` a comparison with null is false (see docs/rules.md).
Types: `number`, `string` and `bool` can be used in `when:`; `date` fields are for templates
(rules use the `days_*` counts instead).
"""


def facts_markdown() -> str:
    lines = [HEADER]
    for p in facts.providers():
        lines.append(f"\n## {p.name}\n\n| field | type | meaning |\n|---|---|---|")
        lines += [f"| `{f.name}` | {f.type} | {f.doc} |" for f in p.fields]
    return "\n".join(lines) + "\n"


GENERATED: dict[str, Callable[[], str]] = {"facts.md": facts_markdown}


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
