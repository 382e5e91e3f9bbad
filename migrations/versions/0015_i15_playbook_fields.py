"""i15 playbook fields: listed share count in the product master, margin eligibility in the client profile

Revision ID: 0015_i15
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa


revision = "0015_i15"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("product") as b:
        b.add_column(sa.Column("shares_outstanding", sa.Float(), nullable=True))
    with op.batch_alter_table("client_profile") as b:
        b.add_column(sa.Column("third_party_custody", sa.Boolean(), nullable=True))
        b.add_column(sa.Column("experience_years", sa.Float(), nullable=True))
        b.add_column(sa.Column("serious_default", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("client_profile") as b:
        b.drop_column("serious_default")
        b.drop_column("experience_years")
        b.drop_column("third_party_custody")
    with op.batch_alter_table("product") as b:
        b.drop_column("shares_outstanding")
