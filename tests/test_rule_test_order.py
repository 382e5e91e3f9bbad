"""A rule test's verdict depends only on its own file (issue 17).

The shipped timed event cases and snapshot cases pass in file order, reversed and
shuffled (fixed seed), each time with an extra file of later-dated cases run first.
The extra event file is the issue's reproduction (tests/data/rule_tests_later_file):
an absence rule whose cases start on 2026-11-20; when every case shared one scratch
database, its client's later cash-balance day hid the next file's client's cash and
withdrawal_then_transfer_out failed with PLAYBOOK_SEGMENT_EXCLUDED.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from engine.config.base import parse_config
from engine.events import ruletest as event_tests
from engine.language.event_rules import EventRuleSet, load_event_rules
from engine.language.loading import RuleSet, load_ruleset
from engine.pipeline import ruletest as snapshot_tests
from engine.yamlio import load_file

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "rule_tests_later_file"
CFG = parse_config(load_file(ROOT / "config.yaml"), "config.yaml", ROOT)
SEED = 17
LATER_EVENTS = DATA / "events" / "tests" / "large_deposit_no_trade.yaml"
LATER_SNAPSHOT = DATA / "snapshot" / "later.yaml"

Order = list[tuple[Path, int]]


def _orders(files: list[Path], cases: dict[Path, int], extra: Path, reverse: bool = True) -> dict[str, Order]:
    """(file, case index) in file order, all reversed, and shuffled across files; `extra` first."""
    forward = [(p, i) for p in files for i in range(cases[p])]
    shuffled = forward[:]
    random.Random(SEED).shuffle(shuffled)
    first = [(extra, i) for i in range(cases[extra])]
    out = {"file order": first + forward, "shuffled": first + shuffled}
    if reverse:
        out["reversed"] = first + forward[::-1]
    return out


@pytest.fixture(scope="module")
def event_rules(tmp_path_factory: pytest.TempPathFactory) -> EventRuleSet:
    """The shipped event rules and templates plus the reproduction's absence rule."""
    d = tmp_path_factory.mktemp("rules")
    shutil.copytree(ROOT / "templates", d / "templates")
    shutil.copytree(DATA / "templates", d / "templates", dirs_exist_ok=True)
    (d / "events").mkdir()
    for p in [*(ROOT / "rules" / "events").glob("*.yaml"), *(DATA / "events").glob("*.yaml")]:
        shutil.copy(p, d / "events")
    return load_event_rules(CFG, d / "events", d / "templates")


def test_event_cases_pass_in_any_order_after_a_later_dated_file(event_rules: EventRuleSet) -> None:
    files = event_tests.case_files(CFG)
    loaded = {p: event_tests.load_test_file(p) for p in [*files, LATER_EVENTS]}
    assert min(str(e["at"]) for c in loaded[LATER_EVENTS].cases for e in c.events) > min(
        str(e["at"]) for p in files for c in loaded[p].cases for e in c.events), "the extra file must start later"
    with event_tests.bench(event_rules, CFG) as b:
        # reversed: test_run_all_takes_files_in_the_order_given (the path `steward events test` takes)
        for name, order in _orders(files, {p: len(t.cases) for p, t in loaded.items()}, LATER_EVENTS, False).items():
            results = [b.run_one(p, loaded[p], i) for p, i in order]
            failed = [f"{r.rule}: {r.case}: {r.detail}" for r in results if not r.ok]
            assert not failed, f"{name}:\n" + "\n".join(failed)
            assert len(results) == sum(len(t.cases) for t in loaded.values())


def test_run_all_takes_files_in_the_order_given(event_rules: EventRuleSet) -> None:
    """Files reversed, the later-dated file first: failed before each case had its own database."""
    files = event_tests.case_files(CFG)
    results = event_tests.run_all(event_rules, CFG, [LATER_EVENTS, *files[::-1]])
    assert [r.rule for r in results][:3] == ["large_deposit_no_trade"] * 3
    assert all(r.ok for r in results), [r.detail for r in results if not r.ok]


def test_a_case_may_not_run_its_clock_backwards(event_rules: EventRuleSet, tmp_path: Path) -> None:
    f = tmp_path / "t.yaml"
    f.write_text("rule: margin_closeout_event\ncases:\n  - name: x\n    events:\n"
                 "      - {at: '2026-11-20 10:30', type: margin_ratio, maintenance_ratio: 1.2}\n"
                 "    until: '2026-11-20 10:00'\n    expect: []\n", encoding="utf-8")
    [r] = event_tests.run_all(event_rules, CFG, [f])
    assert not r.ok and r.detail.startswith(
        "until 2026-11-20 10:00 is before the case's last event at 2026-11-20 10:30: a case's clock only moves forward")


def test_a_case_database_is_closed_once_the_case_ends(event_rules: EventRuleSet) -> None:
    with event_tests.bench(event_rules, CFG) as b:
        with b.fresh() as svc:
            pass
        with pytest.raises(RuntimeError, match="only open while a case runs"):
            svc.engine.connect()
        assert [p.name for p in b.folder.iterdir()] == ["template.db"]


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return load_ruleset(CFG)


def test_snapshot_cases_pass_in_any_order_after_a_later_dated_file(ruleset: RuleSet) -> None:
    files = snapshot_tests.case_files(CFG.rules_paths)
    loaded = {p: snapshot_tests.load_test_file(p) for p in [*files, LATER_SNAPSHOT]}
    assert loaded[LATER_SNAPSHOT].as_of > max(t.as_of for p, t in loaded.items() if p != LATER_SNAPSHOT)
    for name, order in _orders(files, {p: len(t.cases) for p, t in loaded.items()}, LATER_SNAPSHOT).items():
        results = [snapshot_tests.run_case(ruleset, loaded[p], loaded[p].cases[i], str(p)) for p, i in order]
        failed = [f"{r.rule}: {r.case}: {r.detail}" for r in results if not r.ok]
        assert not failed, f"{name}:\n" + "\n".join(failed)
    by_files = snapshot_tests.run_all(ruleset, CFG.rules_paths, [LATER_SNAPSHOT, *files[::-1]])
    assert all(r.ok for r in by_files) and len(by_files) == sum(len(t.cases) for t in loaded.values())
