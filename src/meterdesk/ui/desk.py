"""What every page and dialog shares: the open ledger, the worker pool, the settings and the catalog."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from meterdesk.services.catalog import PlanInfo, UnitRow, list_plans, list_units
from meterdesk.services.ledger_pages import latest_entry_id
from meterdesk.services.ledgers import Ledger
from meterdesk.services.overview import CustomerOverview, customers_overview
from meterdesk.ui.settings import AppSettings
from meterdesk.ui.tasks import SHUTDOWN_WAIT_MS, Job, TaskRunner


@dataclass(frozen=True)
class Catalog:
    """Units, plans and customers as last read: what dialogs offer in their pickers without a query."""

    units: tuple[UnitRow, ...] = ()
    plans: tuple[PlanInfo, ...] = ()
    customers: tuple[CustomerOverview, ...] = field(default=())

    def unit(self, code: str) -> UnitRow | None:
        return next((u for u in self.units if u.code == code), None)

    def customer(self, customer_id: str) -> CustomerOverview | None:
        return next((c for c in self.customers if c.id == customer_id), None)

    def plan(self, code: str) -> PlanInfo | None:
        return next((p for p in self.plans if p.plan.code == code), None)


def _close_after(ledger: Ledger, waits: tuple[Callable[[int], bool], ...]) -> None:
    try:
        for wait in waits:
            wait(SHUTDOWN_WAIT_MS)
    finally:
        ledger.close()


def read_catalog(ledger: Ledger) -> Catalog:
    return Catalog(tuple(list_units(ledger)), tuple(list_plans(ledger)), tuple(customers_overview(ledger)))


class Desk(QObject):
    """The session at the desk. Pages never query on the GUI thread: they call `run` and get signals back."""

    ledger_changed = Signal(object)  # the Ledger now open, or None
    catalog_changed = Signal(object)  # Catalog
    written = Signal(str)  # this app wrote something: "usage", "catalog", "customers", "credits", "period"
    entries_appeared = Signal(int)  # the ledger's highest id moved (anyone's writes)
    failed = Signal(object, str)  # an error nobody handled: shown in the message bar
    message = Signal(str)  # a success or progress note for the status bar

    def __init__(self, settings: AppSettings, runner: TaskRunner | None = None, parent: QObject | None = None, *, poll_ms: int = 2000) -> None:
        super().__init__(parent)
        self.settings = settings
        self.runner = runner or TaskRunner(self)
        self.runner.failed.connect(self.failed)
        self.ledger: Ledger | None = None
        self._close_waits: list[Callable[[int], bool]] = []
        self.catalog = Catalog()
        self._latest_id: int | None = None
        self._polling = False
        self._poll_broken = False
        self.poll_timer = QTimer(self)
        self.poll_timer.setInterval(poll_ms)
        self.poll_timer.timeout.connect(self._poll)

    # -- the ledger --------------------------------------------------------------------------------
    def ledger_provider(self) -> Ledger | None:
        return self.ledger

    def set_ledger(self, ledger: Ledger | None) -> None:
        old = self.ledger
        self.ledger = ledger
        self.catalog = Catalog()
        self._latest_id = None
        self.ledger_changed.emit(ledger)
        if old is not None and old is not ledger:
            waits = tuple(self._close_waits)
            self.runner.submit(lambda job: _close_after(old, waits), description="closing the previous ledger")
        if ledger is not None:
            self.reload_catalog()
            self.poll_timer.start()
        else:
            self.poll_timer.stop()

    def close_waits_for(self, wait: Callable[[int], bool]) -> None:
        """Close a ledger switched away from only after `wait(msecs)` returned (on the runner, not the GUI
        thread): the chart pages read on thread pools of their own, and a read running there when the ledger
        is switched must end on an open ledger (the page drops its result) rather than read a closed one."""
        self._close_waits.append(wait)

    def actor(self) -> str:
        return self.settings.actor()

    # -- work --------------------------------------------------------------------------------------
    def run(
        self,
        work: Callable[[Ledger, Job], Any],
        *,
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        on_progress: Callable[[Any], None] | None = None,
        key: str | None = None,
        description: str = "",
        owner: QObject | None = None,
    ) -> Job | None:
        """Run `work(ledger, job)` on a worker with the open ledger; None when no ledger is open."""
        ledger = self.ledger
        if ledger is None:
            return None
        return self.runner.submit(
            lambda job: work(ledger, job),
            on_done=on_done, on_error=on_error, on_progress=on_progress, key=key, description=description, owner=owner,
        )

    def reload_catalog(self) -> None:
        self.run(
            lambda ledger, job: read_catalog(ledger),
            on_done=self._catalog_read,
            key="catalog",
            description="reading units, plans and customers",
        )

    def _catalog_read(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.catalog_changed.emit(catalog)

    def notify_written(self, what: str) -> None:
        """After a write: pages refresh what they show, pickers re-read the catalog."""
        if what in ("catalog", "customers", "credits", "usage", "period"):
            self.reload_catalog()
        self.written.emit(what)

    # -- anyone's writes -----------------------------------------------------------------------------
    def _poll(self) -> None:
        if self._polling or self.ledger is None:
            return
        self._polling = True
        ledger = self.ledger
        self.runner.submit(
            lambda job: latest_entry_id(ledger),
            on_done=lambda latest: self._polled(ledger, latest),
            on_error=lambda error: self._poll_failed(ledger, error),
            key="poll-latest",
            description="checking the ledger for new entries",
        )

    def _polled(self, ledger: Ledger, latest: int) -> None:
        self._polling = False
        if ledger is not self.ledger:
            return
        if self._poll_broken:
            self._poll_broken = False
            self.message.emit("Connection to the database restored")
        if self._latest_id is not None and latest != self._latest_id:
            self.entries_appeared.emit(latest)
        self._latest_id = latest

    def _poll_failed(self, ledger: Ledger, error: BaseException) -> None:
        self._polling = False
        if ledger is self.ledger and not self._poll_broken:
            self._poll_broken = True  # say it once; keep polling quietly until it comes back
            self.failed.emit(error, "checking for new entries")

    def shutdown(self) -> None:
        self.poll_timer.stop()
        self.runner.shutdown()
        if self.ledger is not None:
            self.ledger.close()
