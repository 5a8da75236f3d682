"""Background work for the GUI: each job runs on a pool thread and reports back on the GUI thread.

`TaskRunner.submit(work)` runs `work(job)` on a QThreadPool; the job carries `progress(value)` and
`cancelled()` for long work (the services take them as callbacks). Results and errors come back through
queued signals to the runner, which lives on the GUI thread. A job submitted under a `key` supersedes the
earlier ones of that key: their results are dropped when they arrive (an older filter, a stale refresh).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal, Slot

log = logging.getLogger(__name__)

# How long closing waits for running jobs (a window, a ledger switched away from): bounded, so that a read
# hung on an unreachable database cannot hang the app.
SHUTDOWN_WAIT_MS = 15_000


@dataclass(eq=False)
class Job:
    """One submitted piece of work, as the worker sees it."""

    id: int
    key: str | None
    description: str
    _relay: "_Relay" = field(repr=False)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def progress(self, value: Any) -> None:
        """Report progress from the worker; delivered to `on_progress` on the GUI thread."""
        try:
            self._relay.progressed.emit(self.id, value)
        except RuntimeError:  # the runner is gone (the window closed); the job is being abandoned
            pass


class _Relay(QObject):
    finished = Signal(int, bool, object)  # job id, ok, result or exception
    progressed = Signal(int, object)


class _Runnable(QRunnable):
    def __init__(self, job: Job, work: Callable[[Job], Any]) -> None:
        super().__init__()
        self.job = job
        self.work = work
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            result = self.work(self.job)
        except BaseException as error:  # noqa: BLE001 - every failure is reported to the GUI thread
            self._emit(False, error)
        else:
            self._emit(True, result)

    def _emit(self, ok: bool, value: Any) -> None:
        try:
            self.job._relay.finished.emit(self.job.id, ok, value)
        except RuntimeError:
            pass


@dataclass(eq=False)
class _Callbacks:
    on_done: Callable[[Any], None] | None
    on_error: Callable[[BaseException], None] | None
    on_progress: Callable[[Any], None] | None
    job: Job
    owner: QObject | None = None

    def orphaned(self) -> bool:
        """The widget that asked is gone (a dialog closed meanwhile): its callbacks must not run."""
        return self.owner is not None and not shiboken6.isValid(self.owner)


class TaskRunner(QObject):
    """Runs jobs off the GUI thread; errors without their own handler go to `failed` (the message bar)."""

    failed = Signal(object, str)  # exception, what was being done
    busy_changed = Signal(int)  # jobs in flight

    def __init__(self, parent: QObject | None = None, *, threads: int = 4) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._pool.setExpiryTimeout(10_000)
        self._relay = _Relay(self)
        self._relay.finished.connect(self._finished, Qt.ConnectionType.QueuedConnection)
        self._relay.progressed.connect(self._progressed, Qt.ConnectionType.QueuedConnection)
        self._ids = itertools.count(1)
        self._jobs: dict[int, _Callbacks] = {}
        self._latest: dict[str, int] = {}
        self._closed = False

    @property
    def busy(self) -> int:
        return len(self._jobs)

    def submit(
        self,
        work: Callable[[Job], Any],
        *,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        key: str | None = None,
        description: str = "",
        owner: QObject | None = None,
    ) -> Job:
        job = Job(next(self._ids), key, description, self._relay)
        if self._closed:
            job.cancel()
            return job
        if key is not None:
            self._latest[key] = job.id
        self._jobs[job.id] = _Callbacks(on_done, on_error, on_progress, job, owner)
        self._pool.start(_Runnable(job, work))
        self.busy_changed.emit(len(self._jobs))
        return job

    def is_current(self, job: Job) -> bool:
        return job.key is None or self._latest.get(job.key) == job.id

    @Slot(int, bool, object)
    def _finished(self, job_id: int, ok: bool, value: Any) -> None:
        callbacks = self._jobs.pop(job_id, None)
        self.busy_changed.emit(len(self._jobs))
        if callbacks is None or self._closed or callbacks.orphaned():
            return
        job = callbacks.job
        if not self.is_current(job):
            return  # superseded: a newer job of the same key owns the outcome
        if job.key is not None:
            self._latest.pop(job.key, None)
        if ok:
            if callbacks.on_done is not None:
                callbacks.on_done(value)
            return
        if not isinstance(value, Exception):
            log.error("job %r ended by %r", job.description, value)
            return
        if callbacks.on_error is not None:
            callbacks.on_error(value)
        else:
            self.failed.emit(value, job.description)

    @Slot(int, object)
    def _progressed(self, job_id: int, value: Any) -> None:
        callbacks = self._jobs.get(job_id)
        if callbacks is not None and callbacks.on_progress is not None and not self._closed and not callbacks.orphaned():
            callbacks.on_progress(value)

    def cancel_all(self) -> None:
        for callbacks in self._jobs.values():
            callbacks.job.cancel()

    def wait(self, msecs: int = 30_000) -> bool:
        """Block until every job has ended (tests, and closing the window); True if they all did."""
        return self._pool.waitForDone(msecs)

    def shutdown(self, msecs: int = SHUTDOWN_WAIT_MS) -> None:
        """Cancel what can be cancelled, wait for the rest, and drop every result still on its way."""
        self.cancel_all()
        self._pool.waitForDone(msecs)
        self._closed = True
        self._jobs.clear()
