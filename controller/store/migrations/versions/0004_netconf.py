"""NETCONF northbound: SSH logins of peers (scrypt password hashes, public keys).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

import controller.store.schema


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('netconf_users',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('public_keys', sa.JSON(), nullable=False),
    sa.Column('created_at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_index(op.f('ix_netconf_users_customer_id'), 'netconf_users', ['customer_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_netconf_users_customer_id'), table_name='netconf_users')
    op.drop_table('netconf_users')
