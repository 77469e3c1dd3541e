"""uploads: /v1/uploads and their parts

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('uploads',
    sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('org', sa.String(length=128), nullable=False),
    sa.Column('filename', sa.String(length=512), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('mime_type', sa.String(length=128), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('file_expires_after', sa.BigInteger(), nullable=True),
    sa.Column('file_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('pk')
    )
    op.create_index(op.f('ix_uploads_id'), 'uploads', ['id'], unique=True)
    op.create_index(op.f('ix_uploads_org'), 'uploads', ['org'], unique=False)
    op.create_index(op.f('ix_uploads_expires_at'), 'uploads', ['expires_at'], unique=False)
    op.create_index(op.f('ix_uploads_status'), 'uploads', ['status'], unique=False)
    op.create_table('upload_parts',
    sa.Column('pk', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('upload_id', sa.String(length=64), nullable=False),
    sa.Column('org', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('bytes', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['upload_id'], ['uploads.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('pk')
    )
    op.create_index(op.f('ix_upload_parts_id'), 'upload_parts', ['id'], unique=True)
    op.create_index(op.f('ix_upload_parts_upload_id'), 'upload_parts', ['upload_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_upload_parts_upload_id'), table_name='upload_parts')
    op.drop_index(op.f('ix_upload_parts_id'), table_name='upload_parts')
    op.drop_table('upload_parts')
    op.drop_index(op.f('ix_uploads_status'), table_name='uploads')
    op.drop_index(op.f('ix_uploads_expires_at'), table_name='uploads')
    op.drop_index(op.f('ix_uploads_org'), table_name='uploads')
    op.drop_index(op.f('ix_uploads_id'), table_name='uploads')
    op.drop_table('uploads')
