"""Opening the configured or the demo ledger on a worker, the window reporting how it went."""

from __future__ import annotations

import os
import threading

from meterdesk.services.demo import SeedProgress, demo_ledger_url, is_seeded, seed_demo
from meterdesk.services.ledgers import Ledger, describe_url, open_ledger, resolve_url
from meterdesk.ui.desk import Desk
from meterdesk.ui.messages import Level

_TIMEZONE_LOCK = threading.Lock()


def open_ledger_with_timezone(url: str | None, timezone_name: str = "") -> Ledger:
    """open_ledger, giving a ledger created now the chosen billing time zone (read from $METERDESK_TIMEZONE
    by the migration that creates it; an existing ledger keeps its own)."""
    if not timezone_name:
        return open_ledger(url)
    with _TIMEZONE_LOCK:
        before = os.environ.get("METERDESK_TIMEZONE")
        os.environ["METERDESK_TIMEZONE"] = timezone_name
        try:
            return open_ledger(url)
        finally:
            if before is None:
                os.environ.pop("METERDESK_TIMEZONE", None)
            else:
                os.environ["METERDESK_TIMEZONE"] = before


def open_configured_ledger(window, desk: Desk, url: str | None) -> None:
    """Open (creating and migrating on first use) the ledger at `url` on a worker; report failure in the bar."""
    name = describe_url(resolve_url(url))
    window.set_opening(name)
    timezone_name = desk.settings.new_ledger_timezone

    def failed(error: BaseException) -> None:
        desk.set_ledger(None)
        window.message_bar.show_error(error, f"opening {name}", action="Settings…", on_action=window.open_settings)

    desk.runner.submit(
        lambda job: open_ledger_with_timezone(url, timezone_name),
        on_done=desk.set_ledger,
        on_error=failed,
        key="open-ledger",
        description=f"opening {name}",
        owner=window,
    )


def open_demo_ledger(window, desk: Desk, url: str | None = None) -> None:
    """Open the demo ledger (its own SQLite file), seeding it on first use with progress in the status bar."""
    url = url or demo_ledger_url()
    name = describe_url(resolve_url(url))
    window.set_opening(f"the demo ledger ({name})")

    def work(job):
        ledger = open_ledger(url)
        try:
            if not is_seeded(ledger):
                seed_demo(ledger, progress=job.progress)
        except BaseException:
            ledger.close()
            raise
        return ledger

    def progressed(step: SeedProgress) -> None:
        window.statusBar().showMessage(f"Preparing the demo ledger ({step.done + 1}/{step.total}): {step.step}…")

    def failed(error: BaseException) -> None:
        desk.set_ledger(None)
        window.message_bar.show_error(error, "preparing the demo ledger")

    def done(ledger: Ledger) -> None:
        window.statusBar().clearMessage()
        desk.set_ledger(ledger)
        window.message_bar.show_message(
            Level.INFO,
            "This is the demo ledger: made-up customers and three months of usage. Try it freely — your own ledger is untouched.",
            "Find a customer (Ctrl+F), open it (Enter), record usage (Ctrl+R), or correct an entry in the Usage ledger (Ctrl+E).",
            timeout_ms=30_000,
        )

    desk.runner.submit(work, on_done=done, on_error=failed, on_progress=progressed, key="open-ledger", description="opening the demo ledger", owner=window)
