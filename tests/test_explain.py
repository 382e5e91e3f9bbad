"""`steward why`: every rule for one client and day, failing conditions with values, policy trail."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from engine.language import expr
from engine.config.base import Config
from engine.errors import StewardError
from engine.supervision.explain import explain_client, failing_leaves
from engine.language.loading import load_ruleset
from engine.pipeline.run import run
from tests.identity_helpers import cli_token
from tests import book
from tests.audit_helpers import events, run_book
from tests.test_cli import steward


def _why(eng: Engine, cfg: Config, client: str, day=book.AS_OF):  # type: ignore[no-untyped-def]
    with eng.connect() as c:
        ex = explain_client(c, cfg, load_ruleset(cfg), client, day)
    return ex, {v.rule_id: v for v in ex.verdicts}


def test_failing_leaf_is_named_with_its_actual_values() -> None:
    node = expr.check(expr.parse("segment == 'dormant' and market_value >= 50000 and "
                                 "(days_since_last_trade is null or days_since_last_trade >= 60)"),
                      {"segment": "string", "market_value": "number", "days_since_last_trade": "number"})
    facts = {"segment": "dormant", "market_value": 1200.0, "days_since_last_trade": 35}
    leaves = failing_leaves(node, facts)
    assert [(lf.text, lf.values) for lf in leaves] == [
        ("market_value >= 50000", {"market_value": 1200.0}),
        ("days_since_last_trade is null or days_since_last_trade >= 60", {"days_since_last_trade": 35}),
    ]
    assert str(leaves[0]) == "market_value >= 50000  (market_value = 1,200)"
    assert failing_leaves(node, {**facts, "market_value": 60000.0, "days_since_last_trade": None}) == []


def test_why_lists_every_rule_fired_or_not(db: Engine, cfg: Config) -> None:
    run_book(db, cfg)
    ex, v = _why(db, cfg, "C002")
    assert set(v) == {r.id for r in load_ruleset(cfg).rules} and ex.evaluated
    fired = v["dormant_activation"]
    assert fired.fired and fired.holds and fired.note == "fired: sms message, status pending"
    callback = v["new_account_callback"]
    assert not callback.fired and not callback.holds
    assert [(lf.text, lf.values) for lf in callback.failing] == [
        ("days_since_open <= 30", {"days_since_open": (book.AS_OF - book.date(2020, 1, 1)).days})]
    assert ex.facts["client_id"] == "C002"


def test_why_shows_the_policy_stage_that_held_a_firing(db: Engine, cfg: Config, monkeypatch) -> None:
    from engine.pipeline import policy
    from tests.test_auditlog import _BlockEnglish

    monkeypatch.setattr(policy, "_STAGES", [])
    policy.register_stage(_BlockEnglish(), 900)
    run_book(db, cfg)
    _, v = _why(db, cfg, "C003")
    held = v["concentrated_position"]
    assert held.fired and held.note == "fired, then suppressed by policy (TEST_EN)"
    assert held.stages == ["test_block_en: suppressed TEST_EN: no English today"]


def test_why_explains_cooldown_and_missing_runs(sqlite_engine: Engine, cfg: Config) -> None:
    book.build(sqlite_engine)
    _, v = _why(sqlite_engine, cfg, "C002")
    assert v["dormant_activation"].note.startswith("condition holds, but no evaluation has run for 2026-11-20")
    run(sqlite_engine, cfg, load_ruleset(cfg), book.AS_OF)
    later = book.AS_OF + timedelta(days=8)
    run(sqlite_engine, cfg, load_ruleset(cfg), later)
    _, v = _why(sqlite_engine, cfg, "C002", later)
    assert v["dormant_activation"].note == (
        "condition holds, but held back by cooldown: last fired 2026-11-20 (cooldown 90d, next possible 2027-02-18)")


def test_why_unknown_or_not_yet_open_client(sqlite_engine: Engine, cfg: Config) -> None:
    book.build(sqlite_engine)
    with pytest.raises(StewardError, match="no client with id 'C999'"):
        _why(sqlite_engine, cfg, "C999")
    with pytest.raises(StewardError, match="client 'C005' opened on 2026-11-23, after 2026-11-20"):
        _why(sqlite_engine, cfg, "C005")


def test_why_command_prints_verdicts_and_logs_the_view(sqlite_engine: Engine, cfg: Config, tmp_path) -> None:
    run_book(sqlite_engine, cfg)
    url = str(sqlite_engine.url)
    token = cli_token(sqlite_engine, "Sup1", ["supervisor"])  # the signed-in reader is logged, not a claimed name
    r = steward("--database", url, "why", "C002", "--date", "2026-11-20", env={"STEWARD_TOKEN": token})
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "FIRED dormant_activation" in out and "failed: days_since_open <= 30 (days_since_open = 2515)" in out
    r = steward("--database", url, "why", "C002", "--date", "2026-11-20", "--json")
    assert "dormant_activation" in {v["rule_id"] for v in json.loads(r.stdout)["rules"] if v["fired"]}
    with sqlite_engine.connect() as c:
        viewed = events(c, "client.viewed")
    assert [(e.actor, e.client_id) for e in viewed][0] == ("sup1", "C002")
    assert viewed[1].actor.startswith("os:")  # no token: the operating-system account
    r = steward("--database", url, "why", "C999", "--date", "2026-11-20")
    assert r.returncode == 2 and "no client with id 'C999'" in r.stderr
