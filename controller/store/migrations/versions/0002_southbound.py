"""Southbound: router configs (versions), agents, counter marks, per-class usage.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

import controller.store.schema


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agents',
    sa.Column('router', sa.String(length=64), nullable=False),
    sa.Column('connected', sa.Boolean(), nullable=False),
    sa.Column('agent_version', sa.String(length=40), nullable=False),
    sa.Column('peer', sa.String(length=200), nullable=False),
    sa.Column('capabilities', sa.JSON(), nullable=False),
    sa.Column('boot_epoch', sa.BigInteger(), nullable=False),
    sa.Column('applied_version', sa.BigInteger(), nullable=False),
    sa.Column('applied_fingerprint', sa.String(length=32), nullable=False),
    sa.Column('applied_config', sa.JSON(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('connected_at', controller.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.Column('last_seen', controller.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('router')
    )
    op.create_table('class_usage',
    sa.Column('sla', sa.String(length=64), nullable=False),
    sa.Column('service_class', sa.String(length=16), nullable=False),
    sa.Column('octets', sa.BigInteger(), nullable=False),
    sa.Column('packets', sa.BigInteger(), nullable=False),
    sa.Column('drops', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sla', 'service_class')
    )
    op.create_table('counter_marks',
    sa.Column('router', sa.String(length=64), nullable=False),
    sa.Column('interface', sa.String(length=64), nullable=False),
    sa.Column('class_name', sa.String(length=200), nullable=False),
    sa.Column('boot_epoch', sa.BigInteger(), nullable=False),
    sa.Column('octets', sa.BigInteger(), nullable=False),
    sa.Column('packets', sa.BigInteger(), nullable=False),
    sa.Column('drops', sa.BigInteger(), nullable=False),
    sa.Column('sampled_at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('router', 'interface', 'class_name')
    )
    op.create_table('router_configs',
    sa.Column('router', sa.String(length=64), nullable=False),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('fingerprint', sa.String(length=32), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('updated_at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('router')
    )


def downgrade() -> None:
    op.drop_table('router_configs')
    op.drop_table('counter_marks')
    op.drop_table('class_usage')
    op.drop_table('agents')
