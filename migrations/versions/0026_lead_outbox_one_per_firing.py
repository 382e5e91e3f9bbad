"""lead: the outbox is unique per (firing_id, kind), not per idempotency key

A message's idempotency key is a sha256 of (rule id, rule version, client, firing day): a random
key, so the unique index on it sent every message of a night to a random page of an index that
grows with every night kept. Measured at 1M clients on SQLite (one night, two workers, the same
kept book, after 0025_lead): 239.5 s with that index, 208.3 s without (bench/results/issue-16.md,
"Session 6").

What the index guarded stays guarded: every outbox row names its firing (a rule's message) or
its task (an overdue-task notice), and a firing is unique per (rule, client, day), so one row per
(firing_id, kind) is one row per key. The unique index on (firing_id, kind) grows at its right
edge (firing ids are taken in order) and also answers the lookups by firing that
ix_outbox_firing_id served, which it replaces. The key itself is unchanged and still sent to
the gateway.

On SQLite the old constraint is part of the table, so the table is rebuilt (every row copied once,
in this migration's transaction).

Revision ID: 0026_lead
Revises: 0025_lead
"""

from alembic import op

revision = "0026_lead"
down_revision = "0025_lead"
branch_labels = None
depends_on = ("0007_i12",)  # the outbox as it left it (claim_token)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_idempotency_key_key")
        op.execute("DROP INDEX IF EXISTS uq_outbox_idempotency_key")
    elif bind.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'uq_outbox_idempotency_key'").first():
        op.execute("DROP INDEX uq_outbox_idempotency_key")  # put back by a downgrade: an index, not part of the table
    else:
        with op.batch_alter_table("outbox", recreate="always",
                                  naming_convention={"uq": "uq_%(table_name)s_%(column_0_name)s"}) as batch:
            batch.drop_constraint("uq_outbox_idempotency_key", type_="unique")
    op.create_index("uq_outbox_firing_kind", "outbox", ["firing_id", "kind"], unique=True)
    op.drop_index("ix_outbox_firing_id", table_name="outbox")


def downgrade() -> None:
    op.create_index("ix_outbox_firing_id", "outbox", ["firing_id"], unique=False)
    op.drop_index("uq_outbox_firing_kind", table_name="outbox")
    op.create_index("uq_outbox_idempotency_key", "outbox", ["idempotency_key"], unique=True)
