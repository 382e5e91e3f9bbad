"""i16: index trades by (client_id, trade_date)

The nightly facts query a batch of clients' trades up to the evaluation date
(client_id BETWEEN lo AND hi AND trade_date <= as_of). With only the
(trade_date, client_id) index every batch scanned the whole trade history up to
that date; led by client_id, a batch reads its own clients' trades only.

Revision ID: 0007_i16
"""

from alembic import op

revision = "0007_i16"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_trade_client_date", "trade", ["client_id", "trade_date"])


def downgrade() -> None:
    op.drop_index("ix_trade_client_date", table_name="trade")
