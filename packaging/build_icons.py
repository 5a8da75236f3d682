"""Render resources/meterdesk.png (256×256) from resources/meterdesk.svg with Qt's SVG renderer."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication(sys.argv[:1])  # noqa: F841 - QPainter needs an application
    renderer = QSvgRenderer(str(ROOT / "resources" / "meterdesk.svg"))
    if not renderer.isValid():
        sys.exit("error: resources/meterdesk.svg is not a valid SVG")
    image = QImage(256, 256, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    target = ROOT / "resources" / "meterdesk.png"
    image.save(str(target))
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
