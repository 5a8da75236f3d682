"""Corrections write a linked reversal and replacement, once per entry, and move summaries and balances."""

from __future__ import annotations

from decimal import Decimal

import pytest

from meterdesk.domain.errors import Conflict, InvalidInput, NotFound
from meterdesk.services.billing import close_period, preview_invoice
from meterdesk.services.corrections import correct_entry
from meterdesk.services.credits import grant_credits
from meterdesk.services.entries import list_entries
from meterdesk.services.summary import usage_summary
from meterdesk.services.recording import record_usage
from tests.services.helpers import last_month, last_month_at, seed, this_month


@pytest.fixture
def seeded(ledger):
    seed(ledger)
    return ledger


def test_correction_writes_a_linked_reversal_and_replacement(seeded):
    original = record_usage(seeded, "acme", "api_calls", "25000", "r-1")
    result = correct_entry(seeded, original.entry_id, "20000", "meter double-counted", actor="alice")
    entries = {e.id: e for e in list_entries(seeded)}
    reversal, replacement = entries[result.reversal_id], entries[result.replacement_id]
    assert (reversal.kind, reversal.amount, reversal.corrects, reversal.actor) == ("reversal", Decimal(-25000), original.entry_id, "alice")
    assert (replacement.kind, replacement.amount, replacement.corrects) == ("usage", Decimal(20000), original.entry_id)
    assert reversal.note == replacement.note == "meter double-counted"
    api = next(u for u in usage_summary(seeded, "acme").units if u.unit == "api_calls")
    assert (api.quantity, api.amount, api.entries, api.corrections) == (Decimal(20000), Decimal("10.00"), 1, 1)


def test_correction_to_zero_writes_only_the_reversal(seeded):
    original = record_usage(seeded, "acme", "api_calls", "500", "r-1")
    result = correct_entry(seeded, original.entry_id, "0", "test traffic")
    assert result.replacement_id is None
    assert next(u for u in usage_summary(seeded, "acme").units if u.unit == "api_calls").quantity == 0


def test_an_entry_is_corrected_once_then_its_replacement(seeded):
    original = record_usage(seeded, "acme", "api_calls", "500", "r-1")
    first = correct_entry(seeded, original.entry_id, "400", "first fix")
    with pytest.raises(Conflict, match=f"correct its replacement, entry {first.replacement_id}"):
        correct_entry(seeded, original.entry_id, "300", "second fix")
    with pytest.raises(Conflict, match="reversal"):
        correct_entry(seeded, first.reversal_id, "1", "nonsense")
    second = correct_entry(seeded, first.replacement_id, "300", "second fix")
    assert second.replacement_id
    assert next(u for u in usage_summary(seeded, "acme").units if u.unit == "api_calls").quantity == 300


def test_a_reason_is_required_and_the_amount_validated(seeded):
    original = record_usage(seeded, "acme", "api_calls", "500", "r-1")
    with pytest.raises(InvalidInput, match="reason"):
        correct_entry(seeded, original.entry_id, "400", "  ")
    with pytest.raises(InvalidInput, match="new_amount"):
        correct_entry(seeded, original.entry_id, "-1", "negative")
    with pytest.raises(NotFound):
        correct_entry(seeded, 99999, "1", "no such entry")
    assert len(list_entries(seeded)) == 1


def test_prepaid_corrections_adjust_the_balance(seeded):
    grant_credits(seeded, "bolt", "20", "g")
    original = record_usage(seeded, "bolt", "api_calls", "5000", "b-1")  # 10.00
    correct_entry(seeded, original.entry_id, "2000", "partial outage")  # back to 4.00
    summary = usage_summary(seeded, "bolt")
    assert summary.balance == Decimal("16")
    charged = [e.charged for e in list_entries(seeded)]
    assert sorted(charged) == [Decimal(-10), Decimal(4), Decimal(10)]


def test_correcting_an_entry_of_a_closed_period_lands_in_the_open_one(seeded):
    original = record_usage(seeded, "acme", "api_calls", "30000", "r-1", occurred_at=last_month_at(5))
    close_period(seeded, last_month())
    frozen = preview_invoice(seeded, "acme", last_month())
    result = correct_entry(seeded, original.entry_id, "20000", "late correction")
    assert preview_invoice(seeded, "acme", last_month()) == frozen
    entries = {e.id: e for e in list_entries(seeded)}
    assert entries[result.reversal_id].period == this_month() and entries[result.reversal_id].late
    current = preview_invoice(seeded, "acme", this_month())
    correction = [line for line in current.lines if line.kind == "correction"]
    assert correction and correction[0].quantity == Decimal(-10000)
