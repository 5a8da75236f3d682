"""Initial schema: the ledger tables, their guards, and the append-only triggers.

Revision ID: 0001
Revises: 
Create Date: 2026-11-24
"""

from alembic import op
import os
import uuid

import sqlalchemy as sa

from meterdesk.store.schema import APPEND_ONLY_TABLES


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def _create_tables() -> None:
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_subject'), ['subject'], unique=False)

    op.create_table('customers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('external_id', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('credit_limit', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('stripe_customer_id', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.CheckConstraint("mode IN ('invoice', 'prepaid')", name=op.f('ck_customers_mode')),
    sa.CheckConstraint('credit_limit >= 0', name=op.f('ck_customers_credit_limit')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customers')),
    sa.UniqueConstraint('external_id', name=op.f('uq_customers_external_id'))
    )
    op.create_table('ledger_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_ledger_settings'))
    )
    op.create_table('plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plans')),
    sa.UniqueConstraint('code', name=op.f('uq_plans_code'))
    )
    op.create_table('units',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('decimals', sa.SmallInteger(), nullable=False),
    sa.Column('aggregation', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.CheckConstraint("aggregation IN ('sum', 'count', 'max')", name=op.f('ck_units_aggregation')),
    sa.CheckConstraint('decimals BETWEEN 0 AND 6', name=op.f('ck_units_decimals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_units')),
    sa.UniqueConstraint('code', name=op.f('uq_units_code'))
    )
    op.create_table('credit_grants',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('request_id', sa.String(length=255), nullable=False),
    sa.Column('recorded_at', sa.BigInteger(), nullable=False),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.CheckConstraint('amount > 0', name=op.f('ck_credit_grants_amount')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_credit_grants_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_credit_grants')),
    sa.UniqueConstraint('customer_id', 'request_id', name=op.f('uq_credit_grants_customer_id_request_id'))
    )
    op.create_table('customer_balances',
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('granted', sa.BigInteger(), nullable=False),
    sa.Column('charged', sa.BigInteger(), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('balance = granted - charged', name=op.f('ck_customer_balances_balance')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_balances_customer_id_customers')),
    sa.PrimaryKeyConstraint('customer_id', name=op.f('pk_customer_balances'))
    )
    op.create_table('plan_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('effective_from', sa.BigInteger(), nullable=False),
    sa.Column('definition', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.CheckConstraint('version >= 1', name=op.f('ck_plan_versions_version')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_plan_versions_plan_id_plans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_versions')),
    sa.UniqueConstraint('plan_id', 'version', name=op.f('uq_plan_versions_plan_id_version'))
    )
    op.create_table('subscriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('starts_on', sa.String(length=10), nullable=False),
    sa.Column('ends_on', sa.String(length=10), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_subscriptions_customer_id_customers')),
    sa.ForeignKeyConstraint(['plan_id'], ['plans.id'], name=op.f('fk_subscriptions_plan_id_plans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscriptions'))
    )
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscriptions_customer_id_starts_on'), ['customer_id', 'starts_on'], unique=False)

    op.create_table('usage_daily',
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('entries', sa.Integer(), nullable=False),
    sa.Column('reversals', sa.Integer(), nullable=False),
    sa.Column('adjusted_quantity', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('adjusted_entries', sa.Integer(), server_default='0', nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_usage_daily_customer_id_customers')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_usage_daily_unit_id_units')),
    sa.PrimaryKeyConstraint('customer_id', 'period', 'unit_id', 'day', name=op.f('pk_usage_daily'))
    )
    op.create_table('usage_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('quantity', sa.BigInteger(), nullable=False),
    sa.Column('occurred_at', sa.BigInteger(), nullable=False),
    sa.Column('recorded_at', sa.BigInteger(), nullable=False),
    sa.Column('billed_at', sa.BigInteger(), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('request_id', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('corrects_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('source', sa.String(length=8), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('charged', sa.BigInteger(), nullable=True),
    sa.CheckConstraint("(kind = 'usage' AND quantity > 0) OR (kind = 'reversal' AND quantity < 0 AND corrects_id IS NOT NULL)", name=op.f('ck_usage_entries_quantity_sign')),
    sa.CheckConstraint("kind IN ('usage', 'reversal')", name=op.f('ck_usage_entries_kind')),
    sa.CheckConstraint("source IN ('api', 'cli', 'import', 'gui')", name=op.f('ck_usage_entries_source')),
    sa.ForeignKeyConstraint(['corrects_id'], ['usage_entries.id'], name=op.f('fk_usage_entries_corrects_id_usage_entries')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_usage_entries_customer_id_customers')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_usage_entries_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_entries')),
    sa.UniqueConstraint('corrects_id', 'kind', name=op.f('uq_usage_entries_corrects_id_kind')),
    sa.UniqueConstraint('customer_id', 'request_id', name=op.f('uq_usage_entries_customer_id_request_id'))
    )
    with op.batch_alter_table('usage_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_usage_entries_customer_id_period_unit_id_billed_at'), ['customer_id', 'period', 'unit_id', 'billed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_usage_entries_occurred_at'), ['occurred_at'], unique=False)

    op.create_table('invoices',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('plan_version_id', sa.Integer(), nullable=True),
    sa.Column('total', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_invoices_customer_id_customers')),
    sa.ForeignKeyConstraint(['plan_version_id'], ['plan_versions.id'], name=op.f('fk_invoices_plan_version_id_plan_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoices')),
    sa.UniqueConstraint('customer_id', 'period', name=op.f('uq_invoices_customer_id_period'))
    )
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invoices_period'), ['period'], unique=False)

    op.create_table('invoice_lines',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('invoice_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('unit_code', sa.String(length=40), nullable=True),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('quantity', sa.String(length=64), nullable=False),
    sa.Column('unit_price', sa.String(length=64), nullable=True),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.CheckConstraint("kind IN ('base_fee', 'usage', 'correction')", name=op.f('ck_invoice_lines_kind')),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_invoice_lines_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_invoice_lines')),
    sa.UniqueConstraint('invoice_id', 'position', name=op.f('uq_invoice_lines_invoice_id_position'))
    )
    op.create_table('settlements',
    sa.Column('invoice_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('stripe_invoice_id', sa.String(length=255), nullable=True),
    sa.Column('stripe_status', sa.String(length=20), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_settlements_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('invoice_id', name=op.f('pk_settlements'))
    )
    op.create_table('settlement_items',
    sa.Column('line_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('stripe_item_id', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['line_id'], ['invoice_lines.id'], name=op.f('fk_settlement_items_line_id_invoice_lines')),
    sa.PrimaryKeyConstraint('line_id', name=op.f('pk_settlement_items'))
    )


def _drop_tables() -> None:
    op.drop_table('settlement_items')
    op.drop_table('settlements')
    op.drop_table('invoice_lines')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invoices_period'))

    op.drop_table('invoices')
    with op.batch_alter_table('usage_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_usage_entries_occurred_at'))
        batch_op.drop_index(batch_op.f('ix_usage_entries_customer_id_period_unit_id_billed_at'))

    op.drop_table('usage_entries')
    op.drop_table('usage_daily')
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscriptions_customer_id_starts_on'))

    op.drop_table('subscriptions')
    op.drop_table('plan_versions')
    op.drop_table('customer_balances')
    op.drop_table('credit_grants')
    op.drop_table('units')
    op.drop_table('plans')
    op.drop_table('ledger_settings')
    op.drop_table('customers')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_subject'))

    op.drop_table('audit_log')


def _refuse_changes_sqlite(table: str) -> None:
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_refuse_{action.lower()} BEFORE {action} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {action} refused'); END"
        )


def _refuse_changes_postgresql(table: str) -> None:
    op.execute(
        f"CREATE TRIGGER {table}_refuse_change BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION meterdesk_refuse_change()"
    )
    op.execute(
        f"CREATE TRIGGER {table}_refuse_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION meterdesk_refuse_change()"
    )


def upgrade() -> None:
    _create_tables()
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            """
            CREATE FUNCTION meterdesk_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
                    USING ERRCODE = 'restrict_violation';
            END
            $$
            """
        )
    for table in APPEND_ONLY_TABLES:
        if dialect == "postgresql":
            _refuse_changes_postgresql(table)
        else:
            _refuse_changes_sqlite(table)
    settings = sa.table("ledger_settings", sa.column("key", sa.String), sa.column("value", sa.Text))
    op.bulk_insert(
        settings,
        [
            {"key": "ledger_id", "value": str(uuid.uuid4())},
            # The billing time zone is chosen when the ledger is created; periods depend on it.
            {"key": "billing_timezone", "value": os.environ.get("METERDESK_TIMEZONE", "UTC")},
        ],
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in APPEND_ONLY_TABLES:
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_change ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_truncate ON {table}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_delete")
    _drop_tables()
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS meterdesk_refuse_change()")
