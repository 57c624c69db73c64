"""SNMP northbound: USM users (master keys only), notification targets, the engine's ID and boots.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

import controller.store.schema


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('snmp_users',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('auth_protocol', sa.String(length=16), nullable=False),
    sa.Column('priv_protocol', sa.String(length=16), nullable=False),
    sa.Column('auth_key', sa.String(length=128), nullable=False),
    sa.Column('priv_key', sa.String(length=128), nullable=False),
    sa.Column('created_at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_index(op.f('ix_snmp_users_customer_id'), 'snmp_users', ['customer_id'], unique=False)
    op.create_table('snmp_targets',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('address', sa.String(length=64), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('user', sa.String(length=32), nullable=False),
    sa.Column('created_at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.ForeignKeyConstraint(['user'], ['snmp_users.name'], ),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_index(op.f('ix_snmp_targets_customer_id'), 'snmp_targets', ['customer_id'], unique=False)
    op.create_table('snmp_engine',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('engine_id', sa.String(length=64), nullable=False),
    sa.Column('boots', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('snmp_engine')
    op.drop_index(op.f('ix_snmp_targets_customer_id'), table_name='snmp_targets')
    op.drop_table('snmp_targets')
    op.drop_index(op.f('ix_snmp_users_customer_id'), table_name='snmp_users')
    op.drop_table('snmp_users')
