"""The ledger's tables: one schema, identical on SQLite and PostgreSQL.

Exact numbers everywhere without a decimal column type: SQLite has none, and SQLAlchemy's `Numeric`
goes through a binary float there. Usage quantities are stored as integers scaled by their unit's
`decimals` (10^decimals), money as integer micro-units of the currency (10^-6), timestamps as integer
microseconds since the epoch in UTC. SQL sums over integers are exact on both databases.

Ledger tables (usage entries, credit grants, invoices and their lines, the audit log) refuse UPDATE
and DELETE through triggers created by the migrations; the rollup and balance tables are caches
derived from them inside the same transaction and may change.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

MONEY_SCALE = 10**6
"""Money is stored in micro-units of the currency: exact to 1e-6 as SPEC asks of a prepaid balance."""

# SQLite only auto-increments an INTEGER PRIMARY KEY, so ids are BIGINT elsewhere and INTEGER there.
Id = BigInteger().with_variant(Integer(), "sqlite")

APPEND_ONLY_TABLES = ("usage_entries", "credit_grants", "invoices", "invoice_lines", "audit_log")
SOURCES = ("api", "cli", "import", "gui")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

ledger_settings = Table(
    "ledger_settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

units = Table(
    "units",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(40), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("decimals", SmallInteger, nullable=False),
    Column("aggregation", String(8), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    CheckConstraint("decimals BETWEEN 0 AND 6", name="decimals"),
    CheckConstraint("aggregation IN ('sum', 'count', 'max')", name="aggregation"),
)

plans = Table(
    "plans",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("code", String(40), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
)

plan_versions = Table(
    "plan_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("plan_id", ForeignKey("plans.id"), nullable=False),
    Column("version", Integer, nullable=False),
    # Periods starting at or after this instant are priced by this version (0: from the beginning).
    Column("effective_from", BigInteger, nullable=False),
    Column("definition", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    UniqueConstraint("plan_id", "version"),
    CheckConstraint("version >= 1", name="version"),
)

customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("external_id", String(255), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320)),
    Column("currency", String(3), nullable=False),
    Column("mode", String(8), nullable=False),
    Column("credit_limit", BigInteger, nullable=False, server_default="0"),
    Column("stripe_customer_id", String(255)),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    CheckConstraint("mode IN ('invoice', 'prepaid')", name="mode"),
    CheckConstraint("credit_limit >= 0", name="credit_limit"),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("plan_id", ForeignKey("plans.id"), nullable=False),
    Column("starts_on", String(10), nullable=False),  # ISO date, inclusive
    Column("ends_on", String(10)),  # ISO date, exclusive; NULL while it runs
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    Index(None, "customer_id", "starts_on"),
)

# On PostgreSQL the references of usage_entries and usage_daily to customers and units are checked once
# per statement by a trigger instead of a foreign key's per-row triggers, and customers and units refuse
# DELETE (migration 0005); the ForeignKey declarations below describe the rule, which both databases keep.
usage_entries = Table(
    "usage_entries",
    metadata,
    Column("id", Id, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("unit_id", ForeignKey("units.id"), nullable=False),
    Column("quantity", BigInteger, nullable=False),  # amount * 10^unit.decimals; negative for a reversal
    Column("occurred_at", BigInteger, nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    # Where the entry sits on the period's time axis: occurred_at, or for late entries the moment it
    # was billed, clamped into the period it was billed in (so series always sum to the summary).
    Column("billed_at", BigInteger, nullable=False),
    Column("period", String(7), nullable=False),
    Column("late", Boolean, nullable=False),
    Column("request_id", String(255), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("corrects_id", ForeignKey("usage_entries.id")),
    Column("source", String(8), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("note", Text),
    Column("charged", BigInteger),  # micro-units charged to a prepaid balance; NULL for postpaid
    UniqueConstraint("customer_id", "request_id"),
    # `=` and OR rather than IN (...): SQLite rebuilds an IN list for every row a prepared INSERT writes (0004).
    CheckConstraint("kind = 'usage' OR kind = 'reversal'", name="kind"),
    CheckConstraint(
        "(kind = 'usage' AND quantity > 0) OR (kind = 'reversal' AND quantity < 0 AND corrects_id IS NOT NULL)",
        name="quantity_sign",
    ),
    CheckConstraint("source = 'api' OR source = 'cli' OR source = 'import' OR source = 'gui'", name="source"),
    # SQLite only (migration 0006): PostgreSQL reads a customer's period through the unique index as a
    # bitmap at least as fast, and every imported row landed at a random place in this index. On SQLite it
    # is the dearest part of a bulk import too (2-6 s of a 1M-line import, not "little" as 0006 says), but
    # without it the biggest customer's hourly chart at 10M entries took 1.6 s instead of 0.8 (a rowid
    # lookup per entry through the unique index): kept for the reads.
    Index(None, "customer_id", "period", "unit_id", "billed_at").ddl_if(dialect="sqlite"),
    Index(None, "occurred_at"),
    # One reversal and one replacement per original, ever: a corrected entry cannot be corrected again.
    # Partial: plain usage entries (no corrects_id) would only add NULL keys, one B-tree insert each.
    Index(
        "uq_usage_entries_corrects_id_kind",
        "corrects_id",
        "kind",
        unique=True,
        sqlite_where=text("corrects_id IS NOT NULL"),
        postgresql_where=text("corrects_id IS NOT NULL"),
    ),
)

usage_daily = Table(
    "usage_daily",
    metadata,
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("period", String(7), nullable=False),
    Column("unit_id", ForeignKey("units.id"), nullable=False),
    Column("day", String(10), nullable=False),  # local date of billed_at in the billing time zone
    Column("quantity", BigInteger, nullable=False),  # sum of entry quantities, reversals included
    Column("entries", Integer, nullable=False),  # usage entries minus reversals: the `count` aggregation
    Column("reversals", Integer, nullable=False),
    # The part from late entries and corrections, so an invoice can show them on a line of their own.
    Column("adjusted_quantity", BigInteger, nullable=False, server_default="0"),
    Column("adjusted_entries", Integer, nullable=False, server_default="0"),
    # `max` units: the day's largest usage entry that still counts (reversed originals left out); 0 otherwise.
    Column("peak", BigInteger, nullable=False, server_default="0"),
    # Period first: a period's rollup for every customer is one range, and so is one customer's period.
    PrimaryKeyConstraint("period", "customer_id", "unit_id", "day"),
    Index(None, "customer_id", "period"),
    sqlite_with_rowid=False,  # clustered on the key
)

customer_balances = Table(
    "customer_balances",
    metadata,
    Column("customer_id", ForeignKey("customers.id"), primary_key=True),
    Column("granted", BigInteger, nullable=False),
    Column("charged", BigInteger, nullable=False),
    Column("balance", BigInteger, nullable=False),
    CheckConstraint("balance = granted - charged", name="balance"),
)

credit_grants = Table(
    "credit_grants",
    metadata,
    Column("id", Id, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("request_id", String(255), nullable=False),
    Column("recorded_at", BigInteger, nullable=False),
    Column("source", String(8), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("note", Text),
    # When the credit was granted (a top-up paid last week, recorded today); NULL: when it was recorded.
    Column("granted_at", BigInteger),
    UniqueConstraint("customer_id", "request_id"),
    CheckConstraint("amount > 0", name="amount"),
)

invoices = Table(
    "invoices",
    metadata,
    Column("id", Id, primary_key=True),
    Column("customer_id", ForeignKey("customers.id"), nullable=False),
    Column("period", String(7), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("plan_version_id", ForeignKey("plan_versions.id")),
    Column("total", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    # Closing a period is inserting this row: at most one invoice per customer and period, ever.
    UniqueConstraint("customer_id", "period"),
    Index(None, "period"),
)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("id", Id, primary_key=True),
    Column("invoice_id", ForeignKey("invoices.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("kind", String(12), nullable=False),
    Column("unit_code", String(40)),
    Column("description", Text, nullable=False),
    Column("quantity", String(64), nullable=False),  # exact decimal text; never summed in SQL
    Column("unit_price", String(64)),
    Column("amount", BigInteger, nullable=False),
    Column("detail", Text),  # JSON: per-tier breakdown
    UniqueConstraint("invoice_id", "position"),
    CheckConstraint("kind IN ('base_fee', 'usage', 'correction')", name="kind"),
)

settlements = Table(
    "settlements",
    metadata,
    # Operational state of sending one invoice to Stripe: resumable step by step, not ledger data.
    Column("invoice_id", ForeignKey("invoices.id"), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("stripe_invoice_id", String(255)),
    Column("stripe_status", String(20)),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("updated_at", BigInteger, nullable=False),
)

settlement_items = Table(
    "settlement_items",
    metadata,
    Column("line_id", ForeignKey("invoice_lines.id"), primary_key=True),
    Column("stripe_item_id", String(255), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("detail", Text),
    Index(None, "subject"),
)

api_keys = Table(
    "api_keys",
    metadata,
    # Who may call the usage API (migration 0008). Operational state like `settlements`, not ledger data:
    # revoking sets revoked_at; using the key moves last_used_at. Only the secret's SHA-256 is kept.
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("scopes", String(200), nullable=False),  # space-separated, e.g. "usage:read usage:write"
    Column("key_hash", String(64), nullable=False, unique=True),  # hex SHA-256 of the secret
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("last_used_at", BigInteger),
    Column("revoked_at", BigInteger),
    Column("revoked_by", String(200)),
)
