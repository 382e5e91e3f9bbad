"""Contact policy through the real pipeline: consent, do-not-call, quiet hours (hold, release,
drop), frequency caps and arbitration, each with its reason code."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from engine.config.base import Config
from engine.config.dispatch import FrequencyCap
from engine.dispatch.tables import DoNotCall
from engine.language.loading import RuleSet, load_ruleset
from engine import clock
from engine.models import Client, Consent, Holding
from engine.dispatch.outbox import OUTBOX, dispatch_once
from engine.pipeline.run import run
from engine.pipeline.recording import FIRING
from engine.dispatch.release import release_due
from tests import book
from tests.dispatch_helpers import Gateway, with_dispatch

ROOT = Path(__file__).resolve().parent.parent
DAY = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)  # 17:00 in Shanghai, after the close
NIGHT = datetime(2026, 11, 20, 14, 30, tzinfo=timezone.utc)  # 22:30 in Shanghai


@pytest.fixture(autouse=True)
def only_contact_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about the contact-policy stages: other firms' and helpers' stages
    (segment playbooks, ...) are left out so each verdict here is this module's."""
    from engine.pipeline import policy

    mine = {"consent", "do_not_call", "contact_window", "frequency_cap", "arbitration"}
    monkeypatch.setattr(policy, "_STAGES", [(o, s) for o, s in policy._STAGES if s.name in mine])

@pytest.fixture
def loaded(db: Engine) -> Engine:
    book.build(db)
    return db


def _at(when: datetime) -> None:
    """Set the test clock (tests/conftest.py installs a FixedClock for every test)."""
    c = clock.current()
    assert isinstance(c, clock.FixedClock)
    c.set(when)


def _firings(eng: Engine) -> dict[tuple[str, str], object]:
    with eng.connect() as c:
        return {(r.rule_id, r.client_id): r for r in c.execute(select(FIRING))}


def _outbox(eng: Engine) -> dict[tuple[str, str], object]:
    with eng.connect() as c:
        return {(r.rule_id, r.client_id): r for r in c.execute(select(OUTBOX))}


def _stage(row: object, stage: str) -> dict[str, object]:
    return next(t for t in row.policy if t["stage"] == stage)  # type: ignore[attr-defined]


def _consent(eng: Engine, cid: str, channel: str, purpose: str, status: str) -> None:
    with eng.begin() as c:
        c.execute(Consent.__table__.insert(), [{"client_id": cid, "channel": channel, "purpose": purpose, "status": status,  # type: ignore[attr-defined]
                                                "recorded_at": DAY, "evidence": "test"}])


def test_a_marketing_opt_out_on_one_channel_stops_marketing_on_all(loaded: Engine, cfg: Config, monkeypatch) -> None:
    _at(DAY)
    _consent(loaded, "C002", "email", "marketing", "opted_out")
    run(loaded, cfg, load_ruleset(cfg), book.AS_OF)
    f = _firings(loaded)
    act, svc = f["dormant_activation", "C002"], f["concentrated_position", "C002"]
    assert act.status == "suppressed" and act.reason == "OPTED_OUT_MARKETING" and "email" in _stage(act, "consent")["detail"]
    assert svc.status == "pending"  # service notices do not depend on marketing consent
    assert ("dormant_activation", "C002") not in _outbox(loaded)


def test_a_channel_opt_out_stops_that_channel_and_opt_in_mode_needs_consent(loaded: Engine, cfg: Config, monkeypatch) -> None:
    _at(DAY)
    _consent(loaded, "C003", "sms", "service", "opted_out")
    run(loaded, with_dispatch(cfg, require_marketing_consent=True), load_ruleset(cfg), book.AS_OF)
    f = _firings(loaded)
    assert f["concentrated_position", "C003"].reason == "OPTED_OUT_CHANNEL"
    assert f["dormant_activation", "C002"].reason == "CONSENT_MISSING"
    assert f["concentrated_position", "C002"].status == "pending"


@pytest.mark.parametrize("blocks_service", [False, True])
def test_do_not_call_list_is_checked_before_a_call_task(loaded: Engine, cfg: Config, monkeypatch, blocks_service: bool) -> None:
    _at(DAY)
    with loaded.begin() as c:
        c.execute(update(Client.__table__).where(Client.__table__.c.id == "C001").values(phone="13900000009"))  # type: ignore[attr-defined]
        c.execute(DoNotCall.__table__.insert(), [{"phone": "13900000009", "source": "national", "note": None, "added_at": DAY}])  # type: ignore[attr-defined]
    run(loaded, with_dispatch(cfg, do_not_call_blocks_service=blocks_service), load_ruleset(cfg), book.AS_OF)
    task = _firings(loaded)["new_account_callback", "C001"]
    if blocks_service:
        assert task.status == "suppressed" and task.reason == "DO_NOT_CALL"
    else:
        assert task.status == "open" and "service call allowed" in _stage(task, "do_not_call")["detail"]


def test_quiet_hours_hold_then_release_after_recheck(loaded: Engine, cfg: Config, monkeypatch) -> None:
    _at(NIGHT)
    rs = load_ruleset(cfg)
    run(loaded, cfg, rs, book.AS_OF)
    f, o = _firings(loaded), _outbox(loaded)
    conc = f["concentrated_position", "C003"]
    assert conc.status == "pending" and conc.message  # rendered and recorded, waiting for the window
    assert _stage(conc, "contact_window") == {"stage": "contact_window", "outcome": "held", "reason": "WINDOW_QUIET_HOURS",
                                              "detail": "held until 2026-11-21T01:00:00+00:00"}
    held = o["concentrated_position", "C003"]
    assert held.state == "held" and held.reason == "WINDOW_QUIET_HOURS"
    c = with_dispatch(cfg, gateway={"url": "http://127.0.0.1:9/unused"})
    assert release_due(loaded, c, rs, now=NIGHT + timedelta(hours=1)).released == 0  # still night
    with loaded.begin() as conn:  # C002 sold down overnight: its reminder no longer applies
        conn.execute(Holding.__table__.delete().where(Holding.__table__.c.client_id == "C002"))  # type: ignore[attr-defined]
        conn.execute(update(Client.__table__).where(Client.__table__.c.id == "C003").values(phone="13800000003"))  # type: ignore[attr-defined]
    morning = datetime(2026, 11, 21, 1, 0, tzinfo=timezone.utc)
    s = release_due(loaded, c, rs, now=morning)
    o = _outbox(loaded)
    assert o["concentrated_position", "C003"].state == "queued"
    assert o["concentrated_position", "C002"].state == "dropped" and o["concentrated_position", "C002"].reason == "CONDITION_GONE"
    assert _firings(loaded)["concentrated_position", "C002"].status == "dropped"
    with Gateway() as gw:
        sent = dispatch_once(loaded, with_dispatch(cfg, gateway={"url": gw.url}), now=morning)
    assert s.released >= 1 and sent.sent == 1 and gw.deliveries[0]["to"] == "13800000003"
    assert [e["event"] for e in _outbox(loaded)["concentrated_position", "C003"].trail][:2] == ["held", "released"]


def _rules(tmp_path: Path, cfg: Config, *extra: str) -> RuleSet:
    """The shipped rules plus variants of dormant_activation (same template) with other settings."""
    d = tmp_path / "rules"
    d.mkdir()
    for p in (ROOT / "rules").glob("*.yaml"):
        (d / p.name).write_text(p.read_text(encoding="utf-8"), encoding="utf-8")
    base = (ROOT / "rules" / "dormant_activation.yaml").read_text(encoding="utf-8")
    for spec in extra:
        rid, *settings = spec.split(";")
        # a variant is not a step of the activation sequence: it must not stop once step 1 went out
        text = base.replace("id: dormant_activation", f"id: {rid}").replace("\n  and activation_step == 0", "")
        for s in settings:
            key, value = s.split("=")
            text = text.replace("  priority: 40", f"  priority: {value}") if key == "priority" else text + f"{key}: {value}\n"
        (d / f"{rid}.yaml").write_text(text, encoding="utf-8")
    return load_ruleset(cfg, [d])


def test_outside_window_drop_and_urgent_bypass(loaded: Engine, cfg: Config, tmp_path: Path, monkeypatch) -> None:
    _at(NIGHT)
    conc = (ROOT / "rules" / "concentrated_position.yaml").read_text(encoding="utf-8")
    rs = _rules(tmp_path, cfg, "activation_drop;priority=30;outside_window=drop;on_conflict=drop")
    (tmp_path / "rules" / "concentrated_position.yaml").write_text(conc + "urgent: true\n", encoding="utf-8")
    rs = load_ruleset(cfg, [tmp_path / "rules"])
    run(loaded, with_dispatch(cfg, max_marketing_per_day=5), rs, book.AS_OF)
    f, o = _firings(loaded), _outbox(loaded)
    assert f["activation_drop", "C002"].status == "dropped" and f["activation_drop", "C002"].reason == "WINDOW_CLOSED"
    assert o["dormant_activation", "C002"].state == "held"
    urgent = f["concentrated_position", "C003"]
    assert "WINDOW_BYPASS_URGENT" in _stage(urgent, "contact_window")["detail"]
    assert o["concentrated_position", "C003"].state == "queued" and o["concentrated_position", "C003"].bypass_window


def test_frequency_cap_drops_marketing_but_not_service(loaded: Engine, cfg: Config, monkeypatch) -> None:
    _at(DAY)
    c = with_dispatch(cfg, frequency_caps=(FrequencyCap(channel="sms", max=1, period="7d"),))
    with loaded.begin() as conn:  # a marketing SMS went out three days ago
        prev = {k: None for k in FIRING.c.keys() if k != "id"}
        prev.update(run_id=0, as_of=book.AS_OF - timedelta(days=3), client_id="C002", rule_id="birthday", rule_hash="x",
                    rule_class="marketing", action_type="message", channel="sms", priority=10, locale="zh-CN",
                    status="sent", policy=[], facts={}, created_at=DAY)
        conn.execute(FIRING.insert(), [prev])
    run(loaded, c, load_ruleset(cfg), book.AS_OF)
    f = _firings(loaded)
    act = f["dormant_activation", "C002"]
    assert act.status == "dropped" and act.reason == "FREQUENCY_CAP"
    assert _stage(act, "frequency_cap")["detail"] == "1 marketing sms contact(s) within 7d (max 1)"
    assert f["concentrated_position", "C002"].status == "pending"  # service is exempt


def test_arbitration_defers_or_drops_the_lower_priorities(loaded: Engine, cfg: Config, tmp_path: Path, monkeypatch) -> None:
    _at(DAY)
    rs = _rules(tmp_path, cfg, "activation_b;priority=30", "activation_c;priority=20;on_conflict=drop")
    c = with_dispatch(cfg, frequency_caps=())
    run(loaded, c, rs, book.AS_OF)
    f, o = _firings(loaded), _outbox(loaded)
    assert f["dormant_activation", "C002"].status == "pending"
    b, cc = f["activation_b", "C002"], f["activation_c", "C002"]
    assert b.status == "deferred" and b.reason == "ARBITRATION_DEFERRED" and "dormant_activation first" in _stage(b, "arbitration")["detail"]
    assert cc.status == "dropped" and cc.reason == "ARBITRATION_DROPPED"
    held = o["activation_b", "C002"]
    assert held.state == "held" and held.body is None
    assert held.not_before.replace(tzinfo=timezone.utc) == datetime(2026, 11, 21, 1, 0, tzinfo=timezone.utc)
    s = release_due(loaded, c, rs, now=datetime(2026, 11, 21, 2, 0, tzinfo=timezone.utc))
    row = _outbox(loaded)["activation_b", "C002"]
    assert s.released == 1 and row.state == "queued" and "【示例证券】" in row.body
    assert _firings(loaded)["activation_b", "C002"].status == "pending"


def test_a_held_message_is_dropped_on_release_when_an_opt_out_or_a_rule_edit_came_overnight(
        loaded: Engine, cfg: Config, tmp_path: Path, monkeypatch) -> None:
    _at(NIGHT)
    rs = load_ruleset(cfg)
    run(loaded, cfg, rs, book.AS_OF)
    assert _outbox(loaded)["dormant_activation", "C002"].state == "held"
    _consent(loaded, "C002", "sms", "marketing", "opted_out")
    _rules(tmp_path, cfg)  # a copy of the pack ...
    conc = tmp_path / "rules" / "concentrated_position.yaml"
    conc.write_text(conc.read_text(encoding="utf-8").replace("priority: 60", "priority: 61"), encoding="utf-8")
    edited = load_ruleset(cfg, [tmp_path / "rules"])  # ... with concentrated_position edited
    release_due(loaded, cfg, edited, now=datetime(2026, 11, 21, 1, 0, tzinfo=timezone.utc))
    o = _outbox(loaded)
    assert (o["dormant_activation", "C002"].state, o["dormant_activation", "C002"].reason) == ("dropped", "OPTED_OUT_MARKETING")
    assert (o["concentrated_position", "C003"].state, o["concentrated_position", "C003"].reason) == ("dropped", "RULE_CHANGED")
