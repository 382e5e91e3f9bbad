"""Prohibited claims as a table of cases, both ways (issue 13, COMPLIANCE.md section 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.language import lint

ROOT = Path(__file__).resolve().parent.parent
CASES = yaml.safe_load((Path(__file__).parent / "data" / "claims.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def lists() -> lint.Lists:
    found, problems = lint.load_lists(ROOT / "compliance")
    assert found is not None, problems
    return found


def test_the_table_covers_every_locale_both_ways() -> None:
    assert len(CASES) >= 40
    for loc in ("zh-CN", "zh-TW", "en", "es"):
        rows = [c for c in CASES if c["locale"] == loc]
        assert any(c["claims"] for c in rows) and any(not c["claims"] for c in rows), loc


@pytest.mark.parametrize("case", CASES, ids=[f"{c['locale']}:{c['text'][:30]}" for c in CASES])
def test_claim(case: dict, lists: lint.Lists) -> None:
    found = [p for _, p, _, _ in lint.prohibited_claims(case["text"], lists)]
    assert [p.lower() for p in found] == [c.lower() for c in case["claims"]]


def test_a_bad_pattern_is_a_located_error(tmp_path: Path) -> None:
    for name in lint.LISTS:
        (tmp_path / name).write_text((ROOT / "compliance" / name).read_text(encoding="utf-8"), encoding="utf-8")
    p = tmp_path / "prohibited.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace('(?P<verb>guarantee', '(?P<verb>((guarantee', 1), encoding="utf-8")
    found, problems = lint.load_lists(tmp_path)
    assert found is None and any("prohibited.yaml" in str(x) and "not a valid regular expression" in str(x) for x in problems)
