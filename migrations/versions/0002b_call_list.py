"""call list: the advisor's daily call list entries (engine.servicing.calllist)

Revision ID: 0002b
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0002b"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('call_list_entry',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('firing_id', sa.Integer(), nullable=False),
    sa.Column('advisor_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('budget_group', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('slot', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'firing_id')
    )
    with op.batch_alter_table('call_list_entry', schema=None) as batch_op:
        batch_op.create_index('ix_call_list_entry_advisor_day', ['advisor_id', 'day'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('call_list_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_call_list_entry_advisor_day')
    op.drop_table('call_list_entry')
