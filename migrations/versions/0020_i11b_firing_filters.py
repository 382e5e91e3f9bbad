"""i11b: index firings by the console's filters, newest first

The console's firings list filters by rule, status or advisor and pages newest first
(WHERE rule_id = ? AND id < ? ORDER BY id DESC LIMIT 51), and shows the total. Without an
index led by the filter column, both the total and a page for a rare value scan the whole
table (a million rows of facts snapshots); with (column, id) they read only the matching
index entries. (bench/web.py, bench/results/issue-11-web.md)

Revision ID: 0020_i11b
"""

from alembic import op

revision = "0020_i11b"
down_revision = "0001"
branch_labels = None
depends_on = None

INDEXES = {"ix_firing_rule_id": ["rule_id", "id"], "ix_firing_status_id": ["status", "id"],
           "ix_firing_advisor_id": ["advisor_id", "id"]}


def upgrade() -> None:
    for name, cols in INDEXES.items():
        op.create_index(name, "firing", cols)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="firing")
