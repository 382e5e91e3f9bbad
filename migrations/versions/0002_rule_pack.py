"""rule pack: product master, risk assessments, client profile, AML reviews

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('product',
    sa.Column('symbol', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('risk', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.PrimaryKeyConstraint('symbol')
    )
    op.create_table('risk_assessment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('assessed_on', sa.Date(), nullable=False),
    sa.Column('capacity_score', sa.Integer(), nullable=False),
    sa.Column('tolerance_score', sa.Integer(), nullable=False),
    sa.Column('capacity_level', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('tolerance_level', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('alloc_low', sa.Integer(), nullable=False),
    sa.Column('alloc_medium', sa.Integer(), nullable=False),
    sa.Column('alloc_high', sa.Integer(), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('risk_assessment', schema=None) as batch_op:
        batch_op.create_index('ix_risk_assessment_client_day', ['client_id', 'assessed_on'], unique=False)
    op.create_table('client_profile',
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('investor_class', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('related_party', sa.Boolean(), nullable=False),
    sa.Column('annual_income', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('client_id')
    )
    op.create_table('aml_review',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('client_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('opened_on', sa.Date(), nullable=False),
    sa.Column('closed_on', sa.Date(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('aml_review', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_aml_review_client_id'), ['client_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('aml_review', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_aml_review_client_id'))
    op.drop_table('aml_review')
    op.drop_table('client_profile')
    with op.batch_alter_table('risk_assessment', schema=None) as batch_op:
        batch_op.drop_index('ix_risk_assessment_client_day')
    op.drop_table('risk_assessment')
    op.drop_table('product')
