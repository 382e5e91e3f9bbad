"""Tables of the dispatch side: outbox, do-not-call list, task escalations, scheduler job runs.

Schema changes go through migrations/versions/0004_dispatch.py; keep both identical.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

OUTBOX_STATES = ("held", "queued", "sending", "sent", "dead", "dropped", "uncertain")
"""held: waits for a time (quiet hours, deferral); queued: ready; sending: claimed by a
dispatcher; sent: receipt recorded; dead: retries exhausted or rejected (dead letter);
dropped: stopped by policy with a reason; uncertain: an SMTP send may or may not have
happened before a crash (on_uncertain: review)."""


def _tz() -> Any:
    return DateTime(timezone=True)


class Outbox(SQLModel, table=True):
    """One message (or supervisor notice) to deliver, with its delivery state."""

    __table_args__ = (
        Index("ix_outbox_state_next", "state", "next_attempt_at"),
        Index("ix_outbox_client", "client_id"),
        Index("uq_outbox_firing_kind", "firing_id", "kind", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=64)
    """sha256 over rule id, rule version, client and contact window (day); sent to the gateway.
    Not indexed (migration 0026_lead): one row per (firing_id, kind) is one row per key."""
    kind: str = Field(default="client", max_length=16)
    """client (a rule's message) or escalation (an overdue-task notice to a supervisor)."""
    firing_id: int | None = Field(default=None)
    """The firing whose message this is (kind client), or the overdue task (kind escalation)."""
    rule_id: str | None = Field(default=None, max_length=128)
    rule_hash: str | None = Field(default=None, max_length=64)
    client_id: str | None = Field(default=None, max_length=64)
    rule_class: str = Field(max_length=16)
    channel: str = Field(max_length=16)
    recipient: str | None = None
    locale: str | None = Field(default=None, max_length=8)
    subject: str | None = None
    body: str | None = None
    bypass_window: bool = False
    """The rule is an urgent service rule that may be sent outside the contact window."""
    outside_window: str = Field(default="hold", max_length=8)
    state: str = Field(max_length=16)
    phase: str | None = Field(default=None, max_length=16)
    """Within `sending`: claimed, then transmitting (the channel call is under way)."""
    reason: str | None = Field(default=None, max_length=64)
    """Latest reason code: why held, dropped, retried or dead."""
    not_before: datetime | None = Field(default=None, sa_type=_tz())
    """Held messages: the earliest release time."""
    next_attempt_at: datetime | None = Field(default=None, sa_type=_tz())
    attempts: int = 0
    claimed_by: str | None = Field(default=None, max_length=128)
    claim_token: int = 0
    """Fencing token: raised by every claim; a dispatcher transmits only while the row still carries its token."""
    lease_until: datetime | None = Field(default=None, sa_type=_tz())
    receipt: str | None = None
    sent_at: datetime | None = Field(default=None, sa_type=_tz())
    last_error: str | None = None
    trail: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Every state change: [{at, event, reason, detail}, ...] (held, released, retry, sent, ...)."""
    created_at: datetime = Field(sa_type=_tz())
    updated_at: datetime = Field(sa_type=_tz())


class DoNotCall(SQLModel, table=True):
    """Phone numbers no call task may be created for (national list or the client's wish)."""

    __tablename__ = "do_not_call"
    phone: str = Field(primary_key=True, max_length=32)
    source: str = Field(default="client", max_length=32)
    note: str | None = None
    added_at: datetime = Field(sa_type=_tz())


class TaskEscalation(SQLModel, table=True):
    """An advisor call task past its due day, escalated to the supervisor once."""

    __tablename__ = "task_escalation"
    firing_id: int = Field(primary_key=True)
    advisor_id: str | None = Field(default=None, max_length=64)
    supervisor_id: str | None = Field(default=None, max_length=64)
    due_on: date | None = None
    escalated_at: datetime = Field(sa_type=_tz())
    notice_outbox_id: int | None = None


class JobRun(SQLModel, table=True):
    """One run of a scheduler job for one slot: the guard that a slot runs once."""

    __tablename__ = "job_run"
    __table_args__ = (UniqueConstraint("job_id", "slot", name="uq_job_run_job_slot"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(max_length=64)
    slot: str = Field(max_length=64)
    """What the run is for, e.g. the evaluation date of a nightly run."""
    instance: str = Field(max_length=128)
    status: str = Field(max_length=16)
    """running, done, skipped or failed."""
    detail: str | None = None
    started_at: datetime = Field(sa_type=_tz())
    finished_at: datetime | None = Field(default=None, sa_type=_tz())
    heartbeat_at: datetime | None = Field(default=None, sa_type=_tz())
    """Last sign of life of the instance running the slot; a running slot whose heartbeat is older
    than `dispatch.scheduler.job_stale_seconds` belonged to a process that died and may be taken over."""
