"""Rule tests written as data: facts in, firing and rendered text out.

A test file `rules/tests/<rule_id>.yaml` holds cases for one rule:

    rule: concentrated_position
    as_of: 2026-11-20
    defaults: {market_value: 200000}
    cases:
      - name: fires at 55% in one holding
        facts: {top_weight: 0.55, top_symbol: "600519"}
        expect: fire
        text: {zh-CN: ["600519", "55%"], en: ["55%"]}
      - name: quiet at 30%
        facts: {top_weight: 0.30}
        expect: none

Every fact field not given is null, except a test client's identity
(`BASE_FACTS`). `text` renders the message in each listed locale and requires
each phrase; `text_absent` requires phrases to be missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.facts import base as facts_mod
from engine.errors import Problem, SourceErrors, did_you_mean, rel
from engine.language.loading import RuleSet
from engine.pipeline.run import render_firing
from engine.pipeline.matching import Match
from engine.yamlio import LineDict, line_of, load_file

BASE_FACTS: dict[str, Any] = {
    "client_id": "T0001", "name": "王芳", "advisor_id": "A01", "locale": "zh-CN",
    "age": 40, "days_since_open": 400, "segment": "maintenance", "callback_done": True,
    "lowest_category": False, "margin_enabled": False, "holdings_count": 0,
    "market_value": 0.0, "top_weight": 0.0, "volume_20d": 0.0, "trades_20d": 0, "net_flow_20d": 0.0,
}
TEST_ADVISORS = {"A01": {"id": "A01", "name": "李明"}}


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Case(_M):
    name: str
    facts: dict[str, Any] = Field(default_factory=dict)
    as_of: date | None = None
    expect: Literal["fire", "none"]
    text: dict[str, list[str]] = Field(default_factory=dict)
    text_absent: dict[str, list[str]] = Field(default_factory=dict)


class TestFile(_M):
    rule: str
    as_of: date
    defaults: dict[str, Any] = Field(default_factory=dict)
    cases: list[Case]


@dataclass(frozen=True)
class Result:
    path: str
    rule: str
    case: str
    ok: bool
    detail: str = ""


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_file(model: type[ModelT], path: Path) -> tuple[ModelT, Any]:
    """Load a YAML test file strictly and validate it; errors name file, line and key."""
    data = load_file(path)
    try:
        return model.model_validate(data), data
    except ValidationError as e:
        raise SourceErrors([
            Problem(rel(path), line_of(data, tuple(err["loc"])), ".".join(map(str, err["loc"])), err["msg"])
            for err in e.errors()
        ]) from e


def load_test_file(path: Path) -> TestFile:
    tf, data = parse_file(TestFile, path)
    known = facts_mod.all_fields()
    problems = []
    for i, case in enumerate(tf.cases):
        for key, value in {**tf.defaults, **case.facts}.items():
            loc = ("cases", i, "facts", key) if key in case.facts else ("defaults", key)
            line = line_of(data, loc) if isinstance(data, LineDict) else None
            if key not in known:
                problems.append(Problem(rel(path), line, key, f"unknown fact field{did_you_mean(key, known)}"))
            elif value is not None and not facts_mod.type_ok(known[key].type, value):
                problems.append(Problem(rel(path), line, key, f"expected a {known[key].type}, got {value!r}"
                                        + (" (write 1e6 as 1000000 or 1.0e6)" if isinstance(value, str) and "e" in value else "")))
    if problems:
        raise SourceErrors(problems)
    return tf


def _case_facts(tf: TestFile, case: Case) -> dict[str, Any]:
    f: dict[str, Any] = dict.fromkeys(facts_mod.all_fields())
    f.update(BASE_FACTS)
    f.update(tf.defaults)
    f.update(case.facts)
    return f


def run_case(ruleset: RuleSet, tf: TestFile, case: Case, path: str) -> Result:
    rule = ruleset.get(tf.rule)
    if rule is None:
        return Result(path, tf.rule, case.name, False, f"no rule {tf.rule!r} in the rule set")
    f = _case_facts(tf, case)
    fired = rule.predicate(f)
    if fired != (case.expect == "fire"):
        return Result(path, rule.id, case.name, False, f"expected {case.expect}, rule {'fired' if fired else 'did not fire'}")
    as_of = case.as_of or tf.as_of
    for locale in sorted(set(case.text) | set(case.text_absent)):
        fl = {**f, "locale": locale}
        out = render_firing(ruleset, Match(rule, fl), TEST_ADVISORS, as_of)
        if out.error:
            return Result(path, rule.id, case.name, False, f"[{locale}] render failed: {out.error}")
        text = f"{out.subject or ''}\n{out.message or ''}"
        missing = [p for p in case.text.get(locale, []) if p not in text]
        present = [p for p in case.text_absent.get(locale, []) if p in text]
        if missing or present:
            what = f"missing {missing}" if missing else f"must not contain {present}"
            return Result(path, rule.id, case.name, False, f"[{locale}] {what} in: {text.strip()!r}")
    return Result(path, rule.id, case.name, True)


def case_files(rules_dirs: list[Path]) -> list[Path]:
    return [p for d in rules_dirs for p in sorted((d / "tests").glob("*.yaml"))]


def run_all(ruleset: RuleSet, rules_dirs: list[Path], files: list[Path] | None = None) -> list[Result]:
    """Every case of `files` (default: each folder's tests/*.yaml, sorted). A case is a function
    of its file alone (fresh facts, a rule set nothing writes to), so any order gives the same verdicts."""
    results = []
    for path in files if files is not None else case_files(rules_dirs):
        tf = load_test_file(path)
        results += [run_case(ruleset, tf, c, rel(path)) for c in tf.cases]
    return results
