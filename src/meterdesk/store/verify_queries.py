"""The reads `meterdesk verify` recomputes the derived figures from: grouped SQL over the append-only entries,
the derived tables as they are stored, and the invoices with their lines and settlements. Both dialects.

Every query here is a whole-table pass grouped in the database (no per-entry Python), so verifying a ledger
of a million entries takes seconds. They run in one `snapshot` transaction, so that writers working
meanwhile cannot make the recomputed figures and the stored ones disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Connection

from meterdesk.store.queries import fetch

DAY_US = 86_400_000_000


def snapshot(connection: Connection) -> None:
    """Make `connection`'s read transaction see one snapshot for all its statements. PostgreSQL reads at
    READ COMMITTED (a new snapshot per statement) unless told otherwise before the first statement; SQLite's
    read transaction already holds one snapshot of its WAL from its first read to its end."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


def local_day_expression(column: str, segments: Sequence[tuple[int | None, int]]) -> str:
    """SQL for the local day number (days since 1970-01-01 in the billing time zone) of a microsecond
    timestamp `column`. `segments` are (until, offset): the zone's UTC offset in microseconds up to `until`
    (exclusive; None for the last, open-ended one), in time order, as `time_segments` gives them. Integer
    arithmetic only, the same on both databases; timestamps are after 1970, so division truncates as floor."""
    if len(segments) == 1:
        offset = segments[0][1]
        return f"({column} + {offset}) / {DAY_US}" if offset else f"{column} / {DAY_US}"
    branches = " ".join(f"WHEN {column} < {until} THEN {offset}" for until, offset in segments[:-1])
    return f"({column} + CASE {branches} ELSE {segments[-1][1]} END) / {DAY_US}"


def occurred_range(connection: Connection) -> tuple[int | None, int | None]:
    """The earliest and latest occurred_at of any entry (through its index: two lookups, no scan)."""
    row = fetch(connection, "SELECT min(occurred_at), max(occurred_at) FROM usage_entries")[0]
    return row[0], row[1]


def entry_days(connection: Connection, segments: Sequence[tuple[int | None, int]]) -> list[tuple]:
    """The usage_daily rollup as the entries give it, plus what the other checks need, per customer,
    billed period, unit and local day of billed_at (`segments`: see local_day_expression):
    (customer id, period, unit id, day number, quantity, entries, reversals, adjusted quantity, adjusted
    entries, latest recorded_at, sum of charged, entries with a charge, non-late entries billed at another
    instant than they occurred, late entries, the earliest and the latest occurred_at of the late ones).
    SQLite walks its (customer, period, unit, billed_at) index for this, in group order: no sort."""
    day = local_day_expression("billed_at", segments)
    return fetch(
        connection,
        f"""SELECT customer_id, period, unit_id, {day},
               sum(quantity),
               sum(CASE WHEN kind = 'usage' THEN 1 ELSE -1 END),
               sum(CASE WHEN kind = 'reversal' THEN 1 ELSE 0 END),
               sum(CASE WHEN late OR corrects_id IS NOT NULL THEN quantity ELSE 0 END),
               sum(CASE WHEN late OR corrects_id IS NOT NULL THEN (CASE WHEN kind = 'usage' THEN 1 ELSE -1 END) ELSE 0 END),
               max(recorded_at),
               coalesce(sum(charged), 0),
               count(charged),
               sum(CASE WHEN NOT late AND billed_at <> occurred_at THEN 1 ELSE 0 END),
               sum(CASE WHEN late THEN 1 ELSE 0 END),
               min(CASE WHEN late THEN occurred_at END),
               max(CASE WHEN late THEN occurred_at END)
        FROM usage_entries
        GROUP BY 1, 2, 3, 4""",
    )


def peak_days(connection: Connection, unit_ids: Sequence[int], segments: Sequence[tuple[int | None, int]]) -> list[tuple]:
    """For `max` units, per customer, billed period, unit and local day: (customer id, period, unit id, day
    number, the largest usage entry that no reversal took out, the largest that no reversal billed in the
    same period took out). The second is the day's peak as it stood when its period was closed: a reversal
    billed in a later period was written after the close."""
    if not unit_ids:
        return []
    marks = ", ".join("?" * len(unit_ids))
    day = local_day_expression("e.billed_at", segments)
    return fetch(
        connection,
        f"""SELECT e.customer_id, e.period, e.unit_id, {day},
               max(CASE WHEN r.id IS NULL THEN e.quantity ELSE 0 END),
               max(CASE WHEN r.id IS NULL OR r.period <> e.period THEN e.quantity ELSE 0 END)
        FROM usage_entries e
        LEFT JOIN usage_entries r ON r.corrects_id = e.id AND r.kind = 'reversal'
        WHERE e.kind = 'usage' AND e.unit_id IN ({marks})
        GROUP BY 1, 2, 3, 4""",
        tuple(unit_ids),
    )


def correction_problems(connection: Connection) -> tuple[int, list[tuple]]:
    """(entries that correct another, the ones whose link is wrong): a reversal must negate a usage entry
    of the same customer, unit and occurred_at; a replacement must replace such an entry that was reversed.
    Rows: (entry id, kind, corrects id, customer, unit, quantity, occurred_at, and the same five of the
    corrected entry, or NULLs when it does not exist; whether the corrected entry has a reversal)."""
    checked = fetch(connection, "SELECT count(*) FROM usage_entries WHERE corrects_id IS NOT NULL")[0][0]
    rows = fetch(
        connection,
        """SELECT c.id, c.kind, c.corrects_id, c.customer_id, c.unit_id, c.quantity, c.occurred_at,
                  o.kind, o.customer_id, o.unit_id, o.quantity, o.occurred_at,
                  EXISTS (SELECT 1 FROM usage_entries x WHERE x.corrects_id = c.corrects_id AND x.kind = 'reversal')
           FROM usage_entries c LEFT JOIN usage_entries o ON o.id = c.corrects_id
           WHERE c.corrects_id IS NOT NULL AND (
               o.id IS NULL OR o.kind <> 'usage' OR o.customer_id <> c.customer_id OR o.unit_id <> c.unit_id
               OR o.occurred_at <> c.occurred_at
               OR (c.kind = 'reversal' AND c.quantity <> -o.quantity)
               OR (c.kind = 'usage' AND NOT EXISTS (
                   SELECT 1 FROM usage_entries x WHERE x.corrects_id = c.corrects_id AND x.kind = 'reversal')))
           ORDER BY c.id""",
    )
    return int(checked), rows


def stored_rollup(connection: Connection) -> list[tuple]:
    """usage_daily as stored: (customer id, period, unit id, day, quantity, entries, reversals, adjusted
    quantity, adjusted entries, peak)."""
    return fetch(
        connection,
        "SELECT customer_id, period, unit_id, day, quantity, entries, reversals, adjusted_quantity, adjusted_entries, peak "
        "FROM usage_daily",
    )


def customers_and_balances(connection: Connection) -> list[tuple]:
    """Every customer with its stored balance row (NULLs without one) and its credit grants:
    (id, external id, mode, currency, granted, charged, balance, sum of grants, grants)."""
    return fetch(
        connection,
        """SELECT c.id, c.external_id, c.mode, c.currency, b.granted, b.charged, b.balance,
                  coalesce(g.amount, 0), coalesce(g.grants, 0)
           FROM customers c
           LEFT JOIN customer_balances b ON b.customer_id = c.id
           LEFT JOIN (SELECT customer_id, sum(amount) AS amount, count(*) AS grants FROM credit_grants GROUP BY customer_id) g
                  ON g.customer_id = c.id
           ORDER BY c.external_id""",
    )


def orphan_balances(connection: Connection) -> list[tuple]:
    """Balance rows without a customer (customer id)."""
    return fetch(
        connection,
        "SELECT b.customer_id FROM customer_balances b LEFT JOIN customers c ON c.id = b.customer_id WHERE c.id IS NULL",
    )


def plan_version_rows(connection: Connection) -> list[tuple]:
    """(id, plan id, version, effective from) of every plan version: queries.plan_versions_in_force's input."""
    return fetch(connection, "SELECT id, plan_id, version, effective_from FROM plan_versions")


def invoices_with_settlements(connection: Connection) -> list[tuple]:
    """Every invoice with its settlement row (NULLs without one) and how many of its lines have a Stripe
    item recorded: (id, customer id, period, currency, plan version id, total, created_at, settlement state,
    stripe invoice id, stripe status, lines, lines with an item, customer's stripe customer id)."""
    return fetch(
        connection,
        """SELECT i.id, i.customer_id, i.period, i.currency, i.plan_version_id, i.total, i.created_at,
                  s.state, s.stripe_invoice_id, s.stripe_status,
                  coalesce(l.lines, 0), coalesce(l.items, 0), c.stripe_customer_id
           FROM invoices i
           JOIN customers c ON c.id = i.customer_id
           LEFT JOIN settlements s ON s.invoice_id = i.id
           LEFT JOIN (SELECT l.invoice_id, count(*) AS lines, count(si.line_id) AS items
                      FROM invoice_lines l LEFT JOIN settlement_items si ON si.line_id = l.id
                      GROUP BY l.invoice_id) l ON l.invoice_id = i.id
           ORDER BY i.period, i.customer_id""",
    )


def all_invoice_lines(connection: Connection) -> list[tuple]:
    """(invoice id, position, kind, unit code, quantity text, amount) of every invoice line, in order."""
    return fetch(
        connection,
        "SELECT invoice_id, position, kind, unit_code, quantity, amount FROM invoice_lines ORDER BY invoice_id, position",
    )


def orphan_settlements(connection: Connection) -> list[tuple]:
    """Settlement rows without an invoice (invoice id)."""
    return fetch(
        connection,
        "SELECT s.invoice_id FROM settlements s LEFT JOIN invoices i ON i.id = s.invoice_id WHERE i.id IS NULL",
    )


def usage_request_ids(connection: Connection) -> list[tuple[str, str]]:
    """(customer external id, request id) of every usage entry that is not part of a correction."""
    return fetch(
        connection,
        "SELECT c.external_id, e.request_id FROM usage_entries e JOIN customers c ON c.id = e.customer_id "
        "WHERE e.corrects_id IS NULL",
    )


def grant_request_ids(connection: Connection) -> list[tuple[str, str]]:
    """(customer external id, request id) of every credit grant."""
    return fetch(
        connection, "SELECT c.external_id, g.request_id FROM credit_grants g JOIN customers c ON c.id = g.customer_id"
    )


__all__ = [
    "DAY_US",
    "all_invoice_lines",
    "correction_problems",
    "customers_and_balances",
    "entry_days",
    "grant_request_ids",
    "invoices_with_settlements",
    "local_day_expression",
    "orphan_balances",
    "orphan_settlements",
    "peak_days",
    "plan_version_rows",
    "snapshot",
    "stored_rollup",
    "usage_request_ids",
    "occurred_range",
]
