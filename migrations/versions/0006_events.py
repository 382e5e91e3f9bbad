"""events: event store (event_log), sequence marks, absence deadlines

Revision ID: 0006
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0006"
down_revision = "0001"
branch_labels = None
depends_on = None


def _s(n: int | None = None) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=n) if n else sqlmodel.sql.sqltypes.AutoString()


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "event_log",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("event_id", _s(128), nullable=False),
        sa.Column("type", _s(16), nullable=False),
        sa.Column("client_id", _s(64), nullable=False),
        sa.Column("occurred_at", tz, nullable=False),
        sa.Column("received_at", tz, nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", _s(16), nullable=False),
        sa.Column("processed_at", tz, nullable=True),
        sa.Column("rules_version", _s(32), nullable=True),
        sa.Column("firings", sa.Integer(), nullable=False),
        sa.Column("error", _s(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_event_log_status_seq", "event_log", ["status", "seq"])
    op.create_index("ix_event_log_client_type_at", "event_log", ["client_id", "type", "occurred_at"])
    op.create_table(
        "event_mark",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", _s(128), nullable=False),
        sa.Column("client_id", _s(64), nullable=False),
        sa.Column("event_seq", sa.Integer(), nullable=False),
        sa.Column("occurred_at", tz, nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rule_id", "event_seq", name="uq_event_mark_rule_event"),
    )
    op.create_index("ix_event_mark_rule_client_at", "event_mark", ["rule_id", "client_id", "occurred_at"])
    op.create_table(
        "event_deadline",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", _s(128), nullable=False),
        sa.Column("client_id", _s(64), nullable=False),
        sa.Column("start_seq", sa.Integer(), nullable=False),
        sa.Column("started_at", tz, nullable=False),
        sa.Column("due_at", tz, nullable=False),
        sa.Column("state", _s(16), nullable=False),
        sa.Column("closed_at", tz, nullable=True),
        sa.Column("closed_by_seq", sa.Integer(), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("rule_id", "start_seq", name="uq_event_deadline_rule_start"),
    )
    op.create_index("ix_event_deadline_state_due", "event_deadline", ["state", "due_at"])
    op.create_index("ix_event_deadline_rule_client", "event_deadline", ["rule_id", "client_id", "state"])


def downgrade() -> None:
    op.drop_table("event_deadline")
    op.drop_table("event_mark")
    op.drop_table("event_log")
