"""Small rule packs on disk for the lint, review and impact tests."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.config.base import Config

ROOT = Path(__file__).resolve().parent.parent

SIG = "{{ firm.signature }}"
OPT_OUT = "拒收请回复R"


def rule_yaml(rid: str, cls: str = "marketing", channel: str = "sms", when: str = "market_value >= 10000",
              template: str | None = None, extra: str = "", title: str = "A test rule", kind: str = "message") -> str:
    return (f"id: {rid}\ntitle: {title}\ndescription: test\nowner: test\nclass: {cls}\nwhen: {when}\n"
            f"action:\n  type: {kind}\n  channel: {channel}\n  template: {template or rid}\n"
            f"cooldown: 1d\n{extra}")


def write_pack(root: Path, rules: dict[str, str], templates: dict[str, str]) -> None:
    """rules: file name -> YAML; templates: 'name/locale.j2' -> text. Also copies the lint lists."""
    (root / "rules").mkdir(parents=True, exist_ok=True)
    (root / "templates").mkdir(parents=True, exist_ok=True)
    for name, text in rules.items():
        (root / "rules" / name).write_text(text, encoding="utf-8")
    for name, text in templates.items():
        p = root / "templates" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
    if not (root / "compliance").exists():
        shutil.copytree(ROOT / "compliance", root / "compliance")


def pack_config(cfg: Config, root: Path) -> Config:
    """The shipped config with rules, templates, lint lists and approved snapshots under root."""
    return cfg.model_copy(update={
        "base_dir": root, "rules_dirs": ("rules",), "templates_dir": "templates",
        "compliance": cfg.compliance.model_copy(update={"lists_dir": "compliance", "approved_dir": "var/approved"}),
    })


BASE_RULES = ("concentrated_position", "dormant_activation", "new_account_callback")


def copy_shipped(root: Path) -> None:
    """Three shipped rules with their templates, and the lint lists, copied so a test may edit them."""
    (root / "rules").mkdir(parents=True)
    for rid in BASE_RULES:
        shutil.copy(ROOT / "rules" / f"{rid}.yaml", root / "rules" / f"{rid}.yaml")
        shutil.copytree(ROOT / "templates" / rid, root / "templates" / rid)
    shutil.copytree(ROOT / "compliance", root / "compliance")
