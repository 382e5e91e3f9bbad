"""issue 14: client.timezone (the client's IANA zone; null = config timezone)

Revision ID: 0014_i14
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0014_i14"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("client") as batch:
        batch.add_column(sa.Column("timezone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("client") as batch:
        batch.drop_column("timezone")
