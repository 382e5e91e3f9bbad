"""Advisor call tasks: recording an outcome, and escalating overdue tasks to the supervisor.

A task is a firing with action type `task` and status `open`. Recording an outcome writes
a `contact` row, which the facts read back (`callback_done`, `days_since_contact`): a
reached or declining client counts as called back; an unanswered call is an attempt.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.engine import Connection

from engine.audit import log as auditlog
from engine.config.base import Config
from engine.dispatch.tables import TaskEscalation
from engine.errors import StewardError
from engine.facts.tables import ClientRecord
from engine.models import Advisor, Contact
from engine.dispatch.outbox import OUTBOX, event, utcnow
from engine.pipeline.recording import FIRING

CONTACT = Contact.__table__  # type: ignore[attr-defined]
RECORD = ClientRecord.__table__  # type: ignore[attr-defined]
ADVISOR = Advisor.__table__  # type: ignore[attr-defined]
ESCALATION = TaskEscalation.__table__  # type: ignore[attr-defined]
OUTCOMES = {
    "reached": ("callback", "done"),
    "positive": ("callback", "done"),
    "declined": ("callback", "done"),
    "wrong_number": ("call_attempt", "done"),
    "no_answer": ("call_attempt", "open"),
    "callback_later": ("call_attempt", "open"),
}
"""outcome -> (contact kind written, task status after). `positive`: reached and satisfied (referral requests follow)."""


@dataclass(frozen=True)
class OutcomeResult:
    firing_id: int
    client_id: str
    contact_kind: str
    task_status: str


def record_outcome(conn: Connection, firing_id: int, outcome: str, by_user: str | None, on: date,
                   note: str | None = None, need: str | None = None, follow_up: date | None = None) -> OutcomeResult:
    """Close (or log an attempt on) a call task and write the client dynamic record; raises
    StewardError saying what to fix."""
    if follow_up is not None and follow_up <= on:
        raise StewardError(f"--follow-up {follow_up.isoformat()} must be after the day of the call ({on.isoformat()})")
    if need is not None and not need.strip():
        raise StewardError("--need is empty: say what the client needs, e.g. --need \"retirement plan\"")
    if outcome not in OUTCOMES:
        raise StewardError(f"--outcome: unknown outcome {outcome!r}; use one of {', '.join(OUTCOMES)}")
    row = conn.execute(select(FIRING).where(FIRING.c.id == firing_id)).first()
    if row is None:
        raise StewardError(f"no task with id {firing_id}; `steward audit list --status open` shows open tasks")
    if row.action_type != "task":
        raise StewardError(f"firing {firing_id} is a {row.channel} message, not a call task")
    if row.status != "open":
        raise StewardError(f"task {firing_id} is {row.status}, not open: its outcome is already recorded")
    if not by_user:
        raise StewardError("--by: name who made the call (or set STEWARD_USER); every outcome records the acting user")
    kind, status = OUTCOMES[outcome]
    conn.execute(CONTACT.insert(), [{"id": f"task-{firing_id}-{uuid.uuid4().hex[:8]}", "client_id": row.client_id,
                                     "contacted_on": on, "kind": kind, "outcome": outcome if not note else f"{outcome}: {note}",
                                     "by_user": by_user}])
    conn.execute(update(FIRING).where(FIRING.c.id == firing_id).values(status=status, reason=None if status == "open" else outcome.upper()))
    _record(conn, row, outcome, by_user, on, note, need, follow_up)
    auditlog.append(conn, [auditlog.Event(
        "task.outcome", actor=by_user, client_id=row.client_id, advisor_id=row.advisor_id, rule_id=row.rule_id,
        rule_hash=row.rule_hash, firing_id=firing_id, channel=row.channel, status=status, reason=outcome.upper(),
        data={"outcome": outcome, "contact_kind": kind, "on": on.isoformat(), "note": note, "by_user": by_user})])
    return OutcomeResult(firing_id, row.client_id, kind, status)


def _record(conn: Connection, task: Any, outcome: str, by_user: str | None, on: date, note: str | None,
            need: str | None, follow_up: date | None) -> None:
    """The client dynamic record: the service given, a need raised, the next follow-up. A reached
    client closes the follow-ups that were due (an unanswered call leaves them open)."""
    cid = task.client_id
    if OUTCOMES[outcome][0] == "callback":
        conn.execute(update(RECORD).where(RECORD.c.client_id == cid, RECORD.c.kind == "follow_up",
                                          RECORD.c.done_on.is_(None), RECORD.c.due_on <= on).values(done_on=on))
    base = {"client_id": cid, "recorded_on": on, "firing_id": task.id, "by_user": by_user, "due_on": None, "done_on": None}
    rows = [{**base, "kind": "service", "text": f"{task.rule_id}: {outcome}" + (f" ({note})" if note else "")}]
    if need:
        rows.append({**base, "kind": "need", "text": need.strip()})
    if follow_up is not None:
        rows.append({**base, "kind": "follow_up", "text": need.strip() if need else f"follow up on {task.rule_id}",
                     "due_on": follow_up})
    conn.execute(RECORD.insert(), rows)


def _notice(task: Any, supervisor: Any, now: datetime) -> dict[str, Any]:
    body = (f"Overdue call task #{task.id}: client {task.client_id}, rule {task.rule_id}, due {task.due_on}, "
            f"advisor {task.advisor_id}. Please follow up.")
    key = hashlib.sha256(f"escalation\0{task.id}".encode()).hexdigest()
    return {"idempotency_key": key, "kind": "escalation", "firing_id": task.id, "rule_id": task.rule_id,
            "rule_hash": task.rule_hash, "client_id": task.client_id, "rule_class": "service", "channel": "email",
            "recipient": supervisor.email, "locale": None, "subject": f"Overdue task #{task.id} ({task.rule_id})",
            "body": body, "bypass_window": True, "outside_window": "hold", "state": "queued", "attempts": 0,
            "next_attempt_at": now, "trail": [event(now, "queued", "TASK_OVERDUE")], "created_at": now, "updated_at": now}


def escalate_overdue(engine: Engine, cfg: Config, today: date, now: datetime | None = None) -> int:
    """Escalate each open task past its due day, once: a record, and an e-mail when the supervisor has one."""
    now = now or utcnow()
    done = select(ESCALATION.c.firing_id)
    q = select(FIRING).where(FIRING.c.action_type == "task", FIRING.c.status == "open",
                             FIRING.c.due_on < today, FIRING.c.id.not_in(done))
    n = 0
    with engine.begin() as conn:
        advisors = {r.id: r for r in conn.execute(select(ADVISOR))}
        for task in conn.execute(q).all():
            adv = advisors.get(task.advisor_id or "")
            sup = advisors.get(adv.supervisor_id or "") if adv else None
            notice_id = None
            if sup is not None and sup.email:
                notice_id = conn.execute(OUTBOX.insert().returning(OUTBOX.c.id), [_notice(task, sup, now)]).scalar_one()
            conn.execute(ESCALATION.insert(), [{"firing_id": task.id, "advisor_id": task.advisor_id,
                                                "supervisor_id": sup.id if sup else None, "due_on": task.due_on,
                                                "escalated_at": now, "notice_outbox_id": notice_id}])
            n += 1
    return n
