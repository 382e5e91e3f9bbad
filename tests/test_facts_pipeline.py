"""Facts from the database and the nightly pipeline, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from engine.audit import facts_store
from engine.facts import base as facts
from engine.config.base import Config
from engine.language.loading import load_ruleset
from engine.pipeline.run import run
from engine.pipeline.recording import FIRING
from tests import book


@pytest.fixture
def loaded(db: Engine) -> Engine:
    book.build(db)
    return db


def all_facts(eng: Engine, cfg: Config, as_of=book.AS_OF) -> dict:
    with eng.connect() as c:
        return {f["client_id"]: f for batch in facts.iter_batches(c, cfg, as_of, batch_size=2) for f in batch}


def test_facts_are_exact(loaded: Engine, cfg: Config) -> None:
    f = all_facts(loaded, cfg)
    assert set(f) == {"C001", "C002", "C003", "C004"}  # C005 opens later
    new, dormant, conc, called = f["C001"], f["C002"], f["C003"], f["C004"]
    assert new["days_since_open"] == 10 and new["callback_done"] is False
    assert new["market_value"] == 0 and new["holdings_count"] == 0 and new["top_weight"] == 0
    assert new["top_symbol"] is None and new["unrealized_pnl_pct"] is None and new["cash"] is None
    assert new["days_since_last_trade"] is None and new["days_since_contact"] is None
    assert new["segment"] == "dormant"  # new accounts start dormant
    assert called["callback_done"] is True and called["days_since_contact"] == 5
    assert dormant["market_value"] == 10000 * 5 + 1000 * 40 + 10000
    assert dormant["unrealized_pnl_pct"] == pytest.approx((90000 - 90000) / 90000)
    assert dormant["days_since_last_trade"] == 100 and dormant["volume_20d"] == 0
    assert dormant["segment"] == "dormant" and dormant["days_since_contact"] == 40
    assert conc["top_symbol"] == "600519"
    assert conc["top_weight"] == pytest.approx(300000 / 500000)
    assert conc["volume_20d"] == 160000 and conc["trades_20d"] == 2  # the 60-day-old trade is outside
    assert conc["net_flow_20d"] == 50000 - 20000 - 5000
    assert conc["margin_enabled"] is True and conc["maintenance_ratio"] == pytest.approx(1.42)
    assert conc["margin_contract_days_left"] == 25
    assert conc["age"] is None and new["age"] == 46
    assert conc["locale"] == "en" and conc["segment"] == "maintenance"
    assert new["risk_level"] == "C3" and new["risk_assessed_days"] == (book.AS_OF - book.date(2025, 1, 1)).days


def test_every_field_is_declared(loaded: Engine, cfg: Config) -> None:
    declared = set(facts.all_fields())
    for f in all_facts(loaded, cfg).values():
        assert set(f) == declared


def test_run_records_firings_once_and_holds_cooldown(loaded: Engine, cfg: Config) -> None:
    rs = load_ruleset(cfg)
    s = run(loaded, cfg, rs, book.AS_OF)
    assert s.clients == 4
    assert dict(s.per_rule) == {"new_account_callback": 1, "dormant_activation": 1, "concentrated_position": 2}
    with loaded.connect() as c:
        rows = {(r.rule_id, r.client_id): r for r in facts_store.with_facts(c, list(c.execute(select(FIRING))))}
    assert set(rows) == {("new_account_callback", "C001"), ("dormant_activation", "C002"),
                         ("concentrated_position", "C002"), ("concentrated_position", "C003")}
    task = rows["new_account_callback", "C001"]
    assert task.client_id == "C001" and task.action_type == "task" and task.status == "open"
    assert task.due_on == book.AS_OF + timedelta(days=3)
    assert "新开户回访：客户C001" in task.message
    msg = rows["concentrated_position", "C003"]
    assert msg.locale == "en" and "60%" in msg.message and msg.status == "pending"
    assert msg.rule_hash == rs.get("concentrated_position").content_hash
    assert msg.template_hash == rs.renderer.template_hash("concentrated_position")
    assert msg.facts["top_weight"] == pytest.approx(0.6) and msg.facts["opened_on"] == "2019-03-01"

    again = run(loaded, cfg, rs, book.AS_OF)
    assert again.firings == 0 and again.skipped_duplicate == 4
    later = run(loaded, cfg, rs, book.AS_OF + timedelta(days=8))
    # callback task re-issues after its 7-day cooldown; the others hold for 30 and 90 days.
    assert dict(later.per_rule) == {"new_account_callback": 2}  # C001 again, and C005 now open
    assert later.skipped_cooldown == 3
    with loaded.connect() as c:
        assert c.execute(select(func.count()).select_from(FIRING)).scalar() == 6


class _NoSmsToEnglish:
    """A firm-defined stage registered through the public door."""

    name = "test_no_sms_en"

    def prepare(self, ctx) -> None:  # type: ignore[no-untyped-def]
        ctx.cache["prepared"] = True

    def apply(self, ctx, decisions) -> None:  # type: ignore[no-untyped-def]
        assert ctx.cache["prepared"]
        for d in decisions:
            if d.live and d.match.facts["locale"] == "en":
                d.block(self.name, "suppressed", "TEST_EN", "no English SMS today")
            elif d.live:
                d.passed(self.name)


def test_policy_stage_suppresses_with_reason_and_trail(loaded: Engine, cfg: Config, monkeypatch) -> None:
    from engine.pipeline import policy

    monkeypatch.setattr(policy, "_STAGES", [])
    policy.register_stage(_NoSmsToEnglish(), 900)
    s = run(loaded, cfg, load_ruleset(cfg), book.AS_OF)
    assert s.per_reason == {"TEST_EN": 1} and s.firings == 3
    with loaded.connect() as c:
        row = c.execute(select(FIRING).where(FIRING.c.client_id == "C003")).one()
        other = c.execute(select(FIRING).where(FIRING.c.client_id == "C001")).one()
    assert row.status == "suppressed" and row.reason == "TEST_EN" and row.message is None
    assert row.policy == [{"stage": "test_no_sms_en", "outcome": "suppressed", "reason": "TEST_EN", "detail": "no English SMS today"}]
    assert other.status == "open" and other.policy[0]["outcome"] == "pass"


def test_record_hook_sees_rows_in_the_same_transaction(loaded: Engine, cfg: Config, monkeypatch) -> None:
    from engine.pipeline import run as pipeline

    seen: list[int] = []

    def hook(conn, ctx, rows) -> None:  # type: ignore[no-untyped-def]
        ids = {r[0] for r in conn.execute(select(FIRING.c.id))}  # visible: same transaction
        seen.extend(r["id"] for r in rows if r["id"] in ids)

    monkeypatch.setattr(pipeline, "_RECORD_HOOKS", [])
    pipeline.register_record_hook(hook)
    run(loaded, cfg, load_ruleset(cfg), book.AS_OF)
    assert len(seen) == 4 and len(set(seen)) == 4


def test_provider_statements_are_built_once_and_take_each_call_s_values(loaded: Engine, cfg: Config) -> None:
    """Statements are built once per process (per builder and batch form) and reused; the batch, the date
    and the per-run values are parameters, so a later call with other clients or another day
    gets its own answers, not the first call's."""
    fresh = {cid: all_facts(loaded, cfg)[cid] for cid in ("C002", "C003")}
    earlier = book.AS_OF - timedelta(days=30)
    fresh_earlier = all_facts(loaded, cfg, earlier)
    with loaded.connect() as c:
        facts.facts_of(c, cfg, book.AS_OF, ["C001", "C004"])
        built = dict(facts._STATEMENTS)
        assert len({by_ids for _, by_ids in built}) == 2  # the id-list form and the range form
        assert facts.facts_of(c, cfg, book.AS_OF, ["C002", "C003"]) == fresh
        assert facts.facts_for(c, cfg, book.AS_OF, "C003") == fresh["C003"]
        assert facts.facts_of(c, cfg, earlier, ["C002", "C003"]) == {k: fresh_earlier[k] for k in ("C002", "C003")}
    assert all(facts._STATEMENTS[k] is built[k] for k in built)  # the same objects: nothing rebuilt
