"""i11a console authoring: an author's draft of a rule and its templates (bytes in content_blob)

Revision ID: 0020_i11a
Revises: 0011_i11_identity
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0020_i11a"
down_revision = "0011_i11_identity"
branch_labels = None
depends_on = None


def upgrade() -> None:
    s = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "rule_draft",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("author", s(length=64), nullable=False),
        sa.Column("rule_path", s(length=255), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=True),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("status", s(length=16), nullable=False),
        sa.Column("proposal_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rule_draft_author", "rule_draft", ["author"])


def downgrade() -> None:
    op.drop_index("ix_rule_draft_author", table_name="rule_draft")
    op.drop_table("rule_draft")
