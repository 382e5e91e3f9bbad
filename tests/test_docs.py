"""Docs that must stay complete: every config key, every fact field."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from engine.facts import base as facts
from engine.config.base import Config

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, f in model.model_fields.items():
        if f.exclude:
            continue
        out.append(prefix + name)
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _keys(ann, f"{prefix}{name}.")
    return out


def test_every_config_key_is_documented() -> None:
    text = (DOCS / "config.md").read_text(encoding="utf-8")
    missing = [k for k in _keys(Config) if f"`{k}`" not in text]
    assert not missing, f"docs/config.md lacks: {missing}"


def test_every_fact_field_is_documented() -> None:
    text = (DOCS / "facts.md").read_text(encoding="utf-8")
    missing = [n for n in facts.all_fields() if f"`{n}`" not in text]
    assert not missing, f"docs/facts.md lacks: {missing} (regenerate with `steward docs write`)"


def test_generated_docs_are_current() -> None:
    from engine import docgen

    assert not docgen.stale(DOCS), "generated docs are stale: run `steward docs write`"
