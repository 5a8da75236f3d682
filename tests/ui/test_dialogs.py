"""Recording and correcting through the dialogs changes the ledger and the summary exactly as the services do."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

from PySide6.QtCore import QDateTime, QTimeZone

from meterdesk.services.entries import EntryFilter, count_entries, list_entries
from meterdesk.services.summary import usage_summary
from meterdesk.ui.dialogs.correct_entry import CorrectEntryDialog
from meterdesk.ui.dialogs.forms import CustomerDialog, GrantCreditsDialog
from meterdesk.ui.dialogs.record_usage import RecordUsageDialog


def api_calls(summary):
    return next(unit for unit in summary.units if unit.unit == "api_calls")


def test_record_dialog_records_and_the_summary_moves(qtbot, desk, seeded):
    before = api_calls(usage_summary(seeded, "acme"))
    dialog = RecordUsageDialog(desk, customer="acme", unit="api_calls")
    qtbot.addWidget(dialog)
    assert not dialog.ok.isEnabled()  # no amount yet
    dialog.amount.setText("2500")
    dialog.note.setPlainText("phoned in by the customer")
    assert dialog.ok.isEnabled()
    with qtbot.waitSignal(dialog.recorded, timeout=10_000) as recorded:
        dialog.ok.click()
    result = recorded.args[0]
    assert not result.duplicate
    entry = list_entries(seeded, EntryFilter(customer="acme"), limit=1)[0]
    assert (entry.id, entry.amount, entry.source, entry.actor, entry.note) == (result.entry_id, Decimal(2500), "gui", "Dana Tester", "phoned in by the customer")
    assert entry.request_id == dialog.request_id
    after = api_calls(usage_summary(seeded, "acme"))
    assert after.quantity == before.quantity + 2500
    assert "Recorded as entry" in dialog.outcome.text()


def test_double_submitted_record_dialog_records_once(qtbot, desk, seeded):
    entries = count_entries(seeded)
    dialog = RecordUsageDialog(desk, customer="acme", unit="api_calls")
    qtbot.addWidget(dialog)
    dialog.amount.setText("7")
    results = []
    dialog.recorded.connect(results.append)
    dialog.submit()
    dialog.submit()  # a double click while the first is in flight
    dialog.ok.click()
    qtbot.waitUntil(lambda: bool(results), timeout=10_000)
    qtbot.wait(300)
    assert count_entries(seeded) == entries + 1
    # A retry of the same dialog's request (as after a lost connection) is a duplicate, never a second entry.
    from meterdesk.services.recording import record_usage

    again = record_usage(seeded, "acme", "api_calls", "7", dialog.request_id, source="gui")
    assert again.duplicate and again.entry_id == results[0].entry_id
    assert count_entries(seeded) == entries + 1


def test_record_dialog_validates_before_enabling_ok(qtbot, desk):
    dialog = RecordUsageDialog(desk, customer="acme", unit="storage_gb")
    qtbot.addWidget(dialog)
    dialog.amount.setText("1.2345")  # storage_gb allows 3 decimals
    assert not dialog.ok.isEnabled()
    assert "3" in dialog.amount_error.text()
    dialog.amount.setText("-4")
    assert not dialog.ok.isEnabled()
    dialog.amount.setText("1.25")
    assert dialog.ok.isEnabled()
    dialog.now.setChecked(False)
    future = datetime.now(timezone.utc) + timedelta(hours=2)
    dialog.occurred.setDateTime(QDateTime.fromSecsSinceEpoch(int(future.timestamp()), QTimeZone.utc()))
    assert not dialog.ok.isEnabled()
    assert "future" in dialog.occurred_error.text()
    dialog.customer.set_customer("nobody")
    assert "Unknown customer" in dialog.customer_error.text()


def test_prepaid_record_shows_charge_and_balance(qtbot, desk, seeded):
    dialog = RecordUsageDialog(desk, customer="bolt", unit="api_calls")
    qtbot.addWidget(dialog)
    dialog.amount.setText("1000")
    with qtbot.waitSignal(dialog.recorded, timeout=10_000) as recorded:
        dialog.ok.click()
    assert recorded.args[0].charged == Decimal("2")
    assert "balance now €17.00" in dialog.outcome.text()


def test_correct_dialog_previews_then_corrects(qtbot, desk, seeded):
    entry = list_entries(seeded, EntryFilter(customer="acme", kind="usage"), limit=1)[0]
    before = api_calls(usage_summary(seeded, "acme"))
    dialog = CorrectEntryDialog(desk, entry)
    qtbot.addWidget(dialog)
    dialog.amount.setText("10")
    qtbot.waitUntil(lambda: dialog.preview is not None, timeout=10_000)
    assert not dialog.ok.isEnabled()  # the reason is required
    dialog.reason.setPlainText("double-counted by the gateway")
    assert dialog.ok.isEnabled()
    preview = dialog.preview
    assert preview.quantity_before == before.quantity
    assert preview.quantity_after == before.quantity - entry.amount + 10
    assert "Quantity" in dialog.preview_box.text()
    with qtbot.waitSignal(dialog.corrected, timeout=10_000) as corrected:
        dialog.ok.click()
    result = corrected.args[0]
    after = api_calls(usage_summary(seeded, "acme"))
    assert after.quantity == preview.quantity_after
    assert after.amount == preview.amount_after
    reversal = list_entries(seeded, EntryFilter(kind="reversal"), limit=1)[0]
    assert (reversal.id, reversal.corrects, reversal.note, reversal.actor) == (result.reversal_id, entry.id, "double-counted by the gateway", "Dana Tester")


def test_correcting_an_already_corrected_entry_is_refused_in_the_preview(qtbot, desk, seeded):
    from meterdesk.services.corrections import correct_entry

    entry = list_entries(seeded, EntryFilter(customer="acme", kind="usage"), limit=1)[0]
    correct_entry(seeded, entry.id, "3", "first fix", source="gui")
    dialog = CorrectEntryDialog(desk, entry)
    qtbot.addWidget(dialog)
    dialog.amount.setText("2")
    dialog.reason.setPlainText("second fix")
    qtbot.waitUntil(lambda: "already corrected" in dialog.preview_box.text(), timeout=10_000)
    assert not dialog.ok.isEnabled()


def test_customer_and_credit_forms(qtbot, desk, seeded):
    dialog = CustomerDialog(desk)
    qtbot.addWidget(dialog)
    dialog.customer_id.setText("zeta")
    dialog.name.setText("")
    assert not dialog.ok.isEnabled()
    dialog.name.setText("Zeta Corp")
    dialog.email.setText("not-an-email")
    assert not dialog.ok.isEnabled()
    dialog.email.setText("billing@zeta.test")
    dialog.prepaid.setChecked(True)
    dialog.plan.setCurrentIndex(dialog.plan.findData("starter"))
    with qtbot.waitSignal(dialog.done, timeout=10_000):
        dialog.ok.click()
    qtbot.waitUntil(lambda: desk.catalog.customer("zeta") is not None, timeout=10_000)
    zeta = desk.catalog.customer("zeta")
    assert zeta.prepaid and zeta.plan == "starter"
    grant = GrantCreditsDialog(desk, zeta)
    qtbot.addWidget(grant)
    grant.amount.setText("12.50")
    with qtbot.waitSignal(grant.done, timeout=10_000) as done:
        grant.ok.click()
    assert done.args[0].balance == Decimal("12.5")
