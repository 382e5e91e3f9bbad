"""Advisor call list: capacity, segment budget, urgent first, carry-over with aging, stable all day."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from engine.servicing import calllist
from engine.facts import trading_calendar
from engine.config.base import Config
from engine.errors import StewardError
from engine.models import Advisor
from engine.facts.tables import CallListEntry
from engine.pipeline.recording import FIRING
from engine.config.servicing import CallListConfig
from tests import book
from tests.databases import migrated_sqlite
from tests.test_cli import steward

D = book.AS_OF  # Friday 2026-11-20
NEXT = date(2026, 11, 23)  # the Monday after
ENTRY = CallListEntry.__table__  # type: ignore[attr-defined]
_ids = itertools.count(1)


def setup(eng: Engine, capacity: int = 10) -> None:
    with eng.begin() as c:
        trading_calendar.ensure(c, "XSHG", D - timedelta(days=60), D + timedelta(days=40))
        c.execute(Advisor.__table__.insert(), [  # type: ignore[attr-defined]
            {"id": "A01", "name": "李明", "email": None, "supervisor_id": "S01", "daily_capacity": capacity},
            {"id": "S01", "name": "王芳", "email": None, "supervisor_id": None, "daily_capacity": 5}])


def add(eng: Engine, n: int, segment: str, priority: int = 50, day: date = D, rule: str = "losing_client_care",
        advisor: str = "A01", **facts: Any) -> list[int]:
    rows = [{"run_id": 1, "as_of": day, "client_id": f"C{next(_ids):05d}", "advisor_id": advisor, "rule_id": rule,
             "rule_hash": "h", "rule_class": "service", "action_type": "task", "channel": "phone",
             "priority": priority, "locale": "zh-CN", "due_on": day + timedelta(days=3), "status": "open",
             "policy": [], "facts": {"segment": segment, "market_value": 80_000.0, **facts}, "created_at": book.now()}
            for _ in range(n)]
    with eng.begin() as c:
        return [r[0] for r in c.execute(FIRING.insert().returning(FIRING.c.id), rows)]


def build(eng: Engine, cfg: Config, day: date = D, advisor: str = "A01") -> calllist.CallList:
    with eng.begin() as c:
        return calllist.build(c, cfg, advisor, day)


def groups(cl: calllist.CallList) -> dict[str, int]:
    return dict(cl.used())


def close(eng: Engine, ids: list[int]) -> None:
    with eng.begin() as c:
        c.execute(update(FIRING).where(FIRING.c.id.in_(ids)).values(status="done"))


@pytest.mark.parametrize(("capacity", "expected"), [
    (10, {"core+dormant": 6, "maintenance": 3, "settled": 1, "other": 0}),
    (20, {"core+dormant": 12, "maintenance": 6, "settled": 2, "other": 0}),
    (7, {"core+dormant": 4, "maintenance": 2, "settled": 1, "other": 0}),  # 4.2, 2.1, 0.7: remainder to settled
    (1, {"core+dormant": 1, "maintenance": 0, "settled": 0, "other": 0}),
    (0, {"core+dormant": 0, "maintenance": 0, "settled": 0, "other": 0}),
])
def test_quotas_add_up_to_the_capacity(capacity: int, expected: dict[str, int]) -> None:
    assert calllist.quotas(CallListConfig(), capacity) == expected


def test_capacity_and_budget_shares_are_respected(db: Engine, cfg: Config) -> None:
    setup(db, capacity=10)
    for seg in ("core", "dormant", "maintenance", "settled", "dead"):
        add(db, 8, seg)
    cl = build(db, cfg)
    assert len(cl.entries) == 10 and len(cl.carried) == 30
    assert groups(cl) == {"core+dormant": 6, "maintenance": 3, "settled": 1}
    assert {e.slot for e in cl.entries} == {"budget"}
    assert cl.next_day == NEXT


def test_unused_share_flows_to_the_best_remaining_tasks(db: Engine, cfg: Config) -> None:
    setup(db, capacity=10)
    add(db, 20, "core", priority=40)
    add(db, 1, "maintenance", priority=30)
    add(db, 5, "dead", priority=45)  # no share of its own: spare slots only, by score
    cl = build(db, cfg)
    assert len(cl.entries) == 10
    assert groups(cl) == {"core+dormant": 6, "maintenance": 1, "other": 3}
    spare = [e for e in cl.entries if e.slot == "spare"]
    assert len(spare) == 3 and all(e.task.priority == 45 for e in spare)


def test_priority_orders_the_list_and_urgent_tasks_go_first(db: Engine, cfg: Config) -> None:
    setup(db, capacity=4)
    low, high = add(db, 3, "core", priority=30), add(db, 3, "core", priority=70)
    urgent = add(db, 1, "settled", priority=100, rule="trade_price_anomaly")
    cl = build(db, cfg)
    assert [e.task.firing_id for e in cl.entries] == urgent + high
    assert cl.entries[0].slot == "urgent" and [e.position for e in cl.entries] == [1, 2, 3, 4]
    assert {e.task.firing_id for e in cl.carried} == set(low)


def test_what_does_not_fit_carries_over_and_ages(db: Engine, cfg: Config) -> None:
    setup(db, capacity=2)
    first = add(db, 4, "core", priority=50)
    today = build(db, cfg)
    carried = [e.task.firing_id for e in today.carried]
    assert len(carried) == 2
    close(db, [e.task.firing_id for e in today.entries])
    add(db, 2, "core", priority=55, day=NEXT)  # new on Monday, higher priority than Friday's
    monday = build(db, cfg, NEXT)
    # Friday's leftovers waited one trading day: 50 + 5 beats 55 on age
    assert [e.task.firing_id for e in monday.entries] == carried
    assert all(e.waited == 1 and e.score == 55 for e in monday.entries)
    assert set(first) == {e.task.firing_id for e in today.entries} | set(carried)


def test_nothing_is_dropped_or_starved(db: Engine, cfg: Config) -> None:
    """A steady stream of priority-60 work never keeps a priority-20 task off the list for good."""
    setup(db, capacity=3)
    low = add(db, 1, "core", priority=20)[0]
    seen: dict[int, date] = {}
    with db.connect() as c:
        days = [r[0] for r in trading_calendar.days(c, "XSHG", D, D + timedelta(days=30)) if r[1]][:12]
    for day in days:
        add(db, 3, "core", priority=60, day=day)
        cl = build(db, cfg, day)
        assert len(cl.entries) == 3
        seen.update({e.task.firing_id: day for e in cl.entries})
        close(db, [e.task.firing_id for e in cl.entries])
    assert low in seen
    with db.connect() as c:
        still_open = {r[0] for r in c.execute(select(FIRING.c.id).where(FIRING.c.status == "open"))}
    assert still_open.isdisjoint(seen) and len(seen) + len(still_open) == 1 + 3 * len(days)


def test_the_list_is_stable_for_the_day(db: Engine, cfg: Config) -> None:
    setup(db, capacity=3)
    add(db, 4, "core", priority=50)
    morning = build(db, cfg)
    close(db, [morning.entries[0].task.firing_id])  # one call made
    add(db, 1, "core", priority=90, rule="new_account_callback_overdue")  # arrives at noon, list full
    noon = build(db, cfg)
    assert [e.task.firing_id for e in noon.entries] == [e.task.firing_id for e in morning.entries]
    assert noon.entries[0].task.status == "done"
    assert noon.carried[0].task.priority == 90  # it leads tomorrow's pool
    with db.connect() as c:
        assert c.execute(select(ENTRY.c.firing_id).where(ENTRY.c.day == D)).all().__len__() == 3


def test_tasks_recorded_later_join_while_there_is_room(db: Engine, cfg: Config) -> None:
    setup(db, capacity=5)
    add(db, 2, "core")
    assert len(build(db, cfg).entries) == 2
    late = add(db, 1, "maintenance", priority=90)
    cl = build(db, cfg)
    assert [e.task.firing_id for e in cl.entries][-1] == late[0] and cl.entries[-1].position == 3


def test_other_advisors_tasks_and_future_tasks_stay_off(db: Engine, cfg: Config) -> None:
    setup(db)
    add(db, 2, "core", advisor="S01")
    add(db, 2, "core", day=NEXT)
    assert build(db, cfg).entries == []
    assert len(build(db, cfg, advisor="S01").entries) == 2


def test_unknown_advisor(db: Engine, cfg: Config) -> None:
    setup(db)
    with pytest.raises(StewardError, match=r"--advisor: no advisor 'A99'; advisors include A01, S01"):
        build(db, cfg, advisor="A99")


def test_key_facts_show_what_the_rule_reads() -> None:
    facts = {"days_since_open": 35, "callback_done": False, "market_value": 1234567.8, "top_weight": 0.456,
             "segment": "dormant"}
    assert calllist.key_facts(facts, ("callback_done", "days_since_open")) == "callback_done=no, days_since_open=35"
    assert calllist.key_facts(facts, ("top_weight", "market_value")) == "top_weight=0.46, market_value=1,234,568"
    assert calllist.key_facts(facts, ()) == "segment=dormant, days_since_open=35, market_value=1,234,568"


def test_cli_shows_the_list_and_why(tmp_path: Path, cfg: Config) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    eng = migrated_sqlite(tmp_path / "s.db")
    setup(eng, capacity=1)
    add(eng, 1, "dormant", priority=60, unrealized_pnl_pct=-0.31)
    add(eng, 1, "core", priority=30)
    eng.dispose()
    r = steward("--database", url, "tasks", "--advisor", "A01", "--date", D.isoformat())
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "Call list of 李明 (A01) for 2026-11-20: 1 of 1 slots" in out
    assert "Losing-client care call" in out and "unrealized_pnl_pct=-0.31" in out
    assert "Carried to 2026-11-23 (1 open tasks did not fit" in out
    r = steward("--database", url, "tasks")
    assert r.returncode == 2 and "--advisor ID is required" in r.stderr


def test_bad_call_list_config_names_the_key() -> None:
    from engine.config.base import parse_config
    from engine.errors import SourceErrors

    def problems(call_list: dict[str, Any]) -> str:
        with pytest.raises(SourceErrors) as e:
            parse_config({"servicing": {"call_list": call_list}})
        return "\n".join(str(p) for p in e.value.problems)

    assert "servicing.call_list.urgent_priority: Input should be less than or equal to 101 (got 200)" in problems(
        {"urgent_priority": 200})
    assert "budget shares add up to 1.20; they must not exceed 1" in problems(
        {"budget": [{"segments": ["core"], "share": 0.7}, {"segments": ["settled"], "share": 0.5}]})
