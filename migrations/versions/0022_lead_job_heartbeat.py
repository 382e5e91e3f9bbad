"""lead: job_run.heartbeat_at, so a slot left "running" by a dead scheduler can be taken over

The nightly slot is claimed as "running" before the evaluation starts. A leader killed in the
middle (power, OOM, kill -9) never writes "done" or "failed", and every later leader read the
slot as taken: the night never completed. The running instance now stamps `heartbeat_at`
while it works; a running slot whose heartbeat is older than `job_stale_seconds` is taken over.

Revision ID: 0022_lead
"""

import sqlalchemy as sa
from alembic import op

revision = "0022_lead"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job_run") as b:
        b.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_run") as b:
        b.drop_column("heartbeat_at")
