"""lead: the firing index led by client_id also holds as_of

Every batch of a run asks for its clients' latest firing per rule up to the evaluation day
(engine.pipeline.recording.last_fired: client_id BETWEEN lo AND hi AND as_of <= day). With
(client_id, rule_id) alone, PostgreSQL combined it with the as_of index (a BitmapAnd), and
as_of <= day matches every firing ever recorded: each batch scanned the whole firing history.
Measured at 100k clients after one night (219k firing rows): 17.7 ms per batch and growing
with every night, against 8.7 ms flat with this index; at 1M clients the matching stage took
twice its share on PostgreSQL (111.6 s vs SQLite's 55.4 s). (client_id, rule_id, as_of) answers
the whole condition from one index, so a batch reads its own clients' rows only.

Revision ID: 0024_lead
Revises: 0023_i16s
"""

from alembic import op

revision = "0024_lead"
down_revision = "0023_i16s"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_firing_client_rule_day", "firing", ["client_id", "rule_id", "as_of"])
    op.drop_index("ix_firing_client_rule", table_name="firing")


def downgrade() -> None:
    op.create_index("ix_firing_client_rule", "firing", ["client_id", "rule_id"])
    op.drop_index("ix_firing_client_rule_day", table_name="firing")
