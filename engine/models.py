"""Database schema (SQLModel tables). Schema changes go through Alembic migrations.

Table models do not validate input (SQLModel `table=True` never does): loaders
validate first (see engine.facts.importer) and only then build rows.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

RISK_LEVELS = ("C1", "C2", "C3", "C4", "C5")
CHANNELS = ("phone", "sms", "email", "im")
PURPOSES = ("service", "marketing")


class Advisor(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64)
    name: str
    email: str | None = None
    supervisor_id: str | None = Field(default=None, max_length=64)
    daily_capacity: int = 20


class Client(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64)
    name: str
    birth_date: date | None = None
    locale: str = Field(default="zh-CN", max_length=8)
    phone: str | None = None
    email: str | None = None
    opened_on: date
    advisor_id: str | None = Field(default=None, index=True, max_length=64)
    risk_level: str | None = Field(default=None, max_length=2)
    lowest_category: bool = False
    risk_assessed_on: date | None = None
    timezone: str | None = Field(default=None, max_length=64)
    """IANA zone of the client (contact windows, quiet hours, greeting days); null: config `timezone`."""


class Holding(SQLModel, table=True):
    """One row per client, day and symbol: position at that day's close."""

    as_of: date = Field(primary_key=True)
    client_id: str = Field(primary_key=True, max_length=64)
    symbol: str = Field(primary_key=True, max_length=32)
    quantity: float
    cost: float
    """Average cost per unit, CNY."""
    close_price: float


class CashBalance(SQLModel, table=True):
    __tablename__ = "cash_balance"
    as_of: date = Field(primary_key=True)
    client_id: str = Field(primary_key=True, max_length=64)
    amount: float


class Trade(SQLModel, table=True):
    __table_args__ = (Index("ix_trade_date_client", "trade_date", "client_id"),
                      Index("ix_trade_client_date", "client_id", "trade_date"))

    id: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(max_length=64)
    trade_date: date
    symbol: str = Field(max_length=32)
    side: str = Field(max_length=4)
    quantity: float
    price: float
    amount: float


class CashMovement(SQLModel, table=True):
    __tablename__ = "cash_movement"
    __table_args__ = (Index("ix_cash_movement_date_client", "moved_on", "client_id"),
                      Index("ix_cash_movement_client_date", "client_id", "moved_on"))

    id: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(max_length=64)
    moved_on: date
    kind: str = Field(max_length=16)
    """deposit, withdrawal or transfer_out."""
    amount: float


class MarginSnapshot(SQLModel, table=True):
    __tablename__ = "margin_snapshot"
    as_of: date = Field(primary_key=True)
    client_id: str = Field(primary_key=True, max_length=64)
    maintenance_ratio: float | None = None
    contract_expiry: date | None = None


class Contact(SQLModel, table=True):
    __table_args__ = (Index("ix_contact_client_date", "client_id", "contacted_on"),)

    id: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(max_length=64)
    contacted_on: date
    kind: str = Field(max_length=32)
    outcome: str | None = None
    by_user: str | None = Field(default=None, max_length=64)


class Consent(SQLModel, table=True):
    """Latest consent state per client, channel and purpose."""

    client_id: str = Field(primary_key=True, max_length=64)
    channel: str = Field(primary_key=True, max_length=16)
    purpose: str = Field(primary_key=True, max_length=16)
    status: str = Field(max_length=16)
    """granted or opted_out."""
    recorded_at: datetime
    evidence: str | None = None


class TradingDay(SQLModel, table=True):
    __tablename__ = "trading_day"
    exchange: str = Field(primary_key=True, max_length=16)
    day: date = Field(primary_key=True)
    source: str = Field(default="exchange-calendars", max_length=32)
    """exchange-calendars, or admin when overridden by hand."""
    is_open: bool = True


class EvaluationRun(SQLModel, table=True):
    __tablename__ = "evaluation_run"
    id: int | None = Field(default=None, primary_key=True)
    as_of: date = Field(index=True)
    started_at: datetime
    finished_at: datetime | None = None
    mode: str = Field(default="run", max_length=16)
    clients: int = 0
    firings: int = 0
    skipped_cooldown: int = 0
    skipped_duplicate: int = 0
    rules_version: str | None = None
    status: str = Field(default="running", max_length=16)
    """running, finished, or failed (the process died: marked at the next start)."""
    owner: str | None = Field(default=None, max_length=128)
    """host:pid of the process running it, so the next start can tell a dead run from a live one."""
    heartbeat_at: datetime | None = None
    """Last sign of life (each committed batch)."""
    error: str | None = None


class Firing(SQLModel, table=True):
    """A rule that matched a client on a day: the record supervisors audit."""

    __table_args__ = (
        UniqueConstraint("rule_id", "client_id", "as_of", name="uq_firing_rule_client_day"),
        # a batch's latest firing per (client, rule) up to a day, from this index alone (migration 0024_lead)
        Index("ix_firing_client_rule_day", "client_id", "rule_id", "as_of"),
        # the console's firings list: a filter, newest first (migration 0020_i11b)
        Index("ix_firing_rule_id", "rule_id", "id"),
        Index("ix_firing_status_id", "status", "id"),
        Index("ix_firing_advisor_id", "advisor_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(index=True)
    as_of: date = Field(index=True)
    client_id: str = Field(max_length=64)
    advisor_id: str | None = Field(default=None, max_length=64)
    rule_id: str = Field(max_length=128)
    rule_hash: str = Field(max_length=64)
    template_hash: str | None = Field(default=None, max_length=64)
    rule_class: str = Field(max_length=16)
    action_type: str = Field(max_length=16)
    channel: str = Field(max_length=16)
    priority: int = 50
    locale: str = Field(max_length=8)
    subject: str | None = None
    message: str | None = None
    due_on: date | None = None
    status: str = Field(default="pending", max_length=16)
    """pending (message awaiting dispatch), open (task), failed (could not render), ..."""
    error: str | None = None
    reason: str | None = Field(default=None, max_length=64)
    """Reason code when a policy stage suppressed, held, deferred or dropped the firing."""
    policy: list[Any] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Trail of policy-stage decisions: [{stage, outcome, reason, detail}, ...]."""
    facts: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    """The client's facts snapshot inline: rows written before issue 16 only (NULL since)."""
    facts_sha256: str | None = Field(default=None, max_length=64)
    """The snapshot by reference: sha256 of its canonical JSON, an `audit_blob` of kind "facts"
    (engine.audit.facts_store.load reads either form)."""
    created_at: datetime
