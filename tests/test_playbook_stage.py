"""Segment playbook stage through the real pipeline: which marketing reaches each segment."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from engine.audit import facts_store
from engine.servicing import playbook_stage
from engine.config.base import Config
from engine.language.loading import load_ruleset
from engine.models import CashBalance, CashMovement, Client, Trade
from engine.pipeline.run import run
from engine.pipeline.policy import stages
from engine.pipeline.recording import FIRING
from engine.config.servicing import SegmentPlaybook
from tests import book

D = book.AS_OF
BIRTHDAY = date(1970, D.month, D.day)


def _t(m: Any) -> Any:
    return m.__table__


def build(eng: Engine) -> None:
    """book.build plus one client per segment the playbooks treat differently."""
    book.build(eng)
    old = date(2020, 1, 1)
    with eng.begin() as c:
        c.execute(_t(Client).insert(), [
            book.client("P01", old, birth_date=BIRTHDAY, risk_level=None, risk_assessed_on=None),  # dead
            book.client("P02", old, birth_date=BIRTHDAY),  # settled, large outflow
            book.client("P03", old, birth_date=BIRTHDAY),  # dormant, birthday
            book.client("P04", old),  # dormant, marketing 5 days ago
            book.client("P05", old),  # dormant, marketing 14 days ago, a suppressed one 3 days ago
        ])
        c.execute(_t(CashBalance).insert(), [
            {"as_of": D, "client_id": "P01", "amount": 1_000.0},
            {"as_of": D, "client_id": "P02", "amount": 40_000.0},
            *({"as_of": D, "client_id": cid, "amount": 100_000.0} for cid in ("P03", "P04", "P05")),
        ])
        c.execute(_t(Trade).insert(), [
            {"id": "PT1", "client_id": "P02", "trade_date": D - timedelta(days=3), "symbol": "000001", "side": "buy",
             "quantity": 2000, "price": 10.0, "amount": 20_000.0},
        ])
        c.execute(_t(CashMovement).insert(), [
            {"id": "PM1", "client_id": "P02", "moved_on": D - timedelta(days=4), "kind": "transfer_out", "amount": 100_000.0},
        ])
        c.execute(FIRING.insert(), [
            _old_firing("P04", D - timedelta(days=5), "sent"),
            _old_firing("P05", D - timedelta(days=14), "sent"),
            _old_firing("P05", D - timedelta(days=3), "suppressed"),
        ])


def _old_firing(cid: str, day: date, status: str) -> dict[str, Any]:
    return {"run_id": 0, "as_of": day, "client_id": cid, "advisor_id": "A01", "rule_id": "old_offer", "rule_hash": "x",
            "rule_class": "marketing", "action_type": "message", "channel": "sms", "priority": 30, "locale": "zh-CN",
            "status": status, "policy": [], "facts": {}, "created_at": book.now()}


def firings(eng: Engine) -> dict[tuple[str, str], Any]:
    with eng.connect() as c:
        rows = facts_store.with_facts(c, list(c.execute(select(FIRING).where(FIRING.c.as_of == D))))
        return {(r.rule_id, r.client_id): r for r in rows}


def with_playbooks(cfg: Config, **playbooks: SegmentPlaybook | None) -> Config:
    books = {**cfg.servicing.playbooks, **playbooks}
    books = {k: v for k, v in books.items() if v is not None}
    return cfg.model_copy(update={"servicing": cfg.servicing.model_copy(update={"playbooks": books})})


def trail(row: Any) -> dict[str, Any]:
    return next(t for t in row.policy if t["stage"] == playbook_stage.NAME)


@pytest.fixture
def loaded(db: Engine) -> Engine:
    build(db)
    return db


def test_stage_is_registered_between_suitability_and_consent() -> None:
    names = [s.name for s in stages()]
    assert names.index("segment_playbook") < names.index("consent")
    if "suitability" in names:
        assert names.index("suitability") < names.index("segment_playbook")


def test_dead_client_gets_service_notices_only(loaded: Engine, full_cfg: Config) -> None:
    run(loaded, full_cfg, load_ruleset(full_cfg), D)
    f = firings(loaded)
    greeting = f["birthday_greeting", "P01"]
    assert greeting.facts["segment"] == "dead"
    assert greeting.status == "suppressed" and greeting.reason == "PLAYBOOK_SEGMENT_EXCLUDED"
    assert "service notices only" in trail(greeting)["detail"]
    assert f["risk_reassessment_due", "P01"].status == "pending"  # a service notice still goes out
    assert not any(t["stage"] == playbook_stage.NAME for t in f["risk_reassessment_due", "P01"].policy)


def test_settled_client_gets_only_the_listed_rules(loaded: Engine, full_cfg: Config) -> None:
    run(loaded, full_cfg, load_ruleset(full_cfg), D)
    f = firings(loaded)
    call = f["large_outflow_retention", "P02"]
    assert call.facts["segment"] == "settled"
    assert call.status == "suppressed" and call.reason == "PLAYBOOK_RULE_EXCLUDED"
    assert "does not list large_outflow_retention" in trail(call)["detail"]
    greeting = f["birthday_greeting", "P02"]
    assert greeting.status == "pending" and trail(greeting)["outcome"] == "pass"


def test_cadence_lets_one_marketing_firing_through_per_period(loaded: Engine, full_cfg: Config) -> None:
    run(loaded, full_cfg, load_ruleset(full_cfg), D)
    f = firings(loaded)
    # same day: the higher-priority activation wins the slot, the greeting waits for the cadence
    assert f["dormant_activation", "P03"].status == "pending"
    assert f["birthday_greeting", "P03"].reason == "PLAYBOOK_CADENCE"
    assert "at most one per 14 days" in trail(f["birthday_greeting", "P03"])["detail"]
    # a message sent 5 days ago holds the activation; 14 days ago it no longer does,
    # and a suppressed firing never counts as contact
    assert f["dormant_activation", "P04"].reason == "PLAYBOOK_CADENCE"
    assert f["dormant_activation", "P05"].status == "pending"


def test_channels_outside_the_playbook_are_suppressed(loaded: Engine, full_cfg: Config) -> None:
    c = with_playbooks(full_cfg, dormant=SegmentPlaybook(channels=("phone",), cadence_days=0))
    run(loaded, c, load_ruleset(c), D)
    f = firings(loaded)
    assert f["dormant_activation", "P03"].reason == "PLAYBOOK_CHANNEL_EXCLUDED"
    assert "does not use sms (channels: phone)" in trail(f["dormant_activation", "P03"])["detail"]
    assert f["concentrated_position", "C002"].status == "pending"  # service, same segment


def test_a_segment_without_a_playbook_lets_marketing_through(loaded: Engine, full_cfg: Config) -> None:
    c = with_playbooks(full_cfg, dead=None, dormant=SegmentPlaybook(cadence_days=0))
    run(loaded, c, load_ruleset(c), D)
    f = firings(loaded)
    assert f["birthday_greeting", "P01"].status == "pending"
    assert f["dormant_activation", "P04"].status == "pending"  # cadence 0: only the rule's own cooldown
    assert f["birthday_greeting", "P03"].reason != "PLAYBOOK_CADENCE"


@pytest.mark.parametrize(("playbook", "rule", "channel", "reason"), [
    (SegmentPlaybook(marketing=False), "birthday_greeting", "sms", "PLAYBOOK_SEGMENT_EXCLUDED"),
    (SegmentPlaybook(rules=("a", "b")), "c", "sms", "PLAYBOOK_RULE_EXCLUDED"),
    (SegmentPlaybook(rules=("a",)), "a", "email", None),
    (SegmentPlaybook(channels=("sms",)), "a", "phone", "PLAYBOOK_CHANNEL_EXCLUDED"),
    (SegmentPlaybook(channels=()), "a", "sms", "PLAYBOOK_CHANNEL_EXCLUDED"),
])
def test_exclusion(playbook: SegmentPlaybook, rule: str, channel: str, reason: str | None) -> None:
    assert playbook_stage.exclusion(playbook, "core", rule, channel)[0] == reason


def test_give_up_clients_get_no_advisor_call_by_default() -> None:
    channels = Config.model_fields["servicing"].annotation().quadrant_channels  # type: ignore[misc,union-attr]
    assert playbook_stage.quadrant_exclusion(channels, "give_up", "phone", "")[0] == playbook_stage.QUADRANT_CHANNEL
    assert playbook_stage.quadrant_exclusion(channels, "give_up", "sms", "ok") == (None, "ok")
    assert playbook_stage.quadrant_exclusion(channels, "gold", "phone", "ok") == (None, "ok")
    assert playbook_stage.quadrant_exclusion(channels, None, "phone", "ok") == (None, "ok")


def test_the_value_quadrant_limits_marketing_channels(loaded: Engine, full_cfg: Config) -> None:
    sv = full_cfg.servicing.model_copy(update={"quadrant_channels": {"give_up": ("phone",)}, "quadrant_exempt_tags": ()})
    c = full_cfg.model_copy(update={"servicing": sv})
    run(loaded, c, load_ruleset(c), D)
    f = firings(loaded)
    act = f["dormant_activation", "P03"]
    assert act.facts["value_quadrant"] == "give_up"
    assert act.status == "suppressed" and act.reason == "PLAYBOOK_QUADRANT_CHANNEL"
    assert "value quadrant give_up does not use sms" in trail(act)["detail"]
    assert f["concentrated_position", "C002"].status == "pending"  # service notices are never held


@pytest.mark.parametrize(("exempt", "reason"), [(("activation",), None), ((), "PLAYBOOK_QUADRANT_CHANNEL")])
def test_retention_and_activation_ignore_the_quadrant(loaded: Engine, full_cfg: Config, exempt: tuple[str, ...],
                                                      reason: str | None) -> None:
    sv = full_cfg.servicing.model_copy(update={"quadrant_channels": {"give_up": ("email",)},
                                                "quadrant_exempt_tags": exempt})
    c = full_cfg.model_copy(update={"servicing": sv})
    run(loaded, c, load_ruleset(c), D)
    assert firings(loaded)["dormant_activation", "P03"].reason == reason  # dormant_activation is tagged activation
