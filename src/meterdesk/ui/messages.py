"""The message bar: non-blocking feedback above the pages, saying what happened and what to do next."""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import Enum

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolButton, QWidget

from meterdesk.domain.errors import Conflict, InvalidInput, MeterdeskError, NotFound, Unavailable

log = logging.getLogger(__name__)


class Level(Enum):
    INFO = ("#e8f1fb", "#1d4f91", "ℹ")
    SUCCESS = ("#e7f6ea", "#1e6b34", "✔")
    WARNING = ("#fff4e0", "#8a5300", "⚠")
    ERROR = ("#fdecea", "#9b1c1c", "✖")


def explain(error: BaseException, doing: str = "") -> tuple[str, str]:
    """(what happened, what to do) for an error, in words a billing clerk can act on."""
    prefix = f"{doing[:1].upper()}{doing[1:]} failed: " if doing else ""
    if isinstance(error, Unavailable):
        return (
            f"{prefix}{error}",
            "Check the network and that the database server is running, or pick another database in "
            "Settings (Ctrl+,). Press F5 to try again; nothing unacknowledged was written.",
        )
    if isinstance(error, InvalidInput):
        return f"{prefix}{error.field}: {error.problem}", "Correct the value and try again; nothing was written."
    if isinstance(error, Conflict):
        return f"{prefix}{error}", "Nothing was written. Refresh (F5) to see the ledger as it is now."
    if isinstance(error, NotFound):
        return f"{prefix}{error}", "Check the spelling, or refresh (F5) in case someone else changed it."
    if isinstance(error, MeterdeskError):
        return f"{prefix}{error}", ""
    log.error("unexpected error while %s", doing or "working", exc_info=error)
    return (
        f"{prefix}unexpected {type(error).__name__}: {error}",
        "This is a bug in meterdesk; the details are in the log. Nothing acknowledged was lost.",
    )


class MessageBar(QFrame):
    """One message at a time (the newest), with an optional action button; never modal."""

    action_triggered = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MessageBar")
        self.setFrameShape(QFrame.Shape.NoFrame)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        layout.setSpacing(10)
        self._icon = QLabel()
        self._icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self._text = QLabel()
        self._text.setWordWrap(True)
        self._text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._action = QPushButton()
        self._action.setVisible(False)
        self._action.clicked.connect(self._on_action)
        self._close = QToolButton()
        self._close.setText("✕")
        self._close.setToolTip("Dismiss (Esc)")
        self._close.setAutoRaise(True)
        self._close.clicked.connect(self.dismiss)
        layout.addWidget(self._icon)
        layout.addWidget(self._text, 1)
        layout.addWidget(self._action)
        layout.addWidget(self._close, 0, Qt.AlignmentFlag.AlignTop)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.dismiss)
        self._action_name = ""
        self._callback: Callable[[], None] | None = None
        self.level: Level | None = None
        self.hide()

    @property
    def text(self) -> str:
        return self._text.text()

    def show_message(
        self,
        level: Level,
        message: str,
        hint: str = "",
        *,
        action: str = "",
        on_action: Callable[[], None] | None = None,
        timeout_ms: int | None = None,
    ) -> None:
        background, foreground, icon = level.value
        self.level = level
        self.setStyleSheet(
            f"#MessageBar {{ background: {background}; border: 1px solid {foreground}40; border-radius: 6px; }}"
            f"#MessageBar QLabel {{ color: {foreground}; }}"
        )
        self._icon.setText(icon)
        self._text.setText(message + (f"\n{hint}" if hint else ""))
        self._action_name = action
        self._callback = on_action
        self._action.setText(action)
        self._action.setVisible(bool(action))
        self.show()
        if timeout_ms is None:
            timeout_ms = 8000 if level in (Level.INFO, Level.SUCCESS) else 0
        if timeout_ms:
            self._timer.start(timeout_ms)
        else:
            self._timer.stop()

    def show_error(self, error: BaseException, doing: str = "", *, action: str = "", on_action=None) -> None:
        message, hint = explain(error, doing)
        self.show_message(Level.ERROR, message, hint, action=action, on_action=on_action)

    def dismiss(self) -> None:
        self._timer.stop()
        self.level = None
        self.hide()

    def _on_action(self) -> None:
        callback = self._callback
        self.action_triggered.emit(self._action_name)
        if callback is not None:
            callback()
