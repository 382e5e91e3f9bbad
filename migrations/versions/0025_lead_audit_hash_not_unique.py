"""lead: audit_event.hash is no longer a unique index

The chain already makes every hash distinct: each event's hash covers its body, which holds its
chain position (`seq`, the primary key), so two rows cannot share one; `steward audit verify`
recomputes every hash and link. No query looks an event up by its hash. The unique index on it
cost more than any other: a SHA-256 is random, so each event of a night went to a random page
of an index that grows with every night kept. Measured at 1M clients on SQLite (one night, two
workers, the same kept book): 322 s with the index, 246 s without (bench/results/issue-16.md,
"Session 6"), and the cost of the index would have grown night by night.

On SQLite the constraint is part of the table, so the table is rebuilt (every row copied once,
in this migration's transaction) and its append-only triggers are put back.

Revision ID: 0025_lead
Revises: 0024_lead
"""

from alembic import op

revision = "0025_lead"
down_revision = "0024_lead"
branch_labels = None
depends_on = ("0020_i12", "0021_i16r")  # the audit_event table as they left it (key_id; lz4 bodies)

SQLITE_TRIGGERS = tuple(
    f"CREATE TRIGGER audit_event_no_{verb.lower()} BEFORE {verb} ON audit_event BEGIN "
    f"SELECT RAISE(ABORT, 'audit_event is append-only: {verb} is not allowed'); END"
    for verb in ("UPDATE", "DELETE")
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE audit_event DROP CONSTRAINT IF EXISTS audit_event_hash_key")
        op.execute("DROP INDEX IF EXISTS uq_audit_event_hash")
        return
    if bind.exec_driver_sql("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'uq_audit_event_hash'").first():
        op.execute("DROP INDEX uq_audit_event_hash")  # put back by a downgrade: an index, not part of the table
        return
    with op.batch_alter_table("audit_event", recreate="always",
                              naming_convention={"uq": "uq_%(table_name)s_%(column_0_name)s"}) as batch:
        batch.drop_constraint("uq_audit_event_hash", type_="unique")
    for verb in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS audit_event_no_{verb}")
    for sql in SQLITE_TRIGGERS:
        op.execute(sql)


def downgrade() -> None:
    op.create_index("uq_audit_event_hash", "audit_event", ["hash"], unique=True)
