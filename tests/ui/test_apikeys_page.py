"""The API keys page of the main window on a real ledger: create (the secret shown once), list, revoke."""

from __future__ import annotations

from PySide6.QtGui import QGuiApplication

from meterdesk.services.apikeys import KeyChecker, has_scope, list_api_keys
from meterdesk.ui.views import apikeys_page
from meterdesk.ui.views.apikeys_page import CreateKeyDialog, KeyColumn, KeyShownDialog

WAIT_MS = 15_000


def page_texts(page) -> list[list[str]]:
    model = page.model
    return [[model.index(row, column).data() for column in range(model.columnCount())] for row in range(model.rowCount())]


def create_in_page(qtbot, window, name: str, scopes=("usage:write", "usage:read")) -> KeyShownDialog:
    page = window.api_keys
    dialog = page.create_key()
    assert isinstance(dialog, CreateKeyDialog)
    dialog.name.setText(name)
    for scope, box in dialog.scope_boxes.items():
        box.setChecked(scope in scopes)
    assert dialog.ok.isEnabled()
    before = page.shown_key
    dialog.ok.click()
    qtbot.waitUntil(lambda: page.shown_key is not None and page.shown_key is not before, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: any(row[KeyColumn.NAME] == name for row in page_texts(page)), timeout=WAIT_MS)
    return page.shown_key


def test_the_page_is_in_the_sidebar_with_its_own_shortcut(qtbot, window):
    number = next(n for n, (title, _tip, _page) in enumerate(window.pages, start=1) if title == "API keys")
    action = next(a for a in window.page_actions if a.shortcut().toString() == f"Ctrl+{number}")
    action.trigger()
    assert window.current_page() is window.api_keys
    assert window.page_title.text() == "API keys"


def test_create_shows_the_key_once_and_it_authenticates(qtbot, window, seeded):
    window.show_page(window.api_keys)
    page = window.api_keys
    assert page.revoke_button.isEnabled() is False
    shown = create_in_page(qtbot, window, "billing-backend", scopes=("usage:write",))
    secret = shown.secret.text()
    assert secret.startswith("mdk_") and len(secret) > 40
    assert shown.secret.isReadOnly()

    shown.copy_button.click()
    assert QGuiApplication.clipboard().text() == secret
    assert shown.copy_button.text() == "Copied"

    # The list shows the row, never the secret.
    rows = page_texts(page)
    assert [row[KeyColumn.NAME] for row in rows] == ["billing-backend"]
    row = rows[0]
    assert row[KeyColumn.SCOPES] == "usage:write"
    assert row[KeyColumn.CREATED_BY] == window.desk.actor()
    assert row[KeyColumn.LAST_USED] == "never"
    assert row[KeyColumn.STATUS] == "active"
    assert all(secret not in text for text in row)
    qtbot.waitUntil(lambda: page.selected() is not None and page.selected().name == "billing-backend", timeout=WAIT_MS)
    assert page.revoke_button.isEnabled()

    # Closing the dialog drops the secret; nothing on the page holds it any more.
    shown.accept()
    assert shown.secret.text() == ""

    # The key made in the app authenticates through the services, with its scopes.
    checked = KeyChecker(seeded).authenticate(secret)
    assert checked is not None and checked.name == "billing-backend"
    assert has_scope(checked, "usage:write") and not has_scope(checked, "usage:read")
    assert KeyChecker(seeded).authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None

    # Shown again (F5): last use appears, still no secret anywhere.
    window.refresh()
    qtbot.waitUntil(lambda: page_texts(page)[0][KeyColumn.LAST_USED] != "never", timeout=WAIT_MS)


def test_a_taken_name_is_refused_in_the_form(qtbot, window, seeded):
    window.show_page(window.api_keys)
    create_in_page(qtbot, window, "dup").accept()
    dialog = window.api_keys.create_key()
    dialog.name.setText("dup")
    dialog.ok.click()
    qtbot.waitUntil(lambda: dialog.outcome.isVisible(), timeout=WAIT_MS)
    assert "exists already" in dialog.outcome.text()
    assert [key.name for key in list_api_keys(seeded)] == ["dup"]
    dialog.name.setText("bad name!")
    assert not dialog.ok.isEnabled()
    for box in dialog.scope_boxes.values():
        box.setChecked(False)
    dialog.name.setText("fine")
    assert not dialog.ok.isEnabled()
    dialog.reject()


def test_revoke_asks_first_and_marks_the_key_revoked(qtbot, window, seeded, monkeypatch):
    window.show_page(window.api_keys)
    page = window.api_keys
    shown = create_in_page(qtbot, window, "old-backend")
    secret = shown.secret.text()
    shown.accept()
    checker = KeyChecker(seeded)
    assert checker.authenticate(secret) is not None

    page.select("old-backend")
    assert page.revoke_button.isEnabled()
    asked = []
    monkeypatch.setattr(apikeys_page, "confirm_revoke", lambda parent, name: (asked.append(name), False)[1])
    page.revoke_button.click()
    assert asked == ["old-backend"]
    assert not list_api_keys(seeded)[0].revoked  # cancelled: nothing written
    assert checker.authenticate(secret) is not None

    monkeypatch.setattr(apikeys_page, "confirm_revoke", lambda parent, name: (asked.append(name), True)[1])
    page.revoke_button.click()
    qtbot.waitUntil(lambda: page_texts(page)[0][KeyColumn.STATUS].startswith("revoked"), timeout=WAIT_MS)
    assert window.desk.actor() in page_texts(page)[0][KeyColumn.STATUS]
    assert list_api_keys(seeded)[0].revoked
    assert checker.authenticate(secret) is None  # effective on the next request
    page.select("old-backend")
    assert not page.revoke_button.isEnabled()  # a revoked key cannot be revoked again
