"""docs/facts.md, generated from the fact-provider registry."""

from __future__ import annotations

from engine.facts import base as facts

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
