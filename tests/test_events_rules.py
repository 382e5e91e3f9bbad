"""Event rules: the YAML form's errors, the timed rule tests as data, sequences and absences on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engine.facts import base as facts
from engine.config.base import Config, parse_config
from engine.errors import SourceErrors
from engine.language.event_rules import load_event_rules, parse_event_rule
from engine.events.ruletest import Bench, bench, case_files, load_test_file, run_all
from engine.yamlio import load_file
from tests import book
from tests.events_helpers import TZ, cash, deadlines, firings, margin, service

ROOT = Path(__file__).resolve().parent.parent


CFG = parse_config(load_file(ROOT / "config.yaml"), "config.yaml", ROOT)
TIMED = [(p, i, c.name) for p in case_files(CFG) for i, c in enumerate(load_test_file(p).cases)]


@pytest.fixture(scope="module")
def timed_bench() -> Iterator[Bench]:
    """Shared by the cases below; each case still runs from a clean state, so pytest's order,
    -k selection or -n distribution cannot change a verdict."""
    with bench(load_event_rules(CFG), CFG) as b:
        yield b


@pytest.mark.parametrize(("path", "index"), [(p, i) for p, i, _ in TIMED], ids=[f"{p.stem}: {n}" for p, _, n in TIMED])
def test_timed_rule_case(timed_bench: Bench, path: Path, index: int) -> None:
    result = timed_bench.run_one(path, load_test_file(path), index)
    assert result.ok, result.detail


def test_every_shipped_event_rule_has_timed_cases() -> None:
    rules = load_event_rules(CFG)
    assert {load_test_file(p).rule for p in case_files(CFG)} == {r.id for r in rules.rules}
    assert len(case_files(CFG)) == 6


def test_a_wrong_expectation_is_reported_with_times(cfg: Config, tmp_path: Path) -> None:
    f = tmp_path / "t.yaml"
    f.write_text("rule: margin_closeout_event\ncases:\n  - name: x\n    events:\n"
                 "      - {at: '2026-11-20 10:30', type: margin_ratio, maintenance_ratio: 1.2}\n"
                 "    expect: [{at: '2026-11-20 10:31'}]\n", encoding="utf-8")
    [r] = run_all(load_event_rules(cfg), cfg, [f])
    assert not r.ok and r.detail == "expected firings at ['2026-11-20 10:31'], got ['2026-11-20 10:30']"


BAD = """id: bad_rule
kind: event
title: t
description: d
owner: o
class: service
on: trade
when: event_pricee > 1
action: {type: task, channel: phone, template: trade_off_market_alert}
"""


@pytest.mark.parametrize(("text", "expected"), [
    (BAD, ["bad_rule.yaml:7: True: YAML reads the key on: as true: write event: TYPE instead"]),
    (BAD.replace("on: trade\nwhen: event_pricee > 1\n", ""),
     ["bad_rule.yaml:1: an event rule has exactly one of event:, sequence: or absence: (got none)"]),
    (BAD.replace("on: trade", "event: trade"),
     ["bad_rule.yaml:8: when: unknown fact field 'event_pricee' (did you mean 'event_price'?) at column 1: 'event_pricee > 1'"]),
    (BAD.replace("on: trade\nwhen: event_pricee > 1", "sequence: {first: {event: trade}, then: {event: login}, within: 5x}"),
     ["bad_rule.yaml:7: sequence.within: expected 5td (trading days) or a duration such as 30d, 12h or 45min (got '5x')"]),
    (BAD.replace("on: trade\nwhen: event_pricee > 1", "absence: {start: {event: trades}, cured_by: {event: login}, deadline: 3td}"),
     ["bad_rule.yaml:7: absence.start.event: Input should be 'trade', 'cash_movement', 'margin_ratio', 'order', 'task_outcome' or 'login' (got 'trades')"]),
])
def test_rule_errors_name_file_line_key_and_fix(text: str, expected: list[str]) -> None:
    rule, problems = parse_event_rule(text, "bad_rule.yaml", facts.field_types())
    assert rule is None
    assert [str(p) for p in problems] == expected


def test_event_rule_id_may_not_reuse_a_snapshot_rule_id(cfg: Config) -> None:
    with pytest.raises(SourceErrors) as e:
        load_event_rules(cfg, snapshot_ids={"margin_closeout_event"})
    assert "also a snapshot rule" in str(e.value)


def test_sequence_state_survives_a_restart(db: Engine, cfg: Config) -> None:
    book.build(db)
    first = service(db, cfg)
    first.post([cash("w1", "2026-11-16 10:01", "withdrawal", 200000.0, client="C002")])
    first.start()
    restarted = service(db, cfg)  # a new process: durable-rules state is gone, the mark is in the database
    restarted.post([cash("x1", "2026-11-19 10:05", "transfer_out", 1000.0, client="C002")])
    restarted.start()
    [f] = firings(db, "withdrawal_then_transfer_out")
    assert f.facts["first_id"] == "w1" and f.facts["event_id"] == "x1"


def test_armed_deadlines_survive_a_restart_and_fire_once(db: Engine, cfg: Config) -> None:
    book.build(db)
    before = service(db, cfg)
    before.post([margin("m1", "2026-11-20 10:02", 1.42)])
    before.start()
    assert [d.state for d in deadlines(db)] == ["armed"]
    after = service(db, cfg)
    after.start()
    assert after.tick(datetime(2026, 11, 23, 14, 59, tzinfo=TZ)) == 0
    assert after.tick(datetime(2026, 11, 23, 15, 0, tzinfo=TZ)) == 1
    assert after.tick(datetime(2026, 11, 23, 16, 0, tzinfo=TZ)) == 0
    assert before.tick(datetime(2026, 11, 23, 16, 0, tzinfo=TZ)) == 0
    assert [d.state for d in deadlines(db)] == ["fired"]
    assert len(firings(db, "margin_warning_uncured")) == 1


def test_a_stored_cure_is_replayed_before_deadlines_fire(db: Engine, cfg: Config) -> None:
    book.build(db)
    s = service(db, cfg)
    s.post([margin("m1", "2026-11-20 10:02", 1.42)])
    s.start()
    s.post([margin("m2", "2026-11-23 14:00", 1.60)])  # stored; the process dies before processing it
    restarted = service(db, cfg)
    restarted.start()
    assert restarted.tick(datetime(2026, 11, 23, 16, 0, tzinfo=TZ)) == 0
    assert [d.state for d in deadlines(db)] == ["cured"]


def test_docs_list_every_event_field_and_shipped_rule(cfg: Config) -> None:
    from engine.language.event_schema import event_fields_doc

    text = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    assert event_fields_doc() in text, "docs/events.md: paste engine.language.event_schema.event_fields_doc() again"
    missing = [r.id for r in load_event_rules(cfg).rules if f"`{r.id}`" not in text]
    assert not missing, f"docs/events.md lacks the event rules {missing}"
