"""Screenshots of every page of the demo app, taken from a real X server (Xvfb), for review and the README.

    .venv/bin/python tools/screenshots.py [--out screenshots] [--docs docs/screenshots] [--size 1440x900]

Starts Xvfb on a free display unless --display is given (apt-get install xvfb libxcb-cursor0 libxcb-icccm4
libxcb-keysyms1 fonts-dejavu-core), runs the app with QT_QPA_PLATFORM=xcb on a fresh demo ledger in a
temporary data directory (your own ledger and settings are never touched), and writes one PNG per page and
per main dialog. The customer detail is copied to docs/screenshots/ for the README.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start_xvfb(size: str) -> tuple[subprocess.Popen, str]:
    binary = shutil.which("Xvfb")
    if binary is None:
        sys.exit("error: Xvfb not found; install it with `apt-get install xvfb libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1`")
    for number in range(90, 140):
        if Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
            continue
        display = f":{number}"
        process = subprocess.Popen(
            [binary, display, "-screen", "0", f"{size}x24", "-nolisten", "tcp", "-dpi", "96"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if Path(f"/tmp/.X11-unix/X{number}").exists():
                return process, display
            if process.poll() is not None:
                break
            time.sleep(0.1)
        process.kill()
    sys.exit("error: could not start Xvfb on any display from :90 to :139")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="screenshots", help="folder for the PNGs (default ./screenshots)")
    parser.add_argument("--docs", default=str(ROOT / "docs" / "screenshots"), help="where the README's screenshot is copied ('' to skip)")
    parser.add_argument("--size", default="1440x900", help="window size, e.g. 1440x900")
    parser.add_argument("--display", help="use this X display instead of starting Xvfb")
    args = parser.parse_args()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)

    xvfb = None
    if args.display:
        os.environ["DISPLAY"] = args.display
    else:
        width, height = args.size.split("x")
        xvfb, display = start_xvfb(f"{int(width) + 80}x{int(height) + 80}")
        os.environ["DISPLAY"] = display
    scratch = Path(tempfile.mkdtemp(prefix="meterdesk-screens-"))
    os.environ.update(
        QT_QPA_PLATFORM="xcb",
        XDG_DATA_HOME=str(scratch / "data"),
        XDG_CONFIG_HOME=str(scratch / "config"),
        METERDESK_ACTOR="Dana (billing)",
        METERDESK_LOCALE=os.environ.get("METERDESK_LOCALE", "en_IE"),
    )
    os.environ.pop("METERDESK_DB", None)
    try:
        return take(out, Path(args.docs) if args.docs else None, args.size)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)
        shutil.rmtree(scratch, ignore_errors=True)


def take(out: Path, docs: Path | None, size: str) -> int:
    sys.path.insert(0, str(ROOT / "src"))
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from meterdesk.services.entries import EntryFilter, list_entries
    from meterdesk.ui.app import build_window, create_application, open_demo_ledger
    from meterdesk.ui.desk import Desk
    from meterdesk.ui.settings import AppSettings

    app = create_application(["meterdesk"])
    settings = AppSettings(QSettings(str(Path(os.environ["XDG_CONFIG_HOME"]) / "meterdesk.ini"), QSettings.Format.IniFormat))
    settings.staff_name = "Dana (billing)"
    desk = Desk(settings)
    window = build_window(desk)
    width, height = (int(v) for v in size.split("x"))
    window.resize(width, height)
    window.move(0, 0)
    window.show()

    def spin(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)

    def until(condition, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                raise SystemExit("error: the app did not get ready in time")
            spin(0.05)

    taken = []

    def shoot(name: str, widget=None) -> Path:
        spin(0.6)
        taken.append(name)
        target = out / f"{len(taken):02d}-{name}.png"
        (widget or window).grab().save(str(target))
        print(target)
        return target

    open_demo_ledger(window, desk)
    until(lambda: window.customers.model.rowCount() > 0, timeout=180)
    window.message_bar.dismiss()
    shots = {}
    shots["customers"] = shoot("customers")

    window.open_customer("acme")
    until(lambda: window.detail.readout is not None and window.detail.entries.model.entry_at(0) is not None)
    spin(1.5)
    shots["detail"] = shoot("customer-detail")
    window.detail.tabs.setCurrentIndex(1)
    spin(2.5)
    shoot("customer-detail-chart")
    window.detail.tabs.setCurrentIndex(0)

    window.show_page(window.ledger_view)
    until(lambda: window.ledger_view.model.entry_at(0) is not None)
    shots["ledger"] = shoot("usage-ledger")

    window.show_page(window.charts)
    if hasattr(window.charts, "show_customer"):
        window.charts.show_customer("hooli")
    spin(3)
    shoot("charts")

    window.show_page(window.units)
    shoot("units")
    window.show_page(window.plans)
    window.plans.select("growth")
    spin(0.5)
    shoot("plans")
    if getattr(window, "settlement", None) is not None:
        window.show_page(window.settlement)
        spin(2)
        shoot("settlement")

    window.show_page(window.customers)
    window.customers.select("hooli")
    dialog = window.record_usage("hooli")
    dialog.amount.setText("250000")
    dialog.note.setPlainText("Usage reported by phone, ticket #4821")
    spin(0.3)
    shoot("record-usage", dialog)
    dialog.submit()
    until(lambda: dialog.result is not None)
    shoot("record-usage-recorded", dialog)
    dialog.accept()

    entry = next(e for e in list_entries(desk.ledger, EntryFilter(customer="acme", kind="usage"), limit=50) if e.corrects is None)
    window.show_page(window.ledger_view)
    correct = window.correct_entry(entry)
    correct.amount.setText(str(max(1, int(abs(entry.amount)) // 2)))
    correct.reason.setPlainText("Gateway retried the batch; confirmed with the customer")
    until(lambda: correct.preview is not None)
    shoot("correct-entry", correct)
    correct.reject()

    settings_dialog = window.open_settings()
    until(lambda: settings_dialog.probe is not None)
    shoot("settings", settings_dialog)
    settings_dialog.reject()

    if docs is not None:
        docs.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shots["detail"], docs / "customer-detail.png")  # the one the README shows
        print(docs / "customer-detail.png")
    window.close()
    QApplication.processEvents()
    return 0


if __name__ == "__main__":
    sys.exit(main())
