"""Starting the desktop app: the QApplication, the main window, and opening the configured or demo ledger."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from meterdesk.ui.desk import Desk
from meterdesk.ui.opening import open_configured_ledger, open_demo_ledger
from meterdesk.ui.settings import APPLICATION, ORGANIZATION, AppSettings

log = logging.getLogger(__name__)


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
