"""docs/rules.md: the rule catalog, generated from the shipped rule files.

Lists every rule under `rules/` and its sub-folders (the rule pack lives in
`rules/playbook/`), so the catalog cannot drift from the rules. Registered with
engine.docgen; `steward docs write` regenerates it and a test fails when stale.
"""

from __future__ import annotations

from pathlib import Path

from engine.facts import base as facts
from engine.language.rules import Rule, load_rules

ROOT = Path(__file__).resolve().parents[2]
RULES_ROOT = ROOT / "rules"

HEADER = """# Rule catalog

Generated from the rule files by `steward docs write`; do not edit by hand. The rule language
(every field, and the `when:` expressions) is described in docs/rule-language.md; the facts in
docs/facts.md.

`rules/` holds the skeleton rules; `rules/playbook/` holds the servicing playbook of
DOMAIN.md as a rule pack. Switch the pack on by listing it in `config.yaml`:
`rules_dirs: [rules, rules/playbook]`. Each rule has tests written as data in
`<folder>/tests/<rule id>.yaml` (`steward rules test rules/playbook`).
"""


def shipped_dirs() -> list[Path]:
    return [RULES_ROOT] + sorted(p for p in RULES_ROOT.iterdir() if p.is_dir() and p.name not in ("tests", "events")  # event rules: docs/events.md
                                 and not p.name.startswith(("_", ".")))


def _row(r: Rule) -> str:
    a = r.spec.action
    return f"| [`{r.id}`](#{r.id}) | {r.spec.title} | {r.spec.rule_class} | {a.type}/{a.channel} | {a.priority} | {r.spec.cooldown} |"


def _section(r: Rule) -> list[str]:
    s, a = r.spec, r.spec.action
    when = " ".join(s.when.split()) if r.kind == "yaml" else f"Python rule `{Path(r.path).name}` ({s.when})"
    out = [f"\n### {r.id}\n", f"**{s.title}** ({s.rule_class}; owner {s.owner})\n", " ".join(s.description.split()), "",
           f"- when: `{when}`",
           f"- action: {a.type} on {a.channel}, template `{a.template}`, priority {a.priority}"
           + (f", due in {a.due}" if a.due else ""),
           f"- cooldown: {s.cooldown}" + ("" if s.enabled else " (disabled)")]
    extra = {k: getattr(s, k, None) for k in ("urgent", "product", "product_risk")}
    if any(extra.values()):
        out.append("- " + ", ".join(f"{k}: {v}" for k, v in extra.items() if v))
    if s.tags:
        out.append("- tags: " + ", ".join(f"`{t}`" for t in s.tags))
    return out


def rules_markdown() -> str:
    lines = [HEADER]
    for d in shipped_dirs():
        rules, _ = load_rules([d], facts.field_types())
        rules = sorted(rules, key=lambda r: r.id)
        name = d.relative_to(ROOT).as_posix()
        lines += [f"\n## `{name}/` ({len(rules)} rules)\n", "| rule | title | class | action | priority | cooldown |",
                  "|---|---|---|---|---|---|"]
        lines += [_row(r) for r in rules]
        for r in rules:
            lines += _section(r)
    return "\n".join(lines) + "\n"

