"""Initial schema: topology, customers, SLAs, SLS and its append-only history, events.

Revision ID: 0001
Revises: 
Create Date: 2026-11-22
"""
from alembic import op
import sqlalchemy as sa

import controller.store.schema


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customers',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=100), nullable=False),
    sa.Column('principal', sa.String(length=100), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_type_id', ['type', 'id'], unique=False)

    op.create_table('links',
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('a_router', sa.String(length=64), nullable=False),
    sa.Column('a_interface', sa.String(length=64), nullable=False),
    sa.Column('b_router', sa.String(length=64), nullable=True),
    sa.Column('b_interface', sa.String(length=64), nullable=True),
    sa.Column('capacity_bps', sa.BigInteger(), nullable=False),
    sa.Column('gold_share', sa.String(length=16), nullable=False),
    sa.Column('gold_silver_share', sa.String(length=16), nullable=False),
    sa.Column('reserved_gold_bps', sa.BigInteger(), nullable=False),
    sa.Column('reserved_gold_silver_bps', sa.BigInteger(), nullable=False),
    sa.Column('in_use_gold_bps', sa.BigInteger(), nullable=False),
    sa.Column('in_use_gold_silver_bps', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('routers',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('mgmt_address', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('interfaces',
    sa.Column('router_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('capacity_bps', sa.BigInteger(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['router_id'], ['routers.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('router_id', 'name')
    )
    op.create_table('slas',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('offering', sa.String(length=64), nullable=False),
    sa.Column('router_id', sa.String(length=64), nullable=False),
    sa.Column('interface', sa.String(length=64), nullable=False),
    sa.Column('access_speed_bps', sa.BigInteger(), nullable=False),
    sa.Column('prefixes', sa.JSON(), nullable=False),
    sa.Column('bounds', sa.JSON(), nullable=False),
    sa.Column('tariff', sa.JSON(), nullable=False),
    sa.Column('change_policy', sa.JSON(), nullable=False),
    sa.Column('availability', sa.JSON(), nullable=False),
    sa.Column('valid_from', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('valid_until', controller.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('path', sa.JSON(), nullable=False),
    sa.Column('created_at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('slas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_slas_customer_id'), ['customer_id'], unique=False)

    op.create_table('sla_state_changes',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('sla_id', sa.Integer(), nullable=False),
    sa.Column('at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('from_state', sa.String(length=20), nullable=True),
    sa.Column('to_state', sa.String(length=20), nullable=False),
    sa.Column('principal', sa.String(length=100), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['sla_id'], ['slas.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sla_state_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sla_state_changes_sla_id'), ['sla_id'], unique=False)

    op.create_table('sls',
    sa.Column('sla_id', sa.Integer(), nullable=False),
    sa.Column('service_class', sa.String(length=16), nullable=False),
    sa.Column('bandwidth_bps', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('changed_at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('changed_by', sa.String(length=100), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('last_customer_change_at', controller.store.schema.UtcDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['sla_id'], ['slas.id'], ),
    sa.PrimaryKeyConstraint('sla_id')
    )
    op.create_table('sls_history',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('sla_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('service_class', sa.String(length=16), nullable=False),
    sa.Column('bandwidth_bps', sa.BigInteger(), nullable=False),
    sa.Column('effective_from', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('principal', sa.String(length=100), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('fee_cents', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['sla_id'], ['slas.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sla_id', 'version', name='uq_sls_history_version')
    )
    _make_history_append_only()


def _make_history_append_only() -> None:
    """sls_history is what billing is computed from: refuse UPDATE and DELETE in the database itself."""
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER sls_history_no_{verb.lower()} BEFORE {verb} ON sls_history
                BEGIN SELECT RAISE(ABORT, 'sls_history is append-only'); END""")
    else:
        op.execute("""
            CREATE FUNCTION sls_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'sls_history is append-only'; END $$""")
        op.execute("""
            CREATE TRIGGER sls_history_append_only BEFORE UPDATE OR DELETE ON sls_history
            FOR EACH ROW EXECUTE FUNCTION sls_history_append_only()""")
        op.execute("""
            CREATE TRIGGER sls_history_no_truncate BEFORE TRUNCATE ON sls_history
            FOR EACH STATEMENT EXECUTE FUNCTION sls_history_append_only()""")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP TRIGGER IF EXISTS sls_history_no_truncate ON sls_history")
        op.execute("DROP TRIGGER IF EXISTS sls_history_append_only ON sls_history")
        op.execute("DROP FUNCTION IF EXISTS sls_history_append_only()")
    op.drop_table('sls_history')
    op.drop_table('sls')
    with op.batch_alter_table('sla_state_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sla_state_changes_sla_id'))

    op.drop_table('sla_state_changes')
    with op.batch_alter_table('slas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_slas_customer_id'))

    op.drop_table('slas')
    op.drop_table('interfaces')
    op.drop_table('routers')
    op.drop_table('links')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_type_id')

    op.drop_table('events')
    op.drop_table('customers')
