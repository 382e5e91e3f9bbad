"""Every rule test written as data (rules/tests/*.yaml) runs here, one pytest case each."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config.base import parse_config
from engine.language.loading import load_ruleset
from engine.pipeline.ruletest import case_files, load_test_file, run_case
from engine.yamlio import load_file

ROOT = Path(__file__).resolve().parent.parent
CFG = parse_config(load_file(ROOT / "config.yaml"), "config.yaml", ROOT)
FILES = case_files(CFG.rules_paths)
CASES = [(p, c) for p in FILES for c in load_test_file(p).cases]


@pytest.fixture(scope="module")
def ruleset():  # type: ignore[no-untyped-def]
    return load_ruleset(CFG)


@pytest.mark.parametrize(("path", "case"), CASES, ids=[f"{p.stem}: {c.name}" for p, c in CASES])
def test_rule_case(ruleset, path: Path, case) -> None:  # type: ignore[no-untyped-def]
    result = run_case(ruleset, load_test_file(path), case, str(path))
    assert result.ok, result.detail


def test_every_rule_has_tests_that_fire_and_stay_quiet(ruleset) -> None:  # type: ignore[no-untyped-def]
    covered: dict[str, set[str]] = {}
    for p in FILES:
        tf = load_test_file(p)
        covered.setdefault(tf.rule, set()).update(c.expect for c in tf.cases)
    lacking = [r.id for r in ruleset.rules if covered.get(r.id) != {"fire", "none"}]
    assert not lacking, f"rules need cases that fire and that must not fire: {lacking}"


def test_a_wrong_expectation_fails(ruleset, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "t.yaml"
    bad.write_text(
        "rule: concentrated_position\nas_of: 2026-11-20\ncases:\n"
        "  - name: wrong\n    facts: {top_weight: 0.1, market_value: 1000000}\n    expect: fire\n"
        "  - name: wrong text\n    facts: {top_weight: 0.5, market_value: 1000000, top_symbol: X}\n    expect: fire\n"
        "    text: {en: [\"nowhere to be found\"]}\n", encoding="utf-8")
    tf = load_test_file(bad)
    r1, r2 = (run_case(ruleset, tf, c, "t.yaml") for c in tf.cases)
    assert not r1.ok and r1.detail == "expected fire, rule did not fire"
    assert not r2.ok and "[en] missing ['nowhere to be found']" in r2.detail


def test_unknown_fact_in_a_test_file_names_the_line(tmp_path: Path) -> None:
    from engine.errors import SourceErrors

    bad = tmp_path / "t.yaml"
    bad.write_text("rule: x\nas_of: 2026-11-20\ncases:\n  - name: a\n    facts: {top_wieght: 0.1}\n    expect: fire\n")
    with pytest.raises(SourceErrors) as info:
        load_test_file(bad)
    assert "t.yaml:5: top_wieght: unknown fact field (did you mean 'top_weight'?)" in str(info.value)


def test_fact_values_are_type_checked(tmp_path: Path) -> None:
    from engine.errors import SourceErrors

    bad = tmp_path / "t.yaml"
    bad.write_text("rule: x\nas_of: 2026-11-20\ndefaults:\n  market_value: 1e6\ncases:\n"
                   "  - name: a\n    facts: {callback_done: 'yes'}\n    expect: fire\n")
    with pytest.raises(SourceErrors) as info:
        load_test_file(bad)
    text = str(info.value)
    assert "t.yaml:4: market_value: expected a number, got '1e6' (write 1e6 as 1000000 or 1.0e6)" in text
    assert "t.yaml:7: callback_done: expected a bool, got 'yes'" in text
