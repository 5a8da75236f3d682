"""Starting the desktop app: the QApplication, the main window, and opening the configured or demo ledger."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from meterdesk.services.demo import SeedProgress, demo_ledger_url, is_seeded, seed_demo
from meterdesk.store.engine import Ledger, describe_url, open_ledger, resolve_url
from meterdesk.ui.desk import Desk
from meterdesk.ui.messages import Level
from meterdesk.ui.settings import APPLICATION, ORGANIZATION, AppSettings

log = logging.getLogger(__name__)
_TIMEZONE_LOCK = threading.Lock()


def icon_path() -> Path | None:
    """The app icon: resources/ of a source checkout, else where a package installed it."""
    candidates = [
        Path(__file__).resolve().parents[3] / "resources" / "meterdesk.svg",
        Path(sys.prefix) / "share" / "icons" / "hicolor" / "scalable" / "apps" / "meterdesk.svg",
        Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "icons" / "hicolor" / "scalable" / "apps" / "meterdesk.svg",
        Path(sys.prefix) / "share" / "meterdesk" / "meterdesk.svg",
    ]
    return next((path for path in candidates if path.is_file()), None)


def app_icon() -> QIcon:
    path = icon_path()
    return QIcon(str(path)) if path else QIcon()


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


def create_application(argv: Sequence[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("meterdesk")
    app.setDesktopFileName("meterdesk")
    app.setWindowIcon(app_icon())
    return app


def build_window(desk: Desk):
    from meterdesk.ui.views.main_window import MainWindow

    return MainWindow(desk)


def run_gui(db: str | None = None, demo: bool = False, argv: Sequence[str] | None = None) -> int:
    """`meterdesk [gui] [--demo]`: the main window on the configured ledger, or on the seeded demo ledger."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_application(argv)
    settings = AppSettings()
    desk = Desk(settings)
    window = build_window(desk)
    window.show()
    if demo:
        open_demo_ledger(window, desk)
    else:
        open_configured_ledger(window, desk, settings.effective_url(db))
    return app.exec()


def main(argv: Sequence[str] | None = None) -> int:
    """The `meterdesk-gui` entry point: `--demo` and `--db URL`, like `meterdesk gui`."""
    import argparse

    parser = argparse.ArgumentParser(prog="meterdesk-gui", description="The meterdesk desktop app")
    parser.add_argument("--db", metavar="URL", help="sqlite:///PATH, a file path, or postgresql+psycopg://user@host/db")
    parser.add_argument("--demo", action="store_true", help="open a seeded demo ledger")
    args, rest = parser.parse_known_args(argv)
    return run_gui(db=args.db, demo=args.demo, argv=[sys.argv[0], *rest])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
