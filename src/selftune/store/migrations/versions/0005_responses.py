"""stored responses of /v1/responses (store: true, the default)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('responses',
    sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('org', sa.String(length=128), nullable=False),
    sa.Column('model', sa.String(length=512), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('history', sa.JSON(), nullable=False),
    sa.Column('input_items', sa.JSON(), nullable=False),
    sa.Column('response', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('pk')
    )
    op.create_index(op.f('ix_responses_id'), 'responses', ['id'], unique=True)
    op.create_index(op.f('ix_responses_org'), 'responses', ['org'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_responses_org'), table_name='responses')
    op.drop_index(op.f('ix_responses_id'), table_name='responses')
    op.drop_table('responses')
