"""Cheaper checks on every ledger entry: `kind` and `source` compared with OR instead of IN (...).

SQLite evaluates a CHECK with a constant `IN (...)` list of three or more values by building an ephemeral
table, and builds it again every time a prepared INSERT runs: on a bulk import that was about half of the
cost of inserting an entry. The same conditions written with `=` and `OR` cost next to nothing. The rule
stays the same; every stored row already satisfies it.

On SQLite the table's definition is rewritten in place (the documented procedure for changing CHECK
constraints that all rows satisfy: `PRAGMA writable_schema`, then a new schema version), so a ledger of
millions of entries is migrated instantly instead of copied. PostgreSQL has no such cost; its constraints
are replaced too so both databases keep one schema.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

CHECKS = {
    "ck_usage_entries_kind": ("kind IN ('usage', 'reversal')", "kind = 'usage' OR kind = 'reversal'"),
    "ck_usage_entries_source": (
        "source IN ('api', 'cli', 'import', 'gui')",
        "source = 'api' OR source = 'cli' OR source = 'import' OR source = 'gui'",
    ),
}


def upgrade() -> None:
    _replace(old=0, new=1)


def downgrade() -> None:
    _replace(old=1, new=0)


def _replace(old: int, new: int) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        for name, texts in CHECKS.items():
            op.execute(f"ALTER TABLE usage_entries DROP CONSTRAINT {name}, ADD CONSTRAINT {name} CHECK ({texts[new]})")
        return
    sql = bind.execute(text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'usage_entries'")).scalar_one()
    for texts in CHECKS.values():
        if texts[old] not in sql:
            raise RuntimeError(f"usage_entries has no CHECK ({texts[old]}) to replace; its schema is not the one expected")
        sql = sql.replace(texts[old], texts[new])
    version = bind.execute(text("PRAGMA schema_version")).scalar_one()
    bind.execute(text("PRAGMA writable_schema = ON"))
    try:
        bind.execute(text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'usage_entries'"), {"sql": sql})
        bind.execute(text(f"PRAGMA schema_version = {int(version) + 1}"))
    finally:
        bind.execute(text("PRAGMA writable_schema = OFF"))
