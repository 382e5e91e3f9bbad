"""core schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 03:36:30.002355
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('advisor',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('supervisor_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('daily_capacity', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('cash_balance',
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('amount', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('as_of', 'client_id')
    )
    op.create_table('cash_movement',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('moved_on', sa.Date(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('amount', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('cash_movement', schema=None) as batch_op:
        batch_op.create_index('ix_cash_movement_date_client', ['moved_on', 'client_id'], unique=False)

    op.create_table('client',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('locale', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('opened_on', sa.Date(), nullable=False),
    sa.Column('advisor_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('risk_level', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
    sa.Column('lowest_category', sa.Boolean(), nullable=False),
    sa.Column('risk_assessed_on', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_client_advisor_id'), ['advisor_id'], unique=False)

    op.create_table('consent',
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('purpose', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('recorded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('evidence', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('client_id', 'channel', 'purpose')
    )
    op.create_table('contact',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('contacted_on', sa.Date(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('by_user', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.create_index('ix_contact_client_date', ['client_id', 'contacted_on'], unique=False)

    op.create_table('evaluation_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('finished_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('clients', sa.Integer(), nullable=False),
    sa.Column('firings', sa.Integer(), nullable=False),
    sa.Column('skipped_cooldown', sa.Integer(), nullable=False),
    sa.Column('skipped_duplicate', sa.Integer(), nullable=False),
    sa.Column('rules_version', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('evaluation_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_run_as_of'), ['as_of'], unique=False)

    op.create_table('firing',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('advisor_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('rule_id', sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
    sa.Column('rule_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('template_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('rule_class', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('action_type', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('locale', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('message', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('due_on', sa.Date(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('policy', sa.JSON(), nullable=False),
    sa.Column('facts', sa.JSON(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('rule_id', 'client_id', 'as_of', name='uq_firing_rule_client_day')
    )
    with op.batch_alter_table('firing', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_firing_as_of'), ['as_of'], unique=False)
        batch_op.create_index('ix_firing_client_rule', ['client_id', 'rule_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_firing_run_id'), ['run_id'], unique=False)

    op.create_table('holding',
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('symbol', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('quantity', sa.Float(), nullable=False),
    sa.Column('cost', sa.Float(), nullable=False),
    sa.Column('close_price', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('as_of', 'client_id', 'symbol')
    )
    op.create_table('margin_snapshot',
    sa.Column('as_of', sa.Date(), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('maintenance_ratio', sa.Float(), nullable=True),
    sa.Column('contract_expiry', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('as_of', 'client_id')
    )
    op.create_table('trade',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('trade_date', sa.Date(), nullable=False),
    sa.Column('symbol', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('side', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('quantity', sa.Float(), nullable=False),
    sa.Column('price', sa.Float(), nullable=False),
    sa.Column('amount', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('trade', schema=None) as batch_op:
        batch_op.create_index('ix_trade_date_client', ['trade_date', 'client_id'], unique=False)

    op.create_table('trading_day',
    sa.Column('exchange', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('is_open', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('exchange', 'day')
    )


def downgrade() -> None:
    op.drop_table('trading_day')
    with op.batch_alter_table('trade', schema=None) as batch_op:
        batch_op.drop_index('ix_trade_date_client')

    op.drop_table('trade')
    op.drop_table('margin_snapshot')
    op.drop_table('holding')
    with op.batch_alter_table('firing', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_firing_run_id'))
        batch_op.drop_index('ix_firing_client_rule')
        batch_op.drop_index(batch_op.f('ix_firing_as_of'))

    op.drop_table('firing')
    with op.batch_alter_table('evaluation_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_run_as_of'))

    op.drop_table('evaluation_run')
    with op.batch_alter_table('contact', schema=None) as batch_op:
        batch_op.drop_index('ix_contact_client_date')

    op.drop_table('contact')
    op.drop_table('consent')
    with op.batch_alter_table('client', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_client_advisor_id'))

    op.drop_table('client')
    with op.batch_alter_table('cash_movement', schema=None) as batch_op:
        batch_op.drop_index('ix_cash_movement_date_client')

    op.drop_table('cash_movement')
    op.drop_table('cash_balance')
    op.drop_table('advisor')
