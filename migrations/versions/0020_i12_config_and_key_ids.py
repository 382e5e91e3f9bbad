"""i12: proposal.config_source (where governed config.yaml keys came from) and audit_event.key_id (key rotation)

Revision ID: 0020_i12
Revises: 0008_i12, 0003
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0020_i12"
down_revision = ("0008_i12", "0003")  # audit_event.mac and the proposal table
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("proposal", sa.Column("config_source", sa.JSON(), nullable=True))
    # add_column, not batch_alter_table: SQLite adds the column in place, keeping the no-update/no-delete triggers
    op.add_column("audit_event", sa.Column("key_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_event", "key_id")
    op.drop_column("proposal", "config_source")
