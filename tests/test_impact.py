"""Impact preview: the counts equal a direct evaluation over the same dates, and nothing is left behind."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlmodel import SQLModel

from engine.compliance import impact
from engine.config.base import Config
from engine.errors import StewardError
from engine.language.loading import RuleSet, load_ruleset
from engine.models import EvaluationRun
from engine.pipeline.run import run
from engine.pipeline.recording import FIRING
from tests import book
from tests.compliance_helpers import copy_shipped, pack_config, rule_yaml

START, END = book.AS_OF - timedelta(days=1), book.AS_OF + timedelta(days=8)
RUN = EvaluationRun.__table__  # type: ignore[attr-defined]


@pytest.fixture
def versions(tmp_path: Path, cfg: Config) -> tuple[Config, RuleSet, RuleSet]:
    """The approved pack, and a proposal that tightens one rule and adds another."""
    copy_shipped(tmp_path / "a")
    copy_shipped(tmp_path / "b")
    c_old, c_new = pack_config(cfg, tmp_path / "a"), pack_config(cfg, tmp_path / "b")
    p = tmp_path / "b/rules/concentrated_position.yaml"
    p.write_text(p.read_text(encoding="utf-8").replace("top_weight >= 40%", "top_weight >= 55%"), encoding="utf-8")
    (tmp_path / "b/rules/big_account.yaml").write_text(
        rule_yaml("big_account", cls="service", when="market_value >= 100000", template="concentrated_position"), encoding="utf-8")
    return c_new, load_ruleset(c_old), load_ruleset(c_new)


def direct(eng: Engine, cfg: Config, ruleset: RuleSet, days: list[date]) -> dict[str, set[tuple[str, date]]]:
    """Run the real pipeline day by day, read who was contacted, then clear the firings again."""
    for d in days:
        run(eng, cfg, ruleset, d)
    with eng.begin() as c:
        rows = list(c.execute(select(FIRING.c.rule_id, FIRING.c.client_id, FIRING.c.as_of, FIRING.c.status)))
        c.execute(delete(FIRING))
        c.execute(delete(SQLModel.metadata.tables["outbox"]))  # the next version's run queues afresh
    out: dict[str, set[tuple[str, date]]] = {}
    for r in rows:
        if r.status not in impact.BLOCKED:
            out.setdefault(r.rule_id, set()).add((r.client_id, r.as_of))
    return out


def test_preview_counts_match_a_direct_evaluation(db: Engine, versions: tuple[Config, RuleSet, RuleSet]) -> None:
    cfg, approved, proposed = versions
    book.build(db)
    preview = impact.compare(db, cfg, approved, proposed, START, END, include_unchanged=True)
    with db.connect() as c:  # the preview left nothing behind
        assert c.execute(select(func.count()).select_from(FIRING)).scalar() == 0
        assert c.execute(select(func.count()).select_from(RUN)).scalar() == 0
    days = impact.days_between(START, END)
    old, new = direct(db, cfg, approved, days), direct(db, cfg, proposed, days)
    expected = {}
    for rid in sorted(set(old) | set(new) | {r.id for r in proposed.rules}):
        a, b = old.get(rid, set()), new.get(rid, set())
        expected[rid] = (len(b - a), len(a - b), len(a & b))
    got = {r.rule_id: (r.added, r.removed, r.unchanged) for r in preview.rules}
    assert got == expected
    assert got["concentrated_position"][1] == 1  # C002 at 50% is no longer reminded
    assert got["big_account"][0] > 0 and got["new_account_callback"] == (0, 0, 3)  # C001 x2, C005 once open
    states = {r.rule_id: r.state for r in preview.rules}
    assert states == {"big_account": "new", "concentrated_position": "changed",
                      "dormant_activation": "unchanged", "new_account_callback": "unchanged"}


def test_preview_shows_samples_per_locale_and_only_changed_rules(db: Engine, versions: tuple[Config, RuleSet, RuleSet]) -> None:
    cfg, approved, proposed = versions
    book.build(db)
    preview = impact.compare(db, cfg, approved, proposed, book.AS_OF, book.AS_OF)
    assert [r.rule_id for r in preview.rules] == ["big_account", "concentrated_position"]
    samples = preview.rules[0].samples
    assert set(samples) == {"zh-CN", "en"}
    assert samples["en"].client_id == "C003" and "600519" in samples["en"].text


def test_backtest_sets_later_firings_aside(db: Engine, versions: tuple[Config, RuleSet, RuleSet]) -> None:
    cfg, approved, proposed = versions
    book.build(db)
    run(db, cfg, approved, book.AS_OF)  # a real run on the last day of the range
    again = impact.compare(db, cfg, approved, proposed, book.AS_OF, book.AS_OF, only={"concentrated_position"})
    assert impact.as_dict(again)["concentrated_position"]["unchanged"] == 1  # not "already recorded today"
    with db.connect() as c:
        assert c.execute(select(func.count()).select_from(FIRING)).scalar() == 4  # the real firings are intact


def test_range_is_checked() -> None:
    with pytest.raises(StewardError, match="--to 2026-11-01 is before --from 2026-11-02"):
        impact.days_between(date(2026, 11, 2), date(2026, 11, 1))
    with pytest.raises(StewardError, match="100 days is too long a preview"):
        impact.days_between(date(2026, 1, 1), date(2026, 1, 1) + timedelta(days=99))
