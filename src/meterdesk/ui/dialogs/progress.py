"""Long work (importing a file, closing a period) with a progress dialog that can cancel between batches."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QProgressDialog, QWidget

from meterdesk.ui.desk import Desk
from meterdesk.ui.tasks import Job


def run_with_progress(
    desk: Desk,
    parent: QWidget,
    title: str,
    work: Callable[[Any, Job], Any],
    *,
    describe: Callable[[Any], tuple[str, int, int]],
    on_done: Callable[[Any], None],
    on_error: Callable[[BaseException], None],
) -> QProgressDialog:
    """Run `work(ledger, job)`; `describe(progress)` gives (label, done, total) for the bar.

    Cancelling sets the job's flag: the service stops after the batch in hand (each batch is committed),
    so what was acknowledged stays written and running it again continues where it stopped.
    """
    dialog = QProgressDialog(title, "Cancel after this batch", 0, 0, parent)
    dialog.setWindowTitle(title)
    dialog.setWindowModality(Qt.WindowModality.WindowModal)
    dialog.setMinimumDuration(300)
    dialog.setAutoClose(False)
    dialog.setAutoReset(False)
    dialog.setMinimumWidth(420)

    def progressed(value: Any) -> None:
        label, done, total = describe(value)
        dialog.setLabelText(label)
        if total:
            dialog.setMaximum(total)
            dialog.setValue(min(done, total))

    def finished(value: Any) -> None:
        dialog.close()
        on_done(value)

    def failed(error: BaseException) -> None:
        dialog.close()
        on_error(error)

    job = desk.run(work, on_done=finished, on_error=failed, on_progress=progressed, description=title.lower(), owner=parent)
    if job is not None:
        dialog.canceled.connect(job.cancel)
        dialog.canceled.connect(lambda: dialog.setLabelText("Cancelling after the current batch…"))
    return dialog
