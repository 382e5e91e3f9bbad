"""Retention per regulator profile, legal holds, restriction of personal data past its purpose."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

import pytest
from sqlalchemy import Engine

from engine.audit import retention
from engine.audit.log import Event, append
from engine.config.base import Config
from engine.errors import StewardError
from tests.audit_helpers import events

TODAY = date(2046, 6, 1)


def _old_events(eng: Engine) -> None:
    at = lambda y: datetime(y, 3, 1, tzinfo=timezone.utc)  # noqa: E731
    with eng.begin() as c:
        append(c, [Event("rule.fired", actor="engine", client_id="C1", rule_id="outflow_retention", at=at(2020)),
                   Event("rule.fired", actor="engine", client_id="C2", rule_id="dormant_activation", at=at(2020)),
                   Event("rule.fired", actor="engine", client_id="C3", rule_id="dormant_activation", at=at(2030)),
                   Event("rule.fired", actor="engine", client_id="C3", rule_id="dormant_activation", at=at(2046))])


def _cfg(cfg: Config, profile: str = "cn", **retention_kw) -> Config:  # type: ignore[no-untyped-def]
    r = cfg.audit.retention.model_copy(update=retention_kw)
    return cfg.model_copy(update={"regulator_profile": profile, "audit": cfg.audit.model_copy(update={"retention": r})})


def test_years_per_profile_and_aml(cfg: Config) -> None:
    assert retention.years(_cfg(cfg, "cn")) == 20 and retention.years(_cfg(cfg, "us")) == 6
    assert retention.years(_cfg(cfg, "eu")) == 7 and retention.years(_cfg(cfg, "eu", years={"cn": 20, "us": 6, "eu": 5})) == 5
    us = _cfg(cfg, "us", aml_rules=("outflow_retention",))
    assert retention.years(us, "outflow_retention") == 10 and retention.years(us, "dormant_activation") == 6


def test_report_counts_due_held_and_restricted(db: Engine, cfg: Config) -> None:
    _old_events(db)
    with db.connect() as c:
        cn = retention.report(c, _cfg(cfg, "cn"), TODAY)
        us = retention.report(c, _cfg(cfg, "us", aml_rules=("outflow_retention",)), TODAY)
    assert (cn.years, cn.due, cn.held) == (20, 2, 0)  # the two 2020 events are 26 years old
    assert (us.years, us.due) == (6, 3)  # 2020 (AML, 10y) x1, 2020 x1, 2030 x1
    assert cn.restricted == 3 and cn.events == 4  # older than 1095 days
    with db.begin() as c:
        hold = retention.place_hold(c, "C2", "court order 2046-17", "legal1")
    with db.connect() as c:
        held = retention.report(c, _cfg(cfg, "cn"), TODAY)
    assert (held.due, held.held) == (1, 1) and [h.client_id for h in held.holds] == ["C2"]
    with db.begin() as c:
        retention.release_hold(c, hold, "legal1")
        rep = retention.apply(c, _cfg(cfg, "cn"), TODAY, "ops")
    assert (rep.due, rep.held) == (2, 0)
    with db.connect() as c:
        names = [e.name for e in events(c)]
        applied = json.loads(events(c, "retention.applied")[0].body)["data"]
    assert names[-3:] == ["hold.placed", "hold.released", "retention.applied"]
    assert applied["due_for_disposal"] == 2 and applied["profile"] == "cn"


def test_hold_errors(sqlite_engine: Engine) -> None:
    with sqlite_engine.begin() as c:
        with pytest.raises(StewardError, match="--reason: a legal hold names its reason"):
            retention.place_hold(c, "C1", " ", "legal1")
        with pytest.raises(StewardError, match="no active legal hold with id 7"):
            retention.release_hold(c, 7, "legal1")


def test_restricted_views_mask_personal_data_but_keep_the_rest(cfg: Config) -> None:
    data = {"facts": {"name": "王芳", "age": 70, "segment": "core", "birth_date": None}, "text": "王芳您好", "policy": []}
    masked = retention.restrict(data)
    assert masked["facts"] == {"name": retention.RESTRICTED, "age": retention.RESTRICTED, "segment": "core", "birth_date": None}
    assert masked["text"] == retention.RESTRICTED and data["facts"]["name"] == "王芳"  # the record itself is untouched
    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    assert retention.is_restricted(old, date(2023, 1, 2), cfg) and not retention.is_restricted(old, date(2022, 12, 31), cfg)


def test_audit_show_masks_restricted_records_unless_unmasked_with_reason(sqlite_engine: Engine) -> None:
    from tests.test_cli import steward

    with sqlite_engine.begin() as c:
        append(c, [Event("rule.fired", actor="engine", client_id="C1", at=datetime(2020, 1, 1, tzinfo=timezone.utc),
                         data={"facts": {"name": "王芳"}, "message": {"subject": "王芳", "text": "王芳您好，市场有风险"}})])
    url = str(sqlite_engine.url)
    r = steward("--database", url, "audit", "show", "1")
    assert r.returncode == 0 and "王芳" not in r.stdout and "restricted" in r.stdout
    r = steward("--database", url, "audit", "show", "1", "--unmask", "complaint 2026-88", env={"STEWARD_USER": "sup1"})
    assert r.returncode == 0 and "王芳您好" in r.stdout
    with sqlite_engine.connect() as c:
        viewed = [json.loads(e.body)["data"] for e in events(c, "client.viewed")]
    assert viewed[-1]["unmasked_because"] == "complaint 2026-88" and viewed[0]["unmasked_because"] is None
    r = steward("--database", url, "audit", "retention")
    assert r.returncode == 0 and "kept 20 years" in r.stdout and "1 restricted" in r.stdout


def test_audit_show_masks_a_facts_snapshot_stored_by_reference(sqlite_engine: Engine) -> None:
    """A rule.fired event written since issue 16 names its snapshot by hash: `audit show` loads it
    from the facts store and masks its personal data like an inline one."""
    from engine.audit import facts_store
    from engine.audit.log import canonical, sha256_text
    from tests.test_cli import steward

    snapshot = canonical({"name": "王芳", "birth_date": "1956-01-02", "age": 70, "phone": "13800000000",
                          "email": "wf@example.cn", "segment": "core_keep"})
    h = sha256_text(snapshot)
    with sqlite_engine.begin() as c:
        facts_store.put(c, {h: snapshot})
        append(c, [Event("rule.fired", actor="engine", client_id="C1", at=datetime(2020, 1, 1, tzinfo=timezone.utc),
                         data={"facts_sha256": h, "message": None})])
    url = str(sqlite_engine.url)
    r = steward("--database", url, "audit", "show", "1")
    assert r.returncode == 0 and "restricted" in r.stdout and "core_keep" in r.stdout  # the snapshot is shown ...
    for personal in ("王芳", "1956-01-02", "13800000000", "wf@example.cn", ": 70"):
        assert personal not in r.stdout  # ... its personal data masked
    r = steward("--database", url, "audit", "show", "1", "--unmask", "complaint 2026-89", env={"STEWARD_USER": "sup1"})
    assert r.returncode == 0 and "王芳" in r.stdout and "13800000000" in r.stdout
