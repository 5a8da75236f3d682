"""The plan editor keeps what was typed until the clerk says otherwise, and speaks in the form's own words."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from PySide6.QtWidgets import QMessageBox

from meterdesk.services.catalog import get_plan
from meterdesk.ui.models.catalog import TierDraft
from meterdesk.ui.views.catalog_pages import PlansPage

WAIT_MS = 15_000
RAW_NAMES = re.compile(r"\b(up_to|unit_price|flat_fee|package_size|package_price|base_fee)\b")


@pytest.fixture
def page(qtbot, desk):
    made = PlansPage(desk)
    qtbot.addWidget(made)
    made.resize(1280, 720)
    made.show()
    qtbot.waitUntil(lambda: made.model.rowCount() == 2, timeout=WAIT_MS)
    return made


@pytest.fixture
def answers(monkeypatch):
    """The "unsaved changes" question, answered by the test: each box asked is kept with its answer."""
    asked: list[tuple[str, str]] = []
    reply = {"button": QMessageBox.StandardButton.Cancel}

    def exec_(box):
        asked.append((box.text(), box.informativeText()))
        return reply["button"]

    monkeypatch.setattr(QMessageBox, "exec", exec_)
    return asked, reply


def current_code(page: PlansPage) -> str | None:
    index = page.table.currentIndex()
    return index.siblingAtColumn(0).data() if index.isValid() else None


def open_plan(qtbot, page: PlansPage, code: str) -> None:
    page.select(code)
    qtbot.waitUntil(lambda: page.editor.original is not None and page.editor.original.plan.code == code, timeout=WAIT_MS)


def test_opening_a_plan_and_moving_between_charges_is_not_an_edit(qtbot, page, answers):
    asked, _reply = answers
    open_plan(qtbot, page, "pro")
    page.editor.charges.setCurrentRow(1)
    page.editor.charges.setCurrentRow(0)
    assert not page.editor.has_unsaved_changes()
    open_plan(qtbot, page, "starter")
    assert asked == []


def test_another_plan_clicked_with_unsaved_edits_discard(qtbot, page, seeded, answers):
    asked, reply = answers
    open_plan(qtbot, page, "pro")
    page.editor.base_fee.setText("109")
    reply["button"] = QMessageBox.StandardButton.Discard

    page.select("starter")

    assert len(asked) == 1 and "pro" in asked[0][0]
    qtbot.waitUntil(lambda: page.editor.original.plan.code == "starter", timeout=WAIT_MS)
    assert page.editor.base_fee.text() == "5.00"
    assert get_plan(seeded, "pro").plan.base_fee == Decimal("49.00")


def test_another_plan_clicked_with_unsaved_edits_cancel(qtbot, page, seeded, answers):
    asked, reply = answers
    open_plan(qtbot, page, "pro")
    page.editor.base_fee.setText("109")
    reply["button"] = QMessageBox.StandardButton.Cancel

    page.select("starter")

    assert len(asked) == 1
    qtbot.waitUntil(lambda: current_code(page) == "pro", timeout=WAIT_MS)  # the list points at the plan edited
    qtbot.wait(50)
    assert page.editor.original.plan.code == "pro" and page.editor.base_fee.text() == "109"
    assert page.editor.has_unsaved_changes()
    assert get_plan(seeded, "pro").plan.base_fee == Decimal("49.00")

    page.new_plan()  # "New plan" asks too
    assert len(asked) == 2
    assert page.editor.original.plan.code == "pro" and page.editor.base_fee.text() == "109"


def test_another_plan_clicked_with_unsaved_edits_save(qtbot, page, seeded, answers):
    asked, reply = answers
    open_plan(qtbot, page, "pro")
    page.editor.base_fee.setText("109")
    reply["button"] = QMessageBox.StandardButton.Save

    page.select("starter")

    assert len(asked) == 1
    qtbot.waitUntil(lambda: get_plan(seeded, "pro").plan.base_fee == Decimal("109"), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: page.editor.original.plan.code == "starter" and current_code(page) == "starter", timeout=WAIT_MS)
    assert page.editor.base_fee.text() == "5.00" and not page.editor.has_unsaved_changes()
    assert len(asked) == 1


def test_a_new_draft_with_edits_asks_too(qtbot, page, answers):
    asked, reply = answers
    page.new_plan()
    page.editor.code.setText("metered")
    reply["button"] = QMessageBox.StandardButton.Cancel
    page.select("pro")
    assert len(asked) == 1 and "new plan" in asked[0][0]
    qtbot.waitUntil(lambda: current_code(page) is None, timeout=WAIT_MS)
    qtbot.wait(50)
    assert page.editor.original is None and page.editor.code.text() == "metered"


def visible_errors(editor) -> list[str]:
    labels = [*editor.errors.values(), *editor.charge_editor.errors.values()]
    return [label.text() for label in labels if label.isVisible()]


def test_a_new_plan_form_is_not_red_before_anything_is_typed(qtbot, page):
    page.new_plan()
    editor = page.editor
    assert visible_errors(editor) == []
    assert not editor.save_button.isEnabled()
    assert "red" not in editor.save_note.text()

    editor.code.setText("Bad Code")
    assert editor.errors["code"].isVisible()
    assert "red" in editor.save_note.text()


def test_plan_errors_use_the_forms_words_not_raw_field_names(qtbot, page):
    page.new_plan()
    editor = page.editor
    editor.code.setText("metered")
    editor.name.setText("Metered")
    editor.add_charge()
    charge = editor.charge_editor
    charge.model.setCurrentIndex(charge.model.findData("graduated"))
    charge.tiers.set_tiers([TierDraft("500", "0.02"), TierDraft("100", "0.01"), TierDraft("", "0.005")])
    charge.tiers.edited.emit()

    tiers_error = charge.errors["tiers"].text()
    assert charge.errors["tiers"].isVisible() and "Tier 2" in tiers_error
    assert RAW_NAMES.search(tiers_error) is None, tiers_error
    assert "Up to" in tiers_error

    # An error in a charge that is not on screen is named in the charges box, in the same words.
    charge.tiers.set_tiers([TierDraft("500", "0.02"), TierDraft("1000", "0.01"), TierDraft("", "0.005")])
    charge.tiers.edited.emit()
    assert editor.save_button.isEnabled()
    charge.model.setCurrentIndex(charge.model.findData("per_unit"))
    charge.unit_price.setText("")
    editor.add_charge()
    assert editor.errors["charges"].isVisible()
    charges_error = editor.errors["charges"].text()
    assert "Charge 1" in charges_error and RAW_NAMES.search(charges_error) is None, charges_error
    assert "Unit price" in charges_error
