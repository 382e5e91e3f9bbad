"""Tables of the servicing playbook: product master, risk assessments, client profile, AML reviews.

Schema changes go through migrations/versions/0002_rule_pack.py. Table models do
not validate input: loaders validate first (engine.facts.risk parses answer sheets).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

PRODUCT_RISKS = ("R1", "R2", "R3", "R4", "R5")
INVESTOR_CLASSES = ("ordinary", "professional")


class Product(SQLModel, table=True):
    """Product master: what a symbol is and how risky (R1..R5)."""

    symbol: str = Field(primary_key=True, max_length=32)
    name: str
    risk: str = Field(max_length=2)
    """Product risk level R1..R5."""
    type: str = Field(max_length=16)
    """stock, bond, fund, wealth, margin, ..."""
    shares_outstanding: float | None = None
    """Listed company's total shares (stocks); a holding's stake is quantity / this."""


class RiskAssessment(SQLModel, table=True):
    """One scored questionnaire (engine.facts.risk); the latest on or before a day counts."""

    __tablename__ = "risk_assessment"
    __table_args__ = (Index("ix_risk_assessment_client_day", "client_id", "assessed_on"),)

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(max_length=64)
    assessed_on: date
    capacity_score: int
    tolerance_score: int
    capacity_level: str = Field(max_length=16)
    tolerance_level: str = Field(max_length=16)
    alloc_low: int
    alloc_medium: int
    alloc_high: int
    answers: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class ClientProfile(SQLModel, table=True):
    """Know-your-client data beyond the client table."""

    __tablename__ = "client_profile"

    client_id: str = Field(primary_key=True, max_length=64)
    investor_class: str = Field(default="ordinary", max_length=16)
    """ordinary or professional."""
    related_party: bool = False
    """Shareholder or related party of the firm (not eligible for margin)."""
    annual_income: float | None = None
    """Declared annual income, CNY."""
    third_party_custody: bool | None = None
    """Trading funds are under third-party custody at a bank (margin eligibility); null: unknown."""
    experience_years: float | None = None
    """Years of securities investment experience (margin eligibility); null: unknown."""
    serious_default: bool | None = None
    """A serious default on record (no margin); null: unknown."""


class AmlReview(SQLModel, table=True):
    """An anti-money-laundering review; open while closed_on is null."""

    __tablename__ = "aml_review"

    id: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(index=True, max_length=64)
    opened_on: date
    closed_on: date | None = None


class CallListEntry(SQLModel, table=True):
    """One task on an advisor's call list for a day (engine.servicing.calllist): the list stays stable all day.

    Tasks that did not fit are not stored: they are the open tasks not on the list, and
    carry to the next trading day.
    """

    __tablename__ = "call_list_entry"
    __table_args__ = (Index("ix_call_list_entry_advisor_day", "advisor_id", "day"),)

    day: date = Field(primary_key=True)
    firing_id: int = Field(primary_key=True)
    advisor_id: str = Field(max_length=64)
    position: int
    budget_group: str = Field(max_length=64)
    """Segment group of the budget (e.g. core+dormant), or other."""
    slot: str = Field(max_length=16)
    """urgent, budget (within its group's share) or spare (a share another group left unused)."""
    score: int
    """Priority plus aging points on that day."""
    created_at: datetime


RECORD_KINDS = ("need", "service", "follow_up")


class ClientRecord(SQLModel, table=True):
    """The client dynamic record (客户动态表): needs raised, services given, follow-ups planned.

    Written with each task outcome (`steward outcome --need ... --follow-up DATE`); an open
    follow-up (done_on empty) due on or before a day makes the fact `follow_up_due` true,
    and the next recorded outcome for the client closes it.
    """

    __tablename__ = "client_record"
    __table_args__ = (Index("ix_client_record_client_day", "client_id", "recorded_on"),)

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(max_length=64)
    recorded_on: date
    kind: str = Field(max_length=16)
    """need, service or follow_up."""
    text: str
    firing_id: int | None = None
    """The task whose outcome recorded it."""
    due_on: date | None = None
    """Follow-ups: the day the next contact is due."""
    done_on: date | None = None
    """Follow-ups: the day a later outcome closed it."""
    by_user: str | None = Field(default=None, max_length=64)
