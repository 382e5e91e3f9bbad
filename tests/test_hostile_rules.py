"""Hostile and careless rule files: a located error every time, in bounded time (issue 13)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from engine.config.base import Config
from engine.language import expr
from engine.language.loading import check_ruleset, load_ruleset
from engine.language.rules import MAX_RULE_FILE_BYTES
from engine.pipeline.matching import EVAL_FAILED
from engine.pipeline.recording import FIRING
from engine.pipeline.run import run
from engine.yamlio import MAX_YAML_DEPTH
from tests import book

ROOT = Path(__file__).resolve().parent.parent

RULE = """\
id: r1
title: {title}
description: D
owner: me
class: service
when: {when}
action:
  type: message
  channel: sms
  template: concentrated_position
"""


def check(cfg: Config, tmp_path: Path, text: str) -> list[str]:
    d = tmp_path / "rules"
    d.mkdir(exist_ok=True)
    (d / "r1.yaml").write_text(text, encoding="utf-8")
    t0 = time.perf_counter()
    _, found = check_ruleset(cfg, [d], ROOT / "templates")
    assert time.perf_counter() - t0 < 15, "checking one rule file must be quick (a hang took minutes)"
    for p in found:
        assert len(str(p)) < 600, "messages never repeat unbounded input"
    return [str(p) for p in found if p.severity == "error"]


def when(cfg: Config, tmp_path: Path, expression: str) -> list[str]:
    return check(cfg, tmp_path, RULE.format(title="T", when=f"'{expression}'"))


NINES = "9" * 400


@pytest.mark.parametrize(("expression", "expected"), [
    ("(" * 3000 + "top_weight > 1" + ")" * 3000, f"nested too deeply (limit {expr.MAX_EXPR_DEPTH})"),
    ("(" * 5000 + "top_weight > 1" + ")" * 5000, f"(limit {expr.MAX_EXPR_LENGTH})"),
    ("market_value * " + "9" * 4000 + " > 1", f"(limit {expr.MAX_NUMBER_DIGITS})"),
    ("(" * 120 + "top_weight > 1" + ")" * 120, f"nested too deeply (limit {expr.MAX_EXPR_DEPTH})"),
    ("not " * 120 + "top_weight > 1", f"nested too deeply (limit {expr.MAX_EXPR_DEPTH})"),
    ("-" * 120 + "top_weight > 1", f"nested too deeply (limit {expr.MAX_EXPR_DEPTH})"),
    (" + ".join(["top_weight"] * 100) + " > 1", f"nested too deeply (limit {expr.MAX_EXPR_DEPTH})"),
    ("top_weight > " + "9" * 1900, f"(limit {expr.MAX_NUMBER_DIGITS})"),
    (f"market_value < {NINES}.0", f"(limit {expr.MAX_NUMBER_DIGITS})"),
    ("market_value * 999999999999999 * 999999999999999 * 999999999999999 * 999999999999999"
     " * 999999999999999 * 999999999999999 * 999999999999999 > 1", "too large"),
    ("top_weight > 1__0_", "malformed number"),
    ("top_weight > \u0661\u0662", "unexpected character"),
    ("top_weight in [" + ", ".join(["1"] * 1100) + "]", f"(limit {expr.MAX_LIST_ITEMS})"),
    ("segment == \"" + "x" * 300 + "\"", f"(limit {expr.MAX_STRING_LENGTH})"),
], ids=["parens3000", "parens5000", "times4000digits", "parens120", "not120", "minus120", "sum100", "int1900", "float400", "product",
        "underscores", "arabic_indic", "list1100", "string300"])
def test_over_limit_expression_gets_a_located_error(cfg: Config, tmp_path: Path, expression: str, expected: str) -> None:
    [msg] = when(cfg, tmp_path, expression)
    assert "r1.yaml:6: when:" in msg and expected in msg


def test_negative_numbers_in_a_list_are_accepted(cfg: Config, tmp_path: Path) -> None:
    assert when(cfg, tmp_path, "top_weight in [-1, 0.5]") == []
    node = expr.check(expr.parse("x in [-1, 2]"), {"x": "number"})
    assert expr.evaluate(node, {"x": -1}) and expr.compile_predicate(node)({"x": -1})


def test_underscores_only_between_digits(cfg: Config, tmp_path: Path) -> None:
    assert when(cfg, tmp_path, "market_value > 1_000_000") == []


def test_every_unknown_field_is_reported(cfg: Config, tmp_path: Path) -> None:
    found = when(cfg, tmp_path, "top_wieght > 1 and market_valu > 2")
    assert len(found) == 2
    assert "unknown fact field 'top_wieght'" in found[0] and "column 1" in found[0]
    assert "unknown fact field 'market_valu'" in found[1] and "column 20" in found[1]


def test_alias_bomb_is_refused_at_once(cfg: Config, tmp_path: Path) -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefgh", "bcdefghi"))
    [msg] = check(cfg, tmp_path, bomb + RULE.format(title="*i", when="top_weight > 1"))
    assert "r1.yaml:1:" in msg and "anchors and aliases" in msg


def test_deep_yaml_nesting_is_refused(cfg: Config, tmp_path: Path) -> None:
    [msg] = check(cfg, tmp_path, RULE.format(title="[" * 5000 + "]" * 5000, when="top_weight > 1"))
    assert "r1.yaml:2:" in msg and f"(limit {MAX_YAML_DEPTH})" in msg


def test_oversized_rule_file_is_refused_unread(cfg: Config, tmp_path: Path) -> None:
    [msg] = check(cfg, tmp_path, RULE.format(title="x" * (MAX_RULE_FILE_BYTES + 1), when="top_weight > 1"))
    assert "r1.yaml:" in msg and f"(limit {MAX_RULE_FILE_BYTES})" in msg


def test_invalid_value_message_is_bounded(cfg: Config, tmp_path: Path) -> None:
    [msg] = check(cfg, tmp_path, RULE.format(title="[" + ", ".join(["[1, 2, 3, 4, 5]"] * 300) + "]", when="top_weight > 1"))
    assert "r1.yaml:2: title:" in msg and "..." in msg


@pytest.fixture
def loaded(db: Engine) -> Engine:
    book.build(db)
    return db


def test_run_contains_a_rule_that_fails_at_evaluation(loaded: Engine, cfg: Config) -> None:
    rs = load_ruleset(cfg)

    def boom(f: object) -> bool:
        raise OverflowError("int too large to convert to float")

    broken = [dataclasses.replace(r, predicate=boom) if r.id == "dormant_activation" else r for r in rs.rules]
    s = run(loaded, cfg, dataclasses.replace(rs, rules=tuple(broken)), book.AS_OF)
    assert s.clients == 4 and s.failed == 4
    assert s.per_rule["concentrated_position"] == 2 and s.per_rule["new_account_callback"] == 1
    with loaded.connect() as c:
        rows = [r for r in c.execute(select(FIRING)) if r.rule_id == "dormant_activation"]
    assert len(rows) == 4 and {r.status for r in rows} == {"failed"}
    assert all(r.error.startswith(EVAL_FAILED) and "OverflowError" in r.error for r in rows)
