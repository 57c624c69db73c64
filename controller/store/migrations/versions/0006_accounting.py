"""Accounting: usage records, policy charges, notifications, invoices (issued ones can never be
changed: triggers refuse UPDATE and DELETE), accounting policies and the accounting part's marks.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

import controller.store.schema


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('accounting_marks',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('accounting_policies',
    sa.Column('id', sa.String(length=100), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('origin', sa.String(length=200), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('updated_at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('invoices',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('refers_to', sa.String(length=40), nullable=True),
    sa.Column('issued_at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('total_cents', sa.BigInteger(), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('customer_id', 'month', 'seq', name='uq_invoice_customer_month_seq'),
    sa.UniqueConstraint('number')
    )
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoices_customer_id'), ['customer_id'], unique=False)

    op.create_table('charges',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('sla_id', sa.Integer(), nullable=False),
    sa.Column('at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('text', sa.String(length=300), nullable=False),
    sa.Column('policy', sa.String(length=100), nullable=False),
    sa.Column('event_key', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['sla_id'], ['slas.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('policy', 'event_key', name='uq_charge_policy_event')
    )
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_charges_sla_id'), ['sla_id'], unique=False)

    op.create_table('notifications',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('sla_id', sa.Integer(), nullable=True),
    sa.Column('at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.Column('text', sa.String(length=500), nullable=False),
    sa.Column('policy', sa.String(length=100), nullable=False),
    sa.Column('event_key', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], ),
    sa.ForeignKeyConstraint(['sla_id'], ['slas.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('policy', 'event_key', name='uq_notification_policy_event')
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifications_customer_id'), ['customer_id'], unique=False)

    op.create_table('usage_records',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('sla_id', sa.Integer(), nullable=False),
    sa.Column('service_class', sa.String(length=16), nullable=False),
    sa.Column('dscp', sa.Integer(), nullable=False),
    sa.Column('flow_start_ms', sa.BigInteger(), nullable=False),
    sa.Column('flow_end_ms', sa.BigInteger(), nullable=False),
    sa.Column('octets', sa.BigInteger(), nullable=False),
    sa.Column('packets', sa.BigInteger(), nullable=False),
    sa.Column('dropped_packets', sa.BigInteger(), nullable=False),
    sa.Column('recorded_at', controller.store.schema.UtcDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['sla_id'], ['slas.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'sla_id', 'dscp', 'flow_start_ms', 'flow_end_ms', name='uq_usage_record')
    )
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.create_index('ix_usage_records_sla_start', ['sla_id', 'flow_start_ms'], unique=False)
    _invoices_are_immutable()


def _invoices_are_immutable() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"""
                CREATE TRIGGER invoices_no_{verb.lower()} BEFORE {verb} ON invoices
                BEGIN SELECT RAISE(ABORT, 'issued invoices are never changed; issue a credit or debit note'); END""")
    else:
        op.execute("""
            CREATE FUNCTION invoices_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'issued invoices are never changed; issue a credit or debit note'; END $$""")
        op.execute("""
            CREATE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON invoices
            FOR EACH ROW EXECUTE FUNCTION invoices_immutable()""")
        op.execute("""
            CREATE TRIGGER invoices_no_truncate BEFORE TRUNCATE ON invoices
            FOR EACH STATEMENT EXECUTE FUNCTION invoices_immutable()""")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.execute("DROP TRIGGER IF EXISTS invoices_no_truncate ON invoices")
        op.execute("DROP TRIGGER IF EXISTS invoices_immutable ON invoices")
        op.execute("DROP FUNCTION IF EXISTS invoices_immutable()")
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_records_sla_start')

    op.drop_table('usage_records')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notifications_customer_id'))

    op.drop_table('notifications')
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_charges_sla_id'))

    op.drop_table('charges')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoices_customer_id'))

    op.drop_table('invoices')
    op.drop_table('accounting_policies')
    op.drop_table('accounting_marks')
