"""Corrections: a linked reversal of the original and, unless the new amount is 0, a linked replacement."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from meterdesk.domain.errors import Conflict, InvalidInput, NotFound
from meterdesk.domain.units import CORRECTION_PREFIX, validate_correction_amount
from meterdesk.services.audit import record_audit
from meterdesk.services.context import default_actor, now_us
from meterdesk.services.recording import validate_note, validate_source
from meterdesk.store.writer import EntryWriter, NewEntry
from meterdesk.store.codec import decode_quantity, encode_quantity
from meterdesk.store.engine import Ledger
from meterdesk.store.queries import customer_by_id, unit_by_id
from meterdesk.store.schema import usage_entries


@dataclass(frozen=True, slots=True)
class CorrectionResult:
    reversal_id: int
    replacement_id: int | None

    def to_json(self) -> dict:
        return {"reversal_id": self.reversal_id, "replacement_id": self.replacement_id}


def _free_request_id(writer: EntryWriter, customer_id: int, wanted: str) -> str:
    """The request id of a correction's entry: `wanted`, a name in the namespace no usage request id may
    take (units.CORRECTION_PREFIX). A ledger from before that rule may hold usage under it; then the next
    free `wanted:2`, `wanted:3`, ... (the customer is locked: nobody takes one meanwhile)."""
    candidate, n = wanted, 1
    while writer.existing([(customer_id, candidate)]):
        n += 1
        candidate = f"{wanted}:{n}"
    return candidate


def parse_entry_id(value) -> int:
    try:
        entry_id = int(str(value).strip())
    except ValueError:
        raise InvalidInput("entry_id", f"{value!r} is not an entry id (a whole number)") from None
    if entry_id <= 0:
        raise InvalidInput("entry_id", "must be a positive whole number")
    return entry_id


def correct_entry(
    ledger: Ledger,
    entry_id,
    new_amount,
    reason: str,
    *,
    source: str = "cli",
    actor: str | None = None,
) -> CorrectionResult:
    """Correct an entry to `new_amount` (possibly 0), with a required reason. Once per entry, ever."""
    source = validate_source(source)
    actor = actor or default_actor(source)
    entry_id = parse_entry_id(entry_id)
    reason = validate_note((reason or "").strip())
    if not reason:
        raise InvalidInput("reason", "is required: say why the entry is corrected")
    with ledger.write() as connection:
        original = connection.execute(select(usage_entries).where(usage_entries.c.id == entry_id)).first()
        if original is None:
            raise NotFound(f"entry_id: no ledger entry {entry_id}")
        customer = customer_by_id(connection, original.customer_id, lock=True)
        if original.kind == "reversal":
            raise Conflict(f"entry_id: entry {entry_id} is a reversal; correct the entry it reverses instead")
        done = connection.execute(
            select(usage_entries.c.id, usage_entries.c.kind).where(usage_entries.c.corrects_id == entry_id)
        ).all()
        if done:
            replacement = next((row.id for row in done if row.kind == "usage"), None)
            hint = f"correct its replacement, entry {replacement}" if replacement else "it was corrected to 0"
            raise Conflict(f"entry_id: entry {entry_id} was already corrected; {hint}")
        unit = unit_by_id(connection, original.unit_id, ledger.cache)
        amount = validate_correction_amount(unit.unit, new_amount)
        writer = EntryWriter(connection, ledger, now_us(), source, actor)
        old_amount = decode_quantity(original.quantity, unit.unit.decimals)
        reversal = NewEntry(
            customer, unit, old_amount, original.quantity, original.occurred_at,
            _free_request_id(writer, customer.id, f"{CORRECTION_PREFIX}{entry_id}:reversal"), reason,
            kind="reversal", corrects_id=entry_id,
        )
        replacement = None
        if amount:
            replacement = NewEntry(
                customer, unit, amount, encode_quantity(amount, unit.unit.decimals), original.occurred_at,
                _free_request_id(writer, customer.id, f"{CORRECTION_PREFIX}{entry_id}:replacement"), reason,
                corrects_id=entry_id,
            )
        writer.check_range([reversal] if replacement is None else [reversal, replacement])
        reversal_id = writer.insert_one(writer.prepare(reversal))
        replacement_id = None
        if replacement is not None:
            replacement_id = writer.insert_one(writer.prepare(replacement))
        if reversal_id is None or (amount and replacement_id is None):
            raise Conflict(f"entry_id: entry {entry_id} was corrected concurrently; reload and correct its replacement")
        writer.flush()
        record_audit(
            connection, actor, "usage.correct", f"entry:{entry_id}",
            customer=customer.external_id, old_amount=str(old_amount), new_amount=str(amount), reason=reason,
            reversal_id=reversal_id, replacement_id=replacement_id,
        )
        return CorrectionResult(reversal_id, replacement_id)
