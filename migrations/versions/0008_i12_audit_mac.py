"""i12: audit_event.mac, the HMAC of each event's hash under a key the database does not hold

Revision ID: 0008_i12
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0008_i12"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # add_column, not batch_alter_table: SQLite adds the column in place, keeping the no-update/no-delete triggers
    op.add_column("audit_event", sa.Column("mac", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    op.drop_column("audit_event", "mac")
