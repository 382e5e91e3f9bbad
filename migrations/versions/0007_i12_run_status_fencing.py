"""i12: evaluation_run status/owner/heartbeat (a killed run is marked failed); outbox claim_token (fencing)

Revision ID: 0007_i12
Revises: 0004
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0007_i12"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("evaluation_run") as b:
        b.add_column(sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False,
                               server_default="finished"))
        b.add_column(sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True))
        b.add_column(sa.Column("heartbeat_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        b.add_column(sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.execute("UPDATE evaluation_run SET status = 'running' WHERE finished_at IS NULL")
    with op.batch_alter_table("outbox") as b:
        b.add_column(sa.Column("claim_token", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as b:
        b.drop_column("claim_token")
    with op.batch_alter_table("evaluation_run") as b:
        for c in ("error", "heartbeat_at", "owner", "status"):
            b.drop_column(c)
