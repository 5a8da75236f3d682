"""The fast lane of `meterdesk usage import`, reading: clean CSV batches checked column by column.

Almost every line of a usage file a product's servers write looks the same: a known customer and unit, a
plain amount, a request id, a UTC timestamp to the second. The general import path (services/imports.py)
reads such a line through a dozen Python calls and builds an object for it; at a million lines that is
most of an import's time. Here a batch of lines is checked a column at a time instead — each check one
call into C over the whole column (a regular expression over the joined timestamps, `str.isprintable`
over the joined request ids, dictionary lookups through `map`) — and handed to the column writer
(store/column_writer.py) as plain lists.

The fast lane only ever takes a batch it can prove clean; it hands anything else to the general path,
which stays the authority for every rule and every error message: a batch with a quote character, a blank
or short line, an unknown customer or unit, an amount or a timestamp of any other shape, a request id or
note that is not plainly valid.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from itertools import repeat
from operator import floordiv

from meterdesk.domain.units import CORRECTION_PREFIX, MAX_REQUEST_ID_LENGTH, PLAIN_AMOUNT_PATTERN, plain_quantity

from meterdesk.store.column_writer import ColumnBatch

FAST_COLUMNS = ("customer", "unit", "amount", "request_id", "occurred_at")


# A whole column of UTC timestamps to the second, one per line: the shape the general parser's fast path
# (imports._UTC_SECOND) takes; the dates themselves are then checked by datetime.fromisoformat.
_UTC_COLUMN = re.compile(r"(?:\d{4}-\d\d-\d\dT(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\dZ\n)*", re.ASCII)


# A whole column of plain amounts: the amount parser's own plain shape (ASCII digits only), one per line.
_AMOUNT_COLUMN = re.compile(f"(?:{PLAIN_AMOUNT_PATTERN}\n)*")


_SCALE = [10**places for places in range(7)]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = datetime.resolution


class ColumnReader:
    """Checks batches of parsed CSV rows column by column against the ledger's customers and units."""

    def __init__(self, importer, width: int, max_amount_scaled: list[int], future_limit) -> None:
        self.importer = importer  # imports._Importer: its customer and unit lookups
        self.width = width
        self.max_scaled = max_amount_scaled
        self.future_limit = future_limit  # now -> the latest acceptable instant (microseconds)
        self.customer_ids: dict[str, int] = {}
        self.unit_ids: dict[str, int] = {}
        self.unit_decimals: dict[str, int] = {}
        self.amounts: dict[tuple[str, int], int] = {}

    def check(self, lines: list[str], first_line: int, last_line: int, bytes_read: int, now: int) -> ColumnBatch | None:
        """The batch as columns, or None when any line needs the general path."""
        columns = self.columns(lines)
        if columns is None:
            return None
        customer_texts, unit_texts, amount_texts, request_ids, times = columns[:5]
        customer_ids = self._lookup(customer_texts, self.customer_ids, self._load_customers)
        unit_ids = self._lookup(unit_texts, self.unit_ids, self._load_units)
        if customer_ids is None or unit_ids is None:
            return None
        quantities = self._amounts(amount_texts, unit_texts)
        if quantities is None or not self._plain_request_ids(request_ids):
            return None
        occurred = self._times(times, now)
        if occurred is None:
            return None
        starts = self.importer.starts  # filled by its customer lookups
        if min(occurred) < max(starts.get(customer_id, 0) for customer_id in set(customer_ids)):
            return None  # a line may lie before its customer's subscription start: the general path says
        if self.width == 6:
            note_column = columns[5]
            if any(note_column):
                return None  # notes are rare: the general path validates them
        return ColumnBatch(first_line, last_line, bytes_read, customer_ids, unit_ids, quantities, occurred,
                           request_ids)

    def columns(self, lines: list[str]) -> list[list[str]] | None:
        """The fields of lines that are each one CSV row of `width` fields without quotes, column by column;
        None for anything else (quotes, blank or short lines, odd line breaks)."""
        n, width = len(lines), self.width
        if not n or any(map(str.__contains__, lines, repeat('"', n))):
            return None
        if set(map(str.count, lines, repeat(",", n))) != {width - 1}:
            return None
        stripped = list(map(str.rstrip, lines, repeat("\r\n", n)))
        if any(map(str.__contains__, stripped, repeat("\r", n))) or any(map(str.__contains__, stripped, repeat("\n", n))):
            return None  # a line break inside a line: the csv module decides what it means
        fields = ",".join(stripped).split(",")
        return [fields[column::width] for column in range(width)]

    # -- columns ------------------------------------------------------------------------------------
    def _lookup(self, texts, known: dict, load) -> list[int] | None:
        missing = set(texts).difference(known)
        if missing:
            load(missing)
            if not missing.issubset(known):
                return None  # unknown (or padded with spaces): the general path says which
        return list(map(known.__getitem__, texts))

    def _load_customers(self, external_ids: set[str]) -> None:
        importer = self.importer
        importer._load_customers(external_ids)
        for external_id in external_ids:
            customer = importer.customers.get(external_id)
            if customer is not None:
                self.customer_ids[external_id] = customer.id

    def _load_units(self, codes: set[str]) -> None:
        importer = self.importer
        importer._load_units(codes)
        for code in codes:
            unit = importer.units.get(code)
            if unit is not None:
                self.unit_ids[code] = unit.id
                self.unit_decimals[code] = unit.unit.decimals

    def _amounts(self, texts, unit_texts) -> list[int] | None:
        if not _AMOUNT_COLUMN.fullmatch("\n".join(texts) + "\n"):
            return None
        decimals = list(map(self.unit_decimals.__getitem__, unit_texts))
        if not any(decimals) and not any(map(str.__contains__, texts, repeat(".", len(texts)))):
            found = list(map(int, texts))  # whole amounts of whole units: the common case
        else:
            amount = self._amount
            found = [int(text) * _SCALE[places] if "." not in text else amount(text, places) for text, places in zip(texts, decimals)]
            if None in found:
                return None
        if min(found) < 1:
            return None
        if max(found) > self.max_scaled[0] and any(map(int.__gt__, found, map(self.max_scaled.__getitem__, decimals))):
            return None
        return found

    def _amount(self, text: str, decimals: int) -> int | None:
        """An amount with a fractional part, scaled by `decimals`: the amount parser's reading
        (domain.units.plain_quantity), remembered; None when that reading declines it."""
        key = (text, decimals)
        found = self.amounts.get(key)
        if found is None:
            found = plain_quantity(text, decimals)
            if found is not None and len(self.amounts) < 1 << 16:
                self.amounts[key] = found
        return found

    @staticmethod
    def _plain_request_ids(request_ids) -> bool:
        lengths = list(map(len, request_ids))
        if min(lengths) < 1 or max(lengths) > MAX_REQUEST_ID_LENGTH:
            return False
        joined = ",".join(request_ids)  # the ids hold no commas: the line was split at them
        if not joined.isprintable():  # also: no line breaks hidden in one
            return False
        # Printable whitespace is a space: none may begin or end an id (SPEC 2 "Ids"). Nor may an id take a
        # correction's request id (units.CORRECTION_PREFIX). The general path words either error.
        if joined[0] == " " or joined[-1] == " " or " ," in joined or ", " in joined:
            return False
        return CORRECTION_PREFIX not in joined

    def _times(self, texts, now: int) -> list[int] | None:
        joined = "\n".join(texts) + "\n"
        if not _UTC_COLUMN.fullmatch(joined):
            return None
        try:
            instants = list(map(datetime.fromisoformat, texts))
        except ValueError:
            return None  # a day or month that does not exist: the general parser words it
        micros = list(map(floordiv, map(_EPOCH.__rsub__, instants), repeat(_MICROSECOND, len(instants))))
        if max(micros) > self.future_limit(now):
            return None
        return micros
