"""Risk profile scoring reproduces DOMAIN.md: items, band edges, the allocation table, age."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.facts import risk
from engine.errors import SourceErrors
from engine.config.servicing import RiskConfig
from tests import cli_process

CFG = RiskConfig()
ROOT = Path(__file__).resolve().parent.parent

# DOMAIN.md's table, typed in as printed (with the diagonal correction for medium-high x low).
DOMAIN_TABLE = """
70/20/10 50/40/10 40/40/20 20/50/30 0/50/50
50/40/10 40/40/20 20/50/30 0/50/50 0/40/60
40/40/20 20/50/30 0/50/50 0/40/60 0/30/70
20/50/30 0/50/50 0/40/60 0/30/70 0/20/80
0/50/50 0/40/60 0/30/70 0/20/80 0/10/90
"""
TABLE = [[tuple(int(x) for x in cell.split("/")) for cell in row.split()] for row in DOMAIN_TABLE.strip().splitlines()]
CELLS = [(t, c) for t in range(5) for c in range(5)]

BEST = {"job": "stable_salary", "family": "single", "housing": "investment_property", "experience": "over_10_years",
        "knowledge": "professional", "goal": "capital_gains", "stop_loss": "preset", "if_money_is_lost": "a_lesson",
        "watches_market": "now_and_then", "own_performance": "fully_in_control"}


def sheet(**kw: object) -> risk.AnswerSheet:
    data: dict[str, object] = {"age": 30, "max_loss_pct": 10, **BEST}
    data.update(kw)
    return risk.AnswerSheet.model_validate(data)


@pytest.mark.parametrize(("age", "points"), [(0, 50), (24, 50), (25, 50), (26, 49), (34, 41), (74, 1), (75, 0), (99, 0)])
def test_age_points(age: int, points: int) -> None:
    assert risk.age_points(age) == points


@pytest.mark.parametrize(("pct", "points"), [(0, 0), (1, 2), (10, 20), (24, 48), (25, 50), (60, 50)])
def test_loss_points(pct: int, points: int) -> None:
    assert risk.loss_points(pct) == points


@pytest.mark.parametrize(("score", "level"), [
    (0, "low"), (19, "low"), (20, "medium-low"), (39, "medium-low"), (40, "medium"), (59, "medium"),
    (60, "medium-high"), (79, "medium-high"), (80, "high"), (100, "high"),
])
def test_band_edges(score: int, level: str) -> None:
    assert risk.LEVELS[risk.level_index(score, CFG.bands)] == level


@pytest.mark.parametrize(("item", "answers"), list(risk.ITEMS.items()))
def test_every_answer_scores_10_8_6_4_2(item: str, answers: tuple[str, ...]) -> None:
    assert [risk.answer_points(item, a) for a in answers] == [10, 8, 6, 4, 2]


@pytest.mark.parametrize(("t", "c"), CELLS, ids=[f"tol{t}-cap{c}" for t, c in CELLS])
def test_every_allocation_cell(t: int, c: int) -> None:
    assert risk.allocation_for(t, c, CFG) == TABLE[t][c]
    assert sum(TABLE[t][c]) == 100


def _sheet_for(capacity: int, tolerance: int) -> risk.AnswerSheet:
    """An answer sheet with exactly these scores (capacity 10..100, tolerance 10..100, even)."""
    def answers(items: dict[str, tuple[str, ...]], rest: int) -> dict[str, str]:
        # rest = sum of five answers in 10..50 (even): lower answers one notch at a time
        out, deficit = {}, 50 - rest
        for item, options in items.items():
            step = min(deficit // 2, 4)
            out[item] = options[step]
            deficit -= 2 * step
        assert deficit == 0
        return out
    a = min(capacity - 10, 50)
    age = 75 - a if a < 50 else 20
    c = min(tolerance - 10, 50)
    return risk.AnswerSheet.model_validate({
        "age": age, "max_loss_pct": c // 2,
        **answers(risk.CAPACITY_ITEMS, capacity - a), **answers(risk.TOLERANCE_ITEMS, tolerance - c)})


@pytest.mark.parametrize(("capacity", "tolerance", "cap_level", "tol_level"), [
    (18, 20, "low", "medium-low"), (20, 18, "medium-low", "low"), (38, 40, "medium-low", "medium"),
    (40, 38, "medium", "medium-low"), (58, 60, "medium", "medium-high"), (60, 58, "medium-high", "medium"),
    (78, 80, "medium-high", "high"), (80, 78, "high", "medium-high"), (100, 100, "high", "high"),
])
def test_scores_at_band_edges_end_to_end(capacity: int, tolerance: int, cap_level: str, tol_level: str) -> None:
    p = risk.score(_sheet_for(capacity, tolerance), CFG)
    assert (p.capacity, p.tolerance) == (capacity, tolerance)
    assert (p.capacity_level, p.tolerance_level) == (cap_level, tol_level)
    assert p.allocation == TABLE[risk.LEVELS.index(tol_level)][risk.LEVELS.index(cap_level)]


def test_breakdown_lists_every_item() -> None:
    p = risk.score(sheet(age=34, max_loss_pct=30, job="self_employed", goal="keep_principal"), CFG)
    items = {k: n for k, _, n in p.items}
    assert items["age"] == 41 and items["job"] == 4 and items["max_loss_pct"] == 50 and items["goal"] == 2
    assert p.capacity == 41 + 4 + 40 and p.tolerance == 50 + 2 + 40
    assert len(p.items) == 12


def test_source_misprint_is_not_used() -> None:
    # DOMAIN.md: the source prints 20/30/50 for medium-high x low; the default follows the diagonal.
    assert risk.allocation_for(3, 0, CFG) == (20, 50, 30)


def test_a_firm_can_load_its_own_table() -> None:
    own = [[list(cell) for cell in row] for row in CFG.allocation]
    own[3][0] = [20, 30, 50]
    cfg = RiskConfig.model_validate({"allocation": own})
    assert risk.allocation_for(3, 0, cfg) == (20, 30, 50)


def test_bad_allocation_table_is_rejected() -> None:
    own = [[list(cell) for cell in row] for row in CFG.allocation]
    own[1][2] = [50, 50, 10]
    with pytest.raises(ValidationError, match=r"allocation\[1\]\[2\] = \[50, 50, 10\] must add up to 100"):
        RiskConfig.model_validate({"allocation": own})


def test_bad_answers_are_all_reported_with_lines() -> None:
    text = "age: 30\nmax_loss_pct: 10\njob: stable_salry\nfamily: single\nhousing: renting\nexperience: none\n" \
           "knowledge: novice\ngoal: capital_gains\nstop_loss: preset\nif_money_is_lost: calm\n" \
           "watches_market: weekly\nown_performance: partly\nincome: 3\n"
    with pytest.raises(SourceErrors) as info:
        risk.parse_sheet(text, "sheet.yaml")
    msg = str(info.value)
    assert "sheet.yaml:3: job: unknown answer 'stable_salry' (did you mean 'stable_salary'?)" in msg
    assert "sheet.yaml:13: income: unknown item 'income'" in msg


def test_missing_item_and_bad_age() -> None:
    with pytest.raises(SourceErrors) as info:
        risk.parse_sheet(json.dumps({"age": -3, "max_loss_pct": 10, **{k: v for k, v in BEST.items() if k != "goal"}}), "s.json")
    msg = str(info.value)
    assert "s.json:1: goal: required item is missing" in msg
    assert "age: Input should be greater than or equal to 0 (got -3)" in msg


def test_cli_prints_breakdown_and_allocation(tmp_path: Path) -> None:
    f = tmp_path / "answers.yaml"
    f.write_text("\n".join(f"{k}: {v}" for k, v in {"age": 34, "max_loss_pct": 10, **BEST}.items()) + "\n", encoding="utf-8")
    out = cli_process.run(["risk", "score", str(f), "--json"], env=dict(os.environ), cwd=ROOT).stdout
    data = json.loads(out)
    assert data["capacity"] == {"score": 91, "level": "high"}
    assert data["tolerance"] == {"score": 70, "level": "medium-high"}
    assert data["allocation"] == {"low": 0, "medium": 20, "high": 80}
    assert {"item": "age", "answer": "34", "points": 41} in data["items"]
    text = cli_process.run(["risk", "score", str(f)], env=dict(os.environ), cwd=ROOT).stdout
    assert "risk capacity   91 (high)" in text and "high-risk 80%" in text


def test_cli_reports_bad_sheet(tmp_path: Path) -> None:
    f = tmp_path / "answers.yaml"
    f.write_text("age: 34\n", encoding="utf-8")
    res = cli_process.run(["risk", "score", str(f)], env=dict(os.environ), cwd=ROOT)
    assert res.returncode == 2 and "job: required item is missing" in res.stderr
