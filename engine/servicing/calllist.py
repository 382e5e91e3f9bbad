"""The advisor's daily call list: open tasks by priority, within capacity and the segment budget.

The pool for advisor A on day D is every open call task of A recorded on or before D
(today's and those carried over). Each task scores its rule priority plus
`servicing.call_list.aging_per_day` points per trading day it has waited (trading days
from the day it was recorded up to D, D excluded), so a carried task climbs until it fits.
Ties go to the older task, then the lower id.

The list holds at most the advisor's `daily_capacity` tasks, filled in three passes:

1. urgent: tasks of priority >= `urgent_priority`, best score first;
2. budget: each segment group (`servicing.call_list.budget`) gets its share of the
   capacity (largest-remainder rounding; segments in no group share what is left,
   0% by default), urgent tasks counting against their own group; best score first,
   a task is taken while its group is under its share;
3. spare: slots a group could not use (too few tasks) go to the best remaining tasks
   of any group, so no capacity sits idle while tasks wait.

What does not fit stays open and carries to the next trading day: nothing is dropped.
The list is stored (`call_list_entry`) the first time it is built for a day, so it
stays the same all day; tasks recorded later that day join it only while there is room.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from engine.audit import facts_store
from engine.facts import trading_calendar
from engine.config.base import Config
from engine import clock
from engine.errors import StewardError
from engine.models import Advisor, TradingDay
from engine.facts.tables import CallListEntry
from engine.pipeline.recording import FIRING
from engine.config.servicing import CallListConfig

ENTRY = CallListEntry.__table__  # type: ignore[attr-defined]
ADVISOR = Advisor.__table__  # type: ignore[attr-defined]
TD = TradingDay.__table__  # type: ignore[attr-defined]
OTHER = "other"
URGENT, BUDGET, SPARE = "urgent", "budget", "spare"


@dataclass(frozen=True)
class Task:
    firing_id: int
    client_id: str
    rule_id: str
    as_of: date
    due_on: date | None
    priority: int
    status: str
    facts: Mapping[str, Any]

    @property
    def segment(self) -> str | None:
        s = self.facts.get("segment")
        return str(s) if s is not None else None


@dataclass(frozen=True)
class Entry:
    position: int
    task: Task
    group: str
    slot: str
    score: int
    waited: int


@dataclass
class CallList:
    advisor_id: str
    advisor_name: str
    day: date
    capacity: int
    quotas: dict[str, int]
    entries: list[Entry] = field(default_factory=list)
    carried: list[Entry] = field(default_factory=list)
    """Open tasks that did not fit (position 0), best first: on the next trading day's pool."""
    next_day: date | None = None

    def used(self) -> Counter[str]:
        return Counter(e.group for e in self.entries)


def groups_of(cfg: CallListConfig) -> dict[str, str]:
    """segment -> budget group label (e.g. core -> core+dormant)."""
    return {s: "+".join(g.segments) for g in cfg.budget for s in g.segments}


def bonus(task: Task, cfg: CallListConfig) -> int:
    """Score points for the client's value: an important capital x turnover cell, a gold or rising-star quadrant."""
    points = cfg.important_bonus if task.facts.get("important_cell") is True else 0
    quadrant = task.facts.get("value_quadrant")
    return points + (cfg.quadrant_bonus.get(quadrant, 0) if isinstance(quadrant, str) else 0)  # type: ignore[call-overload]


def quotas(cfg: CallListConfig, capacity: int) -> dict[str, int]:
    """Slots per group: shares of the capacity, rounded by largest remainder (they add up to it)."""
    shares = {"+".join(g.segments): g.share for g in cfg.budget}
    shares[OTHER] = max(0.0, 1.0 - sum(shares.values()))
    exact = {k: v * capacity for k, v in shares.items()}
    out = {k: int(v + 1e-9) for k, v in exact.items()}
    order = sorted(exact, key=lambda k: (-(exact[k] - out[k]), list(exact).index(k)))
    for k in order[: capacity - sum(out.values())]:
        out[k] += 1
    return out


# ------------------------------------------------------------------ allocation


def task_minutes(cfg: CallListConfig, rule_id: str) -> int:
    """Advisor minutes a task of this rule takes (servicing.call_list.task_minutes, else the default)."""
    return cfg.task_minutes.get(rule_id, cfg.default_task_minutes)


@dataclass
class _Fill:
    capacity: int
    quota: dict[str, int]
    entries: list[Entry]
    cfg: CallListConfig
    used: Counter[str] = field(default_factory=Counter)
    spent: Counter[str] = field(default_factory=Counter)
    """Minutes per group (budget in advisor minutes)."""

    def __post_init__(self) -> None:
        self.used.update(e.group for e in self.entries)
        for e in self.entries:
            self.spent[e.group] += task_minutes(self.cfg, e.task.rule_id)
        self.minute_quota = quotas(self.cfg, self.cfg.advisor_minutes) if self.cfg.advisor_minutes else {}

    def fits(self, e: Entry) -> bool:
        """Room on the list: a slot, and with a minutes budget the task's minutes."""
        if len(self.entries) >= self.capacity:
            return False
        m = self.cfg.advisor_minutes
        return not m or sum(self.spent.values()) + task_minutes(self.cfg, e.task.rule_id) <= m

    def in_share(self, e: Entry) -> bool:
        if self.cfg.advisor_minutes:
            return self.spent[e.group] + task_minutes(self.cfg, e.task.rule_id) <= self.minute_quota.get(e.group, 0)
        return self.used[e.group] < self.quota.get(e.group, 0)

    def take(self, e: Entry, slot: str) -> None:
        pos = max((x.position for x in self.entries), default=0) + 1
        self.entries.append(Entry(pos, e.task, e.group, slot, e.score, e.waited))
        self.used[e.group] += 1
        self.spent[e.group] += task_minutes(self.cfg, e.task.rule_id)


def allocate(candidates: list[Entry], pinned: list[Entry], capacity: int,
             cfg: CallListConfig) -> tuple[list[Entry], list[Entry]]:
    """(the day's list, the carried rest); `pinned` entries keep their slots and positions.

    With `advisor_minutes` set, the segment shares apply to the advisor's minutes and a task
    takes its rule's minutes (`task_minutes`); the list still holds at most `capacity` tasks."""
    fill = _Fill(capacity, quotas(cfg, capacity), list(pinned), cfg)
    rest = sorted(candidates, key=lambda e: (-e.score, e.task.as_of, e.task.firing_id))
    passes = (
        (URGENT, lambda e: e.task.priority >= cfg.urgent_priority),
        (BUDGET, fill.in_share),
        (SPARE, lambda e: True),
    )
    for slot, fits in passes:
        left = []
        for e in rest:
            if fill.fits(e) and fits(e):
                fill.take(e, slot)
            else:
                left.append(e)
        rest = left
    return fill.entries, rest


# ------------------------------------------------------------------ database


def _advisor(conn: Connection, advisor_id: str) -> Any:
    row = conn.execute(select(ADVISOR).where(ADVISOR.c.id == advisor_id)).first()
    if row is None:
        known = [r[0] for r in conn.execute(select(ADVISOR.c.id).order_by(ADVISOR.c.id).limit(8))]
        raise StewardError(f"--advisor: no advisor {advisor_id!r}"
                           + (f"; advisors include {', '.join(known)}" if known else "; import advisors.csv first"))
    return row


def _tasks(conn: Connection, rows: list[Any]) -> list[Task]:
    """Firing rows as tasks, each with its facts snapshot (one query per page of snapshots)."""
    return [Task(int(r.id), r.client_id, r.rule_id, r.as_of, r.due_on, int(r.priority), r.status, facts)
            for r, facts in zip(rows, facts_store.load(conn, rows))]


def _open_tasks(conn: Connection, advisor_id: str, day: date) -> list[Task]:
    q = select(FIRING).where(FIRING.c.advisor_id == advisor_id, FIRING.c.action_type == "task",
                             FIRING.c.status == "open", FIRING.c.as_of <= day)
    return _tasks(conn, list(conn.execute(q)))


def _pinned(conn: Connection, advisor_id: str, day: date) -> list[tuple[Any, Task]]:
    q = (select(ENTRY, FIRING).join(FIRING, FIRING.c.id == ENTRY.c.firing_id)
         .where(ENTRY.c.advisor_id == advisor_id, ENTRY.c.day == day))
    rows = list(conn.execute(q))
    return list(zip(rows, _tasks(conn, rows)))


class _Waited:
    """Trading days from the day a task was recorded (it could join that day's list) to the list's day, excluded."""

    def __init__(self, conn: Connection, cfg: Config, first: date, day: date) -> None:
        self.days = [r[0] for r in conn.execute(
            select(TD.c.day).where(TD.c.exchange == cfg.calendar.exchange, TD.c.is_open.is_(True),
                                   TD.c.day >= first, TD.c.day < day).order_by(TD.c.day))]

    def __call__(self, since: date) -> int:
        return len(self.days) - bisect.bisect_left(self.days, since)


def build(conn: Connection, cfg: Config, advisor_id: str, day: date, persist: bool = True) -> CallList:
    """The advisor's list for `day`: the stored one, topped up with new tasks while there is room."""
    adv = _advisor(conn, advisor_id)
    cl_cfg = cfg.servicing.call_list
    group = groups_of(cl_cfg)
    pinned_rows = _pinned(conn, advisor_id, day)
    on_list = {t.firing_id for _, t in pinned_rows}
    tasks = [t for t in _open_tasks(conn, advisor_id, day) if t.firing_id not in on_list]
    first = min([t.as_of for t in tasks] + [t.as_of for _, t in pinned_rows], default=day)
    waited = _Waited(conn, cfg, first, day)

    def entry(t: Task) -> Entry:
        w = waited(t.as_of)
        return Entry(0, t, group.get(t.segment or "", OTHER), "", t.priority + cl_cfg.aging_per_day * w + bonus(t, cl_cfg), w)

    pinned = [Entry(r.position, t, r.budget_group, r.slot, r.score, waited(t.as_of)) for r, t in pinned_rows]
    entries, carried = allocate([entry(t) for t in tasks], pinned, int(adv.daily_capacity), cl_cfg)
    if persist:
        _store(conn, advisor_id, day, [e for e in entries if e.task.firing_id not in on_list])
    out = CallList(advisor_id, adv.name, day, int(adv.daily_capacity), quotas(cl_cfg, int(adv.daily_capacity)),
                   sorted(entries, key=lambda e: e.position), carried)
    if carried:
        out.next_day = _next_day(conn, cfg, day)
    return out


def _store(conn: Connection, advisor_id: str, day: date, new: list[Entry]) -> None:
    now = clock.now()
    if new:
        conn.execute(ENTRY.insert(), [
            {"day": day, "firing_id": e.task.firing_id, "advisor_id": advisor_id, "position": e.position,
             "budget_group": e.group, "slot": e.slot, "score": e.score, "created_at": now} for e in new])


def _next_day(conn: Connection, cfg: Config, day: date) -> date | None:
    try:
        return trading_calendar.next_trading_day(conn, cfg.calendar.exchange, day)
    except trading_calendar.CalendarGap:
        return None


# ------------------------------------------------------------------ why


DEFAULT_FACTS = ("segment", "days_since_open", "market_value")
"""Facts shown for a rule whose condition's fields are unknown (Python rules, removed rules)."""


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.2f}".rstrip("0").rstrip(".")
    if isinstance(v, int):
        return f"{v:,}"
    return "—" if v is None else str(v)


def key_facts(facts: Mapping[str, Any], fields: tuple[str, ...], limit: int = 5) -> str:
    """`name=value` for the facts the rule's condition reads, from the firing's snapshot."""
    shown = [f for f in fields if f in facts][:limit] or [f for f in DEFAULT_FACTS if f in facts]
    return ", ".join(f"{f}={_fmt(facts[f])}" for f in shown)


def build_all(conn: Connection, cfg: Config, day: date) -> list[CallList]:
    """The lists of every advisor with open tasks on or before `day`, by advisor id."""
    ids = conn.execute(select(FIRING.c.advisor_id).distinct().where(
        FIRING.c.action_type == "task", FIRING.c.status == "open", FIRING.c.as_of <= day,
        FIRING.c.advisor_id.in_(select(ADVISOR.c.id))).order_by(FIRING.c.advisor_id)).scalars().all()
    return [build(conn, cfg, str(a), day) for a in ids]
