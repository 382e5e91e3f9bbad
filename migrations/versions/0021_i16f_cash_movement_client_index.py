"""i16f: index cash movements by (client_id, moved_on)

The win-back facts read each batch's latest transfer out up to the evaluation date
(client_id BETWEEN lo AND hi AND moved_on <= as_of). With only the (moved_on, client_id)
index every batch scanned the whole movement history; led by client_id, a batch reads
its own clients' movements only, so the cost per client stays flat as the book grows.

Revision ID: 0021_i16f
"""

from alembic import op

revision = "0021_i16f"
down_revision = "0007_i16"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_cash_movement_client_date", "cash_movement", ["client_id", "moved_on"])


def downgrade() -> None:
    op.drop_index("ix_cash_movement_client_date", table_name="cash_movement")
