"""Screenshots of the charts page for docs and review: `render_chart_page(ledger, customer, path)`."""

from __future__ import annotations

import os
import time
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication

DEFAULT_SIZE = (1280, 800)


def application() -> QApplication:
    """The running QApplication, or a new one (offscreen when there is no display)."""
    app = QApplication.instance()
    if app is None:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QApplication([])
    return app


def wait_for(condition, timeout_s: float = 30.0) -> bool:
    """Run the event loop until `condition()` holds (or the timeout passes)."""
    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    while not condition():
        if time.monotonic() > deadline:
            return False
        QTimer.singleShot(10, loop.quit)
        loop.exec()
    return True


def render_chart_page(
    ledger,
    customer: str,
    path: str | Path,
    size: tuple[int, int] = DEFAULT_SIZE,
    *,
    preset: str | None = None,
    granularity: str | None = None,
    hover: bool = False,
) -> Path:
    """Open the Charts page on `customer` at `size`, wait for its data, and save it as a PNG at `path`.

    `hover=True` also shows the readout of the customer's busiest bucket, as when the mouse rests on it.
    """
    from meterdesk.ui.charts.page import ChartsPage

    app = application()
    page = ChartsPage(lambda: ledger)
    try:
        page.resize(*size)
        if preset:
            page.set_preset(preset)
        if granularity:
            page.set_granularity(granularity)
        page.show()
        page.show_customer(customer)
        if not wait_for(lambda: page.shown_customer() == customer and not page.is_busy()):
            raise TimeoutError(f"the chart of {customer!r} did not load: {page.banner_message() or 'no message'}")
        app.processEvents()
        if hover:
            _hover_busiest_bucket(page)
            app.processEvents()
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not page.grab().save(str(target), "PNG"):
            raise OSError(f"could not write {target}")
        return target
    finally:
        page.shutdown()
        page.close()
        page.deleteLater()
        app.processEvents()


def _hover_busiest_bucket(page) -> None:
    model = page.chart.model
    tracks = [track for track in model.units if len(track)] if model else []
    if not tracks:
        return
    track = tracks[0]
    index = int(track.heights.argmax())
    page.chart.hover_at(track.code, int(track.starts_us[index]))
