"""stored chat completions (store: true)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('completions',
    sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('org', sa.String(length=128), nullable=False),
    sa.Column('model', sa.String(length=512), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=True),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('response', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('pk')
    )
    op.create_index(op.f('ix_completions_id'), 'completions', ['id'], unique=True)
    op.create_index(op.f('ix_completions_org'), 'completions', ['org'], unique=False)
    op.create_index(op.f('ix_completions_model'), 'completions', ['model'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_completions_model'), table_name='completions')
    op.drop_index(op.f('ix_completions_org'), table_name='completions')
    op.drop_index(op.f('ix_completions_id'), table_name='completions')
    op.drop_table('completions')
