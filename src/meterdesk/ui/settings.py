"""The app's persistent settings (QSettings): which ledger to open and who is at the desk."""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings

from meterdesk.services.context import MAX_ACTOR_LENGTH, default_actor

ORGANIZATION = "meterdesk"
APPLICATION = "meterdesk"


class AppSettings:
    """Typed access to QSettings. Tests hand in their own QSettings (an ini file in a temp dir)."""

    def __init__(self, store: QSettings | None = None) -> None:
        self.store = store or QSettings(ORGANIZATION, APPLICATION)

    @property
    def database_url(self) -> str:
        """The configured ledger URL ('' = $METERDESK_DB, else the embedded SQLite file)."""
        return str(self.store.value("database/url", "") or "")

    @database_url.setter
    def database_url(self, value: str) -> None:
        self.store.setValue("database/url", (value or "").strip())

    @property
    def staff_name(self) -> str:
        return str(self.store.value("staff/name", "") or "")

    @staff_name.setter
    def staff_name(self, value: str) -> None:
        self.store.setValue("staff/name", (value or "").strip()[:MAX_ACTOR_LENGTH])

    @property
    def new_ledger_timezone(self) -> str:
        """The billing time zone given to a ledger created by this app ('' = $METERDESK_TIMEZONE or UTC)."""
        return str(self.store.value("ledger/new_timezone", "") or "")

    @new_ledger_timezone.setter
    def new_ledger_timezone(self, value: str) -> None:
        self.store.setValue("ledger/new_timezone", (value or "").strip())

    def actor(self) -> str:
        """Who is recorded on every write: the staff name, else `gui:<login>` (or $METERDESK_ACTOR)."""
        return self.staff_name or default_actor("gui")

    def effective_url(self, explicit: str | None = None) -> str | None:
        """--db beats $METERDESK_DB, which beats the settings; None means the embedded default."""
        return explicit or os.environ.get("METERDESK_DB") or self.database_url or None

    def sync(self) -> None:
        self.store.sync()
