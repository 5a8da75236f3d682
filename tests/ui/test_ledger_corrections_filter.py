"""The ledger page's "Show entry #n and its corrections": the entry itself, its reversal and its replacement."""

from __future__ import annotations

from meterdesk.services.corrections import correct_entry
from meterdesk.services.entries import EntryFilter, list_entries

WAIT_MS = 15_000


def shown_ids(view) -> set[int]:
    return {view.model.entry_at(row).id for row in range(view.model.rowCount())}


def test_show_an_entry_and_its_corrections(qtbot, window, seeded):
    original = list_entries(seeded, EntryFilter(customer="acme"), limit=3)[2]
    result = correct_entry(seeded, original.id, "7", "meter misread", actor="tests")
    correct_entry(seeded, list_entries(seeded, EntryFilter(customer="acme"), limit=8)[7].id, "1", "another", actor="tests")
    window.nav.setCurrentRow(2)
    view = window.ledger_view
    view.text.setText("seed-")  # an earlier search is replaced, not combined

    view.show_chain(original.id)

    expected = {original.id, result.reversal_id, result.replacement_id}
    qtbot.waitUntil(lambda: not view.model.loading and shown_ids(view) == expected, timeout=WAIT_MS)
    assert view.model.rowCount() == 3
    assert view.chain_button.isVisible() and f"#{original.id}" in view.chain_button.text()

    view.chain_button.click()  # the filter is shown, and removed in one click
    qtbot.waitUntil(lambda: view.model.rowCount() > 3, timeout=WAIT_MS)
    assert not view.chain_button.isVisible()
    assert view.current_filter() == EntryFilter()
