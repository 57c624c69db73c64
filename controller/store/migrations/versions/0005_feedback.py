"""Feedback: each SLA's latest conformance, and the penalty credits of availability breaches.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

import controller.store.schema


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('conformance',
    sa.Column('sla_id', sa.Integer(), nullable=False),
    sa.Column('measured_at', controller.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.Column('interval_s', sa.Float(), nullable=True),
    sa.Column('sls_class', sa.String(length=16), nullable=True),
    sa.Column('sls_bandwidth_bps', sa.BigInteger(), nullable=True),
    sa.Column('throughput_bps', sa.BigInteger(), nullable=True),
    sa.Column('offered_bps', sa.BigInteger(), nullable=True),
    sa.Column('loss_ppm', sa.Integer(), nullable=True),
    sa.Column('month', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('counted_from', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('down_s', sa.Float(), nullable=False),
    sa.Column('longest_outage_s', sa.Float(), nullable=False),
    sa.Column('availability_percent', sa.String(length=16), nullable=False),
    sa.Column('violations', sa.String(length=100), nullable=False),
    sa.Column('updated_at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['sla_id'], ['slas.id'], ),
    sa.PrimaryKeyConstraint('sla_id')
    )
    op.create_table('penalty_credits',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('sla_id', sa.Integer(), nullable=False),
    sa.Column('month', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('created_at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['sla_id'], ['slas.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sla_id', 'month', name='uq_penalty_credit_month')
    )
    with op.batch_alter_table('penalty_credits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_penalty_credits_sla_id'), ['sla_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('penalty_credits', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_penalty_credits_sla_id'))

    op.drop_table('penalty_credits')
    op.drop_table('conformance')
