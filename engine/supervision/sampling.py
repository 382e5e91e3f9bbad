"""Supervisory review: a daily risk-based sample of sent messages and completed tasks.

Each day's sent messages and completed advisor tasks are sampled at configured rates
(marketing and high-risk clients more often). Whether an item is sampled is a pure
function of the day, the firing id and the rate (sha256 -> [0, 1) < rate), so anyone can
recompute why an item was or was not picked. Each sampled item goes to a supervisor who
is not its sender: the sender's own supervisor (Advisor.supervisor_id) when there is
one, else the least-loaded supervisor that day. Supervisors are advisors others report
to, and active users with the supervisor role. A review records a decision and comment;
reviews not decided within `review_days` are overdue. Assignments and decisions are
also audit events (review.assigned, review.decided).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Boolean, String, column, inspect, select, table, update
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from engine.audit import facts_store
from engine.audit.log import Event, append
from engine.config.base import SupervisionConfig
from engine import clock
from engine.errors import StewardError
from engine.models import Advisor
from engine.pipeline.recording import FIRING

DECISIONS = ("ok", "follow_up", "escalate")
ADVISOR = Advisor.__table__  # type: ignore[attr-defined]
_APP_USER = table("app_user", column("name", String), column("roles", JSON), column("active", Boolean))


class SupervisionReview(SQLModel, table=True):
    __tablename__ = "supervision_review"

    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(index=True)
    firing_id: int = Field(unique=True)
    kind: str = Field(max_length=16)
    """message or task."""
    risk: str = Field(max_length=16)
    """Which rate picked it: marketing, service, task or high_risk."""
    rate: float
    sender: str | None = Field(default=None, max_length=64)
    supervisor_id: str = Field(max_length=64, index=True)
    assigned_at: datetime
    due_on: date
    decision: str | None = Field(default=None, max_length=16)
    comment: str | None = None
    decided_by: str | None = Field(default=None, max_length=64)
    decided_at: datetime | None = None


REVIEW = SupervisionReview.__table__  # type: ignore[attr-defined]


def draw(day: date, firing_id: int) -> float:
    """A reproducible number in [0, 1) for one item on one day."""
    digest = hashlib.sha256(f"{day.isoformat()}:{firing_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def risk_of(row: Any, cfg: SupervisionConfig, facts: dict[str, Any]) -> tuple[str, float]:
    """Which rate samples a firing: `facts` is its snapshot (engine.audit.facts_store.load)."""
    age = facts.get("age")
    high = (row.rule_id in cfg.high_risk_rules or bool(facts.get("lowest_category"))
            or facts.get("risk_level") == "C1" or (age is not None and age >= cfg.high_risk_age))
    if high:
        return "high_risk", cfg.high_risk_rate
    if row.action_type == "task":
        return "task", cfg.task_rate
    return ("marketing", cfg.marketing_rate) if row.rule_class == "marketing" else ("service", cfg.service_rate)


def supervisors(conn: Connection) -> tuple[dict[str, str | None], set[str]]:
    """(advisor id -> their supervisor, every supervisor id)."""
    boss = {r.id: r.supervisor_id for r in conn.execute(select(ADVISOR.c.id, ADVISOR.c.supervisor_id))}
    sup = {s for s in boss.values() if s}
    if inspect(conn).has_table("app_user"):
        sup |= {r.name for r in conn.execute(select(_APP_USER)) if r.active and "supervisor" in (r.roles or [])}
    return boss, sup


@dataclass
class SampleResult:
    day: date
    candidates: int = 0
    sampled: int = 0
    unassigned: list[int] = field(default_factory=list)
    """Firing ids picked but with no supervisor other than the sender."""
    per_risk: Counter[str] = field(default_factory=Counter)


def _candidates(conn: Connection, day: date, cfg: SupervisionConfig) -> list[Any]:
    sent = (FIRING.c.action_type == "message") & FIRING.c.status.in_(cfg.sent_statuses)
    done = (FIRING.c.action_type == "task") & FIRING.c.status.in_(cfg.done_statuses)
    already = select(REVIEW.c.firing_id)
    q = select(FIRING).where(FIRING.c.as_of == day, sent | done, FIRING.c.id.not_in(already)).order_by(FIRING.c.id)
    return list(conn.execute(q))


def _pick(sender: str | None, boss: dict[str, str | None], sups: set[str], load: Counter[str]) -> str | None:
    own = boss.get(sender or "")
    if own and own != sender:
        return own
    eligible = sorted(s for s in sups if s != sender)
    return min(eligible, key=lambda s: (load[s], s)) if eligible else None


def sample(conn: Connection, day: date, cfg: SupervisionConfig, actor: str = "supervision") -> SampleResult:
    """Sample the day's sent messages and completed tasks and assign reviews (idempotent per firing)."""
    res = SampleResult(day)
    boss, sups = supervisors(conn)
    load: Counter[str] = Counter(r[0] for r in conn.execute(select(REVIEW.c.supervisor_id).where(REVIEW.c.day == day)))
    now = clock.now()
    rows, events = [], []
    for f, facts in facts_store.pages(conn, _candidates(conn, day, cfg)):
        res.candidates += 1
        risk, rate = risk_of(f, cfg, facts)
        if draw(day, f.id) >= rate:
            continue
        sup = _pick(f.advisor_id, boss, sups, load)
        if sup is None:
            res.unassigned.append(f.id)
            continue
        load[sup] += 1
        res.sampled += 1
        res.per_risk[risk] += 1
        rows.append({"day": day, "firing_id": f.id, "kind": f.action_type, "risk": risk, "rate": rate,
                     "sender": f.advisor_id, "supervisor_id": sup, "assigned_at": now,
                     "due_on": day + timedelta(days=cfg.review_days)})
        events.append(Event("review.assigned", actor=actor, client_id=f.client_id, advisor_id=f.advisor_id,
                            rule_id=f.rule_id, rule_hash=f.rule_hash, firing_id=f.id, as_of=day, channel=f.channel,
                            rule_class=f.rule_class, status="assigned", reason=risk,
                            data={"supervisor": sup, "rate": rate, "draw": draw(day, f.id)}))
    if rows:
        conn.execute(REVIEW.insert(), rows)
    append(conn, events)
    return res


def queue(conn: Connection, supervisor: str | None = None, open_only: bool = True) -> list[Any]:
    q = select(REVIEW).order_by(REVIEW.c.due_on, REVIEW.c.id)
    if supervisor:
        q = q.where(REVIEW.c.supervisor_id == supervisor)
    if open_only:
        q = q.where(REVIEW.c.decision.is_(None))
    return list(conn.execute(q))


def overdue(conn: Connection, today: date) -> list[Any]:
    return list(conn.execute(select(REVIEW).where(REVIEW.c.decision.is_(None), REVIEW.c.due_on < today)
                             .order_by(REVIEW.c.due_on, REVIEW.c.id)))


def decide(conn: Connection, review_id: int, reviewer: str, decision: str, comment: str | None) -> None:
    """Record a supervisor's decision; only the assigned supervisor, never the sender."""
    r = conn.execute(select(REVIEW).where(REVIEW.c.id == review_id)).first()
    if r is None:
        raise StewardError(f"no review with id {review_id}; `steward supervision queue` lists them")
    if decision not in DECISIONS:
        raise StewardError(f"--decision: expected one of {', '.join(DECISIONS)}, got {decision!r}")
    if r.decision is not None:
        raise StewardError(f"review {review_id} was already decided ({r.decision}) by {r.decided_by}")
    if reviewer == r.sender:
        raise StewardError(f"{reviewer} sent firing {r.firing_id} and cannot review it")
    if reviewer != r.supervisor_id:
        raise StewardError(f"review {review_id} is assigned to {r.supervisor_id}, not {reviewer}")
    if decision != "ok" and not (comment or "").strip():
        raise StewardError(f"--comment: a {decision} decision needs a comment saying what is wrong")
    now = clock.now()
    conn.execute(update(REVIEW).where(REVIEW.c.id == review_id)
                 .values(decision=decision, comment=comment, decided_by=reviewer, decided_at=now))
    f = conn.execute(select(FIRING.c.client_id, FIRING.c.rule_id).where(FIRING.c.id == r.firing_id)).first()
    append(conn, [Event("review.decided", actor=reviewer, client_id=f.client_id if f else None,
                        advisor_id=r.sender, rule_id=f.rule_id if f else None, firing_id=r.firing_id,
                        status=decision, data={"review": review_id, "comment": comment})])
