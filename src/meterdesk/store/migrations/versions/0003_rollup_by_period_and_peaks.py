"""Cheaper writes and period-wide reads: a partial unique index for corrections, the daily rollup keyed by
period first, and the peak of `max` units kept in the rollup.

- `usage_entries`: one reversal and one replacement per original stays unique, but only entries that
  correct something are indexed for it (`WHERE corrects_id IS NOT NULL`): every plain usage entry used
  to add a (NULL, 'usage') key to that index, one more B-tree insert per entry for nothing.
- `usage_daily`: the primary key becomes (period, customer_id, unit_id, day), so a period's rollup for all
  customers (closing a period, the customers overview, the period report) is one contiguous range, and one
  customer's period still is; on SQLite the table is WITHOUT ROWID, clustered on that key. A small index
  on (customer_id, period) keeps "which periods has this customer used" cheap.
- `usage_daily.peak`: for `max` units, the largest usage entry of the day that still counts (reversed
  originals left out); the period's quantity of a `max` unit is then max(peak) over its days, read from the
  rollup like `sum` and `count` instead of from the ledger rows. 0 for other units.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ENTRY_COLUMNS = (
    "id, customer_id, unit_id, quantity, occurred_at, recorded_at, billed_at, period, late, request_id, kind, "
    "corrects_id, source, actor, note, charged"
)
DAILY_COLUMNS = "customer_id, period, unit_id, day, quantity, entries, reversals, adjusted_quantity, adjusted_entries"
CORRECTIONS_WHERE = "corrects_id IS NOT NULL"


def _entries_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("occurred_at", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.Column("billed_at", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("request_id", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("corrects_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("charged", sa.BigInteger(), nullable=True),
        sa.CheckConstraint(
            "(kind = 'usage' AND quantity > 0) OR (kind = 'reversal' AND quantity < 0 AND corrects_id IS NOT NULL)",
            name=op.f("ck_usage_entries_quantity_sign"),
        ),
        sa.CheckConstraint("kind IN ('usage', 'reversal')", name=op.f("ck_usage_entries_kind")),
        sa.CheckConstraint("source IN ('api', 'cli', 'import', 'gui')", name=op.f("ck_usage_entries_source")),
        sa.ForeignKeyConstraint(["corrects_id"], ["usage_entries.id"], name=op.f("fk_usage_entries_corrects_id_usage_entries")),
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_usage_entries_customer_id_customers")),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_usage_entries_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_entries")),
        sa.UniqueConstraint("customer_id", "request_id", name=op.f("uq_usage_entries_customer_id_request_id")),
    )


def _daily_table(name: str, key: tuple[str, ...], *, peak: bool) -> None:
    columns = [
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("reversals", sa.Integer(), nullable=False),
        sa.Column("adjusted_quantity", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("adjusted_entries", sa.Integer(), server_default="0", nullable=False),
    ]
    if peak:
        columns.append(sa.Column("peak", sa.BigInteger(), server_default="0", nullable=False))
    op.create_table(
        name,
        *columns,
        sa.ForeignKeyConstraint(["customer_id"], ["customers.id"], name=op.f("fk_usage_daily_customer_id_customers")),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_usage_daily_unit_id_units")),
        sa.PrimaryKeyConstraint(*key, name=op.f("pk_usage_daily")),
        sqlite_with_rowid=not peak,
    )


def _entries_triggers() -> None:
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER usage_entries_refuse_{action.lower()} BEFORE {action} ON usage_entries "
            f"BEGIN SELECT RAISE(ABORT, 'usage_entries is append-only: {action} refused'); END"
        )


def _entries_indexes(*, partial: bool) -> None:
    op.create_index("ix_usage_entries_customer_id_period_unit_id_billed_at", "usage_entries",
                    ["customer_id", "period", "unit_id", "billed_at"])
    op.create_index("ix_usage_entries_occurred_at", "usage_entries", ["occurred_at"])
    if partial:
        op.create_index("uq_usage_entries_corrects_id_kind", "usage_entries", ["corrects_id", "kind"], unique=True,
                        sqlite_where=sa.text(CORRECTIONS_WHERE), postgresql_where=sa.text(CORRECTIONS_WHERE))


def _rebuild_sqlite_entries(*, partial: bool) -> None:
    """SQLite cannot drop a table constraint: the table is rebuilt. The old one is renamed first, so that
    nothing ever references a table that is gone (foreign keys stay on inside the migration)."""
    op.execute("DROP TRIGGER IF EXISTS usage_entries_refuse_update")
    op.execute("DROP TRIGGER IF EXISTS usage_entries_refuse_delete")
    op.execute("DROP INDEX IF EXISTS ix_usage_entries_customer_id_period_unit_id_billed_at")
    op.execute("DROP INDEX IF EXISTS ix_usage_entries_occurred_at")
    op.execute("DROP INDEX IF EXISTS uq_usage_entries_corrects_id_kind")
    op.execute("ALTER TABLE usage_entries RENAME TO usage_entries_old")
    _entries_table("usage_entries")
    if not partial:
        op.create_index("uq_usage_entries_corrects_id_kind", "usage_entries", ["corrects_id", "kind"], unique=True)
    op.execute(f"INSERT INTO usage_entries ({ENTRY_COLUMNS}) SELECT {ENTRY_COLUMNS} FROM usage_entries_old ORDER BY id")
    op.execute("DROP TABLE usage_entries_old")
    _entries_indexes(partial=partial)
    _entries_triggers()


def _rebuild_daily(*, peak: bool) -> None:
    key = ("period", "customer_id", "unit_id", "day") if peak else ("customer_id", "period", "unit_id", "day")
    op.execute("DROP INDEX IF EXISTS ix_usage_daily_customer_id_period")
    op.execute("ALTER TABLE usage_daily RENAME TO usage_daily_old")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE usage_daily_old RENAME CONSTRAINT pk_usage_daily TO pk_usage_daily_old")
        op.execute("ALTER TABLE usage_daily_old DROP CONSTRAINT fk_usage_daily_customer_id_customers")
        op.execute("ALTER TABLE usage_daily_old DROP CONSTRAINT fk_usage_daily_unit_id_units")
    _daily_table("usage_daily", key, peak=peak)
    op.execute(f"INSERT INTO usage_daily ({DAILY_COLUMNS}) SELECT {DAILY_COLUMNS} FROM usage_daily_old ORDER BY {', '.join(key)}")
    op.execute("DROP TABLE usage_daily_old")
    if peak:
        op.create_index("ix_usage_daily_customer_id_period", "usage_daily", ["customer_id", "period"])


def _fill_peaks() -> None:
    """The peak of each day of every `max` unit, from the entries that still count."""
    bind = op.get_bind()
    zone = bind.execute(sa.text("SELECT value FROM ledger_settings WHERE key = 'billing_timezone'")).scalar() or "UTC"
    timezone = ZoneInfo(zone)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rows = bind.execute(sa.text(
        "SELECT e.customer_id, e.period, e.unit_id, e.billed_at, e.quantity FROM usage_entries e "
        "JOIN units u ON u.id = e.unit_id "
        "WHERE u.aggregation = 'max' AND e.kind = 'usage' AND NOT EXISTS "
        "(SELECT 1 FROM usage_entries r WHERE r.corrects_id = e.id AND r.kind = 'reversal')"
    ))
    peaks: dict[tuple[int, str, int, str], int] = {}
    for customer_id, period, unit_id, billed_at, quantity in rows:
        day = (epoch + timedelta(microseconds=billed_at)).astimezone(timezone).date().isoformat()
        key = (customer_id, period, unit_id, day)
        peaks[key] = max(peaks.get(key, 0), quantity)
    if peaks:
        bind.execute(
            sa.text("UPDATE usage_daily SET peak = :peak WHERE period = :period AND customer_id = :customer AND unit_id = :unit AND day = :day"),
            [{"peak": q, "customer": c, "period": p, "unit": u, "day": d} for (c, p, u, d), q in peaks.items()],
        )


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_entries(partial=True)
    else:
        op.execute("ALTER TABLE usage_entries DROP CONSTRAINT uq_usage_entries_corrects_id_kind")
        _entries_indexes_partial_only()
    _rebuild_daily(peak=True)
    _fill_peaks()


def _entries_indexes_partial_only() -> None:
    op.create_index("uq_usage_entries_corrects_id_kind", "usage_entries", ["corrects_id", "kind"], unique=True,
                    postgresql_where=sa.text(CORRECTIONS_WHERE))


def downgrade() -> None:
    _rebuild_daily(peak=False)
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_entries(partial=False)
    else:
        op.execute("DROP INDEX uq_usage_entries_corrects_id_kind")
        op.execute("ALTER TABLE usage_entries ADD CONSTRAINT uq_usage_entries_corrects_id_kind UNIQUE (corrects_id, kind)")
