"""PostgreSQL: the ledger's entries and rollup check their customer and unit once per statement, not per row.

A foreign key in PostgreSQL is a pair of row-level triggers: every inserted entry runs a query that finds
and share-locks its customer row and another for its unit. On a bulk import (COPY of tens of thousands of
entries) that was more than half of the server's work. The same rule is kept with one statement-level
trigger per table that checks all rows the statement inserted at once (a transition table anti-joined
with customers and units), and customers and units refuse DELETE and TRUNCATE outright — they were
never deleted, and the row locks a foreign key takes only guard against a delete. The reference from a
reversal to the entry it corrects stays a foreign key (corrections are written one at a time).

SQLite keeps its foreign keys (checked per row, cheaply, in process).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

REFERENCES = {  # table: its foreign keys to customers and units
    "usage_entries": ("fk_usage_entries_customer_id_customers", "fk_usage_entries_unit_id_units"),
    "usage_daily": ("fk_usage_daily_customer_id_customers", "fk_usage_daily_unit_id_units"),
}
KEPT = ("customers", "units")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION meterdesk_check_references() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM new_rows n WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = n.customer_id)) THEN
                RAISE foreign_key_violation USING MESSAGE = TG_TABLE_NAME || '.customer_id refers to no customer';
            END IF;
            IF EXISTS (SELECT 1 FROM new_rows n WHERE NOT EXISTS (SELECT 1 FROM units u WHERE u.id = n.unit_id)) THEN
                RAISE foreign_key_violation USING MESSAGE = TG_TABLE_NAME || '.unit_id refers to no unit';
            END IF;
            RETURN NULL;
        END $$
        """
    )
    op.execute(
        """
        CREATE FUNCTION meterdesk_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% rows are never deleted: the ledger refers to them', TG_TABLE_NAME
                USING ERRCODE = 'restrict_violation';
        END $$
        """
    )
    for table in KEPT:
        op.execute(f"CREATE TRIGGER {table}_refuse_delete BEFORE DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION meterdesk_refuse_delete()")
        op.execute(f"CREATE TRIGGER {table}_refuse_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION meterdesk_refuse_delete()")
    for table, keys in REFERENCES.items():
        op.execute(f"ALTER TABLE {table} " + ", ".join(f"DROP CONSTRAINT {key}" for key in keys))
        for event in ("INSERT", "UPDATE"):
            op.execute(
                f"CREATE TRIGGER {table}_references_{event.lower()} AFTER {event} ON {table} "
                "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION meterdesk_check_references()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, keys in REFERENCES.items():
        for event in ("insert", "update"):
            op.execute(f"DROP TRIGGER {table}_references_{event} ON {table}")
        for key in keys:
            target = "customers" if "customer" in key else "units"
            column = "customer_id" if "customer" in key else "unit_id"
            op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {key} FOREIGN KEY ({column}) REFERENCES {target} (id)")
    for table in KEPT:
        op.execute(f"DROP TRIGGER {table}_refuse_delete ON {table}")
        op.execute(f"DROP TRIGGER {table}_refuse_truncate ON {table}")
    op.execute("DROP FUNCTION meterdesk_refuse_delete()")
    op.execute("DROP FUNCTION meterdesk_check_references()")
