"""Rule files: every problem reported in one pass as path:line: key: problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.config.base import Config
from engine.errors import SourceErrors
from engine.language.loading import check_ruleset, load_ruleset
from engine.language.rules import parse_duration

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
id: {id}
title: T
description: D
owner: me
class: service
when: top_weight >= 40%
action:
  type: message
  channel: sms
  template: concentrated_position
cooldown: 30d
"""


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    return d


def problems(cfg: Config, d: Path) -> list[str]:
    _, found = check_ruleset(cfg, [d], ROOT / "templates")
    return [str(p) for p in found]


def test_shipped_rules_load(cfg: Config) -> None:
    rs = load_ruleset(cfg)
    assert {"new_account_callback", "dormant_activation", "concentrated_position"} <= {r.id for r in rs.rules}
    assert len(rs.version) == 16


def test_unknown_fact_field_with_did_you_mean(cfg: Config, rules_dir: Path) -> None:
    (rules_dir / "r1.yaml").write_text(GOOD.format(id="r1").replace("top_weight", "top_wieght"))
    [msg] = problems(cfg, rules_dir)
    assert msg.endswith("r1.yaml:6: when: unknown fact field 'top_wieght' (did you mean 'top_weight'?) at column 1: 'top_wieght >= 40%'")


def test_unknown_key_and_bad_values_all_reported(cfg: Config, rules_dir: Path) -> None:
    bad = GOOD.format(id="r2").replace("cooldown: 30d", "cooldown: 30 days\npriorty: 3").replace("channel: sms", "channel: fax")
    (rules_dir / "r2.yaml").write_text(bad)
    (rules_dir / "r3.yaml").write_text(GOOD.format(id="wrong"))
    found = problems(cfg, rules_dir)
    text = "\n".join(found)
    assert "r2.yaml:9: action.channel:" in text and "'fax'" in text
    assert "r2.yaml:11: cooldown: expected a duration such as 30d" in text
    assert "r2.yaml:12: priorty: unknown field 'priorty' (did you mean 'priority' under action:?)" in text
    assert "r3.yaml:1: id: id 'wrong' must equal the file name 'r3'" in text


def test_duplicate_keys_and_broken_yaml(cfg: Config, rules_dir: Path) -> None:
    (rules_dir / "dup.yaml").write_text(GOOD.format(id="dup") + "title: again\n")
    (rules_dir / "broken.yaml").write_text("id: broken\nwhen: [unclosed\n")
    text = "\n".join(problems(cfg, rules_dir))
    assert "dup.yaml:12: invalid YAML: duplicate key 'title'" in text
    assert "broken.yaml:3: invalid YAML" in text


def test_missing_required_field(cfg: Config, rules_dir: Path) -> None:
    (rules_dir / "r4.yaml").write_text(GOOD.format(id="r4").replace("owner: me\n", ""))
    assert any("r4.yaml:1: owner: required field is missing" in p for p in problems(cfg, rules_dir))


def test_task_and_message_shapes(cfg: Config, rules_dir: Path) -> None:
    (rules_dir / "r5.yaml").write_text(GOOD.format(id="r5").replace("type: message", "type: task"))
    assert any("use channel: phone" in p for p in problems(cfg, rules_dir))


def test_missing_template_and_bad_template(cfg: Config, rules_dir: Path, tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    (templates / "broken").mkdir(parents=True)
    (templates / "broken" / "zh-CN.j2").write_text("line one\n{{ client.name }\n")
    (templates / "unknown").mkdir()
    (templates / "unknown" / "zh-CN.j2").write_text("{{ client.nmae }} {{ secret }}")
    for rid, tpl in (("a1", "broken"), ("a2", "unknown"), ("a3", "nowhere")):
        (rules_dir / f"{rid}.yaml").write_text(GOOD.format(id=rid).replace("concentrated_position", tpl))
    _, found = check_ruleset(cfg, [rules_dir], templates)
    text = "\n".join(map(str, found))
    assert "broken/zh-CN.j2:2: template: syntax error" in text
    assert "unknown/zh-CN.j2:1: template: unknown variable 'client.nmae' (did you mean 'name'?)" in text
    assert "unknown/zh-CN.j2:1: template: unknown variable 'secret'" in text
    assert "nowhere/zh-CN.j2: template: template 'nowhere' has no zh-CN file" in text


def test_load_ruleset_raises_with_every_problem(cfg: Config, rules_dir: Path) -> None:
    (rules_dir / "x1.yaml").write_text(GOOD.format(id="x1").replace("top_weight", "nope"))
    (rules_dir / "x2.yaml").write_text(GOOD.format(id="x2").replace("class: service", "class: promo"))
    with pytest.raises(SourceErrors) as info:
        load_ruleset(cfg, [rules_dir], ROOT / "templates")
    assert len(info.value.problems) == 2


def test_python_rule(cfg: Config, rules_dir: Path) -> None:
    (rules_dir / "annual.py").write_text(
        "from engine.language.rules import python_rule\n\n"
        "@python_rule(id='rich_and_old', title='T', description='D', owner='me', class_='service',\n"
        "             action={'type': 'task', 'channel': 'phone', 'template': 'new_account_callback'})\n"
        "def rich_and_old(f):\n"
        "    return (f.get('age') or 0) >= 65 and (f.get('market_value') or 0) > 1e6\n"
    )
    rs = load_ruleset(cfg, [rules_dir], ROOT / "templates")
    [rule] = rs.rules
    assert rule.kind == "python"
    assert rule.predicate({"age": 70, "market_value": 2e6}) is True
    assert rule.predicate({"age": 30}) is False


def test_python_rule_import_error_is_reported(cfg: Config, rules_dir: Path) -> None:
    (rules_dir / "bad.py").write_text("x = (\n")
    assert any("bad.py:1: cannot import: SyntaxError" in p for p in problems(cfg, rules_dir))


def test_rules_load_only_from_configured_folders(cfg: Config, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(ROOT / "rules" / "dormant_activation.yaml", other / "dormant_activation.yaml")
    rs = load_ruleset(cfg)
    assert all(not r.path.startswith(str(other)) for r in rs.rules)


@pytest.mark.parametrize(("text", "days"), [("30d", 30), ("2w", 14), ("12h", 0.5), ("90min", 0.0625)])
def test_durations(text: str, days: float) -> None:
    assert parse_duration(text).total_seconds() == days * 86400


def test_bad_duration() -> None:
    with pytest.raises(ValueError, match="30d, 2w, 12h or 45min"):
        parse_duration("1 month")
