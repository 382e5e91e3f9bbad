"""i16 audit_event: drop the name and advisor_id indexes (the nightly run writes an event per firing)

Every audit event paid for eight secondary indexes. `name` has a handful of values (an index
that no query can use well) and no query filters events by advisor through an index path
that matters (the advisor filter of `steward audit list` is a supervisor's occasional query).
The chain position (primary key), client+time, rule, firing, evaluation day, time and the
hash stay indexed.

Revision ID: 0017_i16
Revises: 0016_i15
"""

from alembic import op

revision = "0017_i16"
down_revision = "0016_i15"
branch_labels = None
depends_on = "0005"  # the audit_event table it changes (it sits on the 0016_i15 branch)


def upgrade() -> None:
    op.drop_index("ix_audit_event_name", table_name="audit_event")
    op.drop_index("ix_audit_event_advisor_id", table_name="audit_event")


def downgrade() -> None:
    op.create_index("ix_audit_event_name", "audit_event", ["name"], unique=False)
    op.create_index("ix_audit_event_advisor_id", "audit_event", ["advisor_id"], unique=False)
