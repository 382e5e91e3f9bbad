"""i15 client dynamic record: needs, services and follow-ups recorded with task outcomes

Revision ID: 0016_i15
Revises: 0015_i15
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0016_i15"
down_revision = "0015_i15"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "client_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", s(length=64), nullable=False),
        sa.Column("recorded_on", sa.Date(), nullable=False),
        sa.Column("kind", s(length=16), nullable=False),
        sa.Column("text", s(), nullable=False),
        sa.Column("firing_id", sa.Integer(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("done_on", sa.Date(), nullable=True),
        sa.Column("by_user", s(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_client_record_client_day", "client_record", ["client_id", "recorded_on"])


def downgrade() -> None:
    op.drop_index("ix_client_record_client_day", table_name="client_record")
    op.drop_table("client_record")
