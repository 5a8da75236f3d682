"""PostgreSQL: usage_entries loses its (customer, period, unit, billed_at) index.

Every entry a bulk import COPYs was inserted into that index at a random place (it leads with the
customer), which was a third of the server's work: COPY of 1M entries into a fresh ledger took 20 s
with it and 14 s without, on the benchmark machine. The queries it served read all of one customer's
entries in a period (hourly series, peaks, custom ranges), which PostgreSQL now finds through the
unique (customer, request id) index as a bitmap: measured on 10M entries, the biggest customer's month
by the hour took 239 ms without the index against 342 ms with it, a median customer's 24 against 27.

SQLite keeps the index: there the same query without it took 857 ms against 469 (its only way in would
be one row lookup per entry of the customer), and an import gains little from its absence.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

INDEX = "ix_usage_entries_customer_id_period_unit_id_billed_at"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_index(INDEX, "usage_entries", ["customer_id", "period", "unit_id", "billed_at"])
