"""Reading chart data off the GUI thread: one QRunnable per request, results back through queued signals.

Each job reads through `ledger.read()`, which checks out a connection of its own from the engine's pool;
nothing database-related is shared between jobs or with the GUI thread. Every request carries a
generation number: the page drops any result whose generation is no longer the newest, and a job that
finds itself superseded before it starts does not touch the database at all.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from PySide6.QtCore import QObject, QRunnable, Signal

from meterdesk.domain.errors import MeterdeskError, Unavailable
from meterdesk.domain.periods import from_micros
from meterdesk.services.catalog import list_customers
from meterdesk.services.chart_data import chart_data
from meterdesk.services.context import now_us
from meterdesk.ui.charts.model import ChartModel

log = logging.getLogger(__name__)

THIS_PERIOD = "this_period"
LAST_PERIOD = "last_period"
LAST_90_DAYS = "last_90_days"
CUSTOM = "custom"
PRESETS = (THIS_PERIOD, LAST_PERIOD, LAST_90_DAYS, CUSTOM)


class Generation:
    """A counter the GUI thread bumps and workers read: which request is the newest one."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            self._value += 1
            return self._value

    @property
    def current(self) -> int:
        with self._lock:
            return self._value

    def is_current(self, value: int) -> bool:
        return value == self.current


@dataclass(frozen=True, slots=True)
class ChartRequest:
    """What the page asks for. Custom ranges are local dates of the billing time zone, both inclusive."""

    generation: int
    customer: str
    preset: str = THIS_PERIOD
    first_day: date | None = None
    last_day: date | None = None
    granularity: str | None = None  # None: chosen from the range


def chart_arguments(request: ChartRequest, ledger, now: int) -> dict:
    """The `chart_data` arguments for a request, resolved against the ledger's billing time zone."""
    timeline = ledger.timeline
    today = from_micros(now).astimezone(ledger.timezone).date()
    arguments: dict = {"granularity": request.granularity, "now_us": now}
    if request.preset == THIS_PERIOD:
        arguments["period"] = timeline.period_of(now)
    elif request.preset == LAST_PERIOD:
        arguments["period"] = timeline.period_of(now).previous()
    elif request.preset == LAST_90_DAYS:
        arguments.update(start=today - timedelta(days=89), end=today + timedelta(days=1))
    else:
        first = request.first_day or today
        last = request.last_day or today
        arguments.update(start=first, end=last + timedelta(days=1))
    return arguments


def describe_error(error: BaseException) -> str:
    if isinstance(error, Unavailable):
        return f"The database cannot be reached: {error}"
    if isinstance(error, MeterdeskError):
        return str(error)
    return f"Unexpected error ({type(error).__name__}): {error}"


class JobSignals(QObject):
    loaded = Signal(int, object)  # generation, result
    failed = Signal(int, str)  # generation, message
    skipped = Signal(int)  # generation: superseded before it started


class _Job(QRunnable):
    def __init__(self, generation: int, counter: Generation) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self.generation = generation
        self.counter = counter
        self.signals = JobSignals()

    def run(self) -> None:
        try:
            if not self.counter.is_current(self.generation):
                self.signals.skipped.emit(self.generation)
                return
            result = self.work()
        except Exception as error:  # noqa: BLE001 - every failure becomes a message on the page
            if not isinstance(error, MeterdeskError):
                log.exception("chart job failed")
            self.signals.failed.emit(self.generation, describe_error(error))
            return
        self.signals.loaded.emit(self.generation, result)

    def work(self):
        raise NotImplementedError


class ChartJob(_Job):
    """Reads one customer's chart data and prepares its arrays."""

    def __init__(self, request: ChartRequest, ledger, counter: Generation, hook: Callable[[ChartRequest], None] | None = None) -> None:
        super().__init__(request.generation, counter)
        self.request = request
        self.ledger = ledger
        self.hook = hook

    def work(self) -> ChartModel:
        if self.hook is not None:
            self.hook(self.request)  # tests slow a fetch down here, deterministically
        now = now_us()
        data = chart_data(self.ledger, self.request.customer, **chart_arguments(self.request, self.ledger, now))
        return ChartModel.from_data(data)


class CustomersJob(_Job):
    """Reads the customer list."""

    def __init__(self, generation: int, ledger, counter: Generation) -> None:
        super().__init__(generation, counter)
        self.ledger = ledger

    def work(self):
        return list_customers(self.ledger)
