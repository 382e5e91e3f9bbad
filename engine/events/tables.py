"""Tables of the event side: the event store, sequence marks and absence deadlines.

Schema changes go through migrations/versions/0006_events.py; keep both identical.
Every datetime is stored in UTC with its zone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

EVENT_STATUSES = ("stored", "processed", "failed")
"""stored: durable, not processed yet (replayed on start); processed: rules ran and their
firings committed in the same transaction; failed: processing raised (error kept; retried
by `steward events retry`)."""


def _tz() -> Any:
    return DateTime(timezone=True)


class StoredEvent(SQLModel, table=True):
    """An event as received, stored before it is processed."""

    __tablename__ = "event_log"
    __table_args__ = (
        Index("ix_event_log_status_seq", "status", "seq"),
        Index("ix_event_log_client_type_at", "client_id", "type", "occurred_at"),
    )

    seq: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=128, unique=True)
    """The sender's id: posting the same id again stores nothing (idempotent intake)."""
    type: str = Field(max_length=16)
    client_id: str = Field(max_length=64)
    occurred_at: datetime = Field(sa_column=Column(_tz(), nullable=False))
    received_at: datetime = Field(sa_column=Column(_tz(), nullable=False))
    payload: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    status: str = Field(default="stored", max_length=16)
    processed_at: datetime | None = Field(default=None, sa_column=Column(_tz(), nullable=True))
    rules_version: str | None = Field(default=None, max_length=32)
    """The event rule set version that processed it."""
    firings: int = 0
    error: str | None = None


class EventMark(SQLModel, table=True):
    """An event that matched the first step of a sequence rule: the sequence's persisted state."""

    __tablename__ = "event_mark"
    __table_args__ = (
        UniqueConstraint("rule_id", "event_seq", name="uq_event_mark_rule_event"),
        Index("ix_event_mark_rule_client_at", "rule_id", "client_id", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    rule_id: str = Field(max_length=128)
    client_id: str = Field(max_length=64)
    event_seq: int
    occurred_at: datetime = Field(sa_column=Column(_tz(), nullable=False))
    fields: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    """The first event's rule fields, shown to the template as first_*."""


class EventDeadline(SQLModel, table=True):
    """An absence rule waiting: fires at due_at unless a curing event comes first."""

    __tablename__ = "event_deadline"
    __table_args__ = (
        UniqueConstraint("rule_id", "start_seq", name="uq_event_deadline_rule_start"),
        Index("ix_event_deadline_state_due", "state", "due_at"),
        Index("ix_event_deadline_rule_client", "rule_id", "client_id", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    rule_id: str = Field(max_length=128)
    client_id: str = Field(max_length=64)
    start_seq: int
    started_at: datetime = Field(sa_column=Column(_tz(), nullable=False))
    due_at: datetime = Field(sa_column=Column(_tz(), nullable=False))
    state: str = Field(default="armed", max_length=16)
    """armed, cured (a curing event came in time) or fired."""
    closed_at: datetime | None = Field(default=None, sa_column=Column(_tz(), nullable=True))
    closed_by_seq: int | None = None
    fields: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    """The starting event's rule fields, shown to the template as event_*."""
