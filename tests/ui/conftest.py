"""UI fixtures: isolated settings, a desk and a main window on the `ledger` fixture, and a 100,000-entry ledger."""

from __future__ import annotations

import csv
import shutil
from datetime import datetime, timedelta, timezone

import pytest
from PySide6.QtCore import QSettings

from meterdesk.services.imports import import_text, import_usage
from meterdesk.services.recording import record_usage
from meterdesk.store.engine import open_ledger
from meterdesk.ui.desk import Desk
from meterdesk.ui.settings import AppSettings
from tests.conftest import BACKENDS, new_postgres_database
from tests.services.helpers import seed

BIG_ENTRIES = 100_000
BIG_CUSTOMERS = ("acme", "bolt")


@pytest.fixture
def app_settings(tmp_path) -> AppSettings:
    settings = AppSettings(QSettings(str(tmp_path / "meterdesk.ini"), QSettings.Format.IniFormat))
    settings.staff_name = "Dana Tester"
    return settings


@pytest.fixture
def seeded(ledger):
    """The service tests' literal ledger (acme postpaid on pro, bolt prepaid on starter) with a little usage."""
    seed(ledger)
    now = datetime.now(timezone.utc) - timedelta(minutes=10)
    lines = [
        f"acme,api_calls,{1000 + number},seed-{number},{(now - timedelta(minutes=number)).strftime('%Y-%m-%dT%H:%M:%SZ')}"
        for number in range(30)
    ]
    result = import_text(ledger, "\n".join(lines) + "\n", actor="tests")
    assert result.recorded == 30, result.errors
    from meterdesk.services.credits import grant_credits

    grant_credits(ledger, "bolt", "20", "seed-grant", actor="tests")
    record_usage(ledger, "bolt", "api_calls", "500", "seed-bolt", source="api", actor="tests")
    return ledger


def wait_for_desk(qtbot, desk: Desk) -> None:
    qtbot.waitUntil(lambda: bool(desk.catalog.customers), timeout=15_000)


@pytest.fixture
def desk(qtbot, seeded, app_settings):
    made = Desk(app_settings, poll_ms=250)
    made.set_ledger(seeded)
    wait_for_desk(qtbot, made)
    yield made
    made.shutdown()


@pytest.fixture
def window(qtbot, desk):
    from meterdesk.ui.views.main_window import MainWindow

    main = MainWindow(desk)
    qtbot.addWidget(main)
    main.show()
    yield main
    main.close()


def write_usage_csv(path, count: int, customers=BIG_CUSTOMERS) -> None:
    start = datetime.now(timezone.utc) - timedelta(days=20)
    step = timedelta(days=19) / count
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        for number in range(count):
            at = (start + step * number).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            customer = customers[number % len(customers)]
            note = f"batch {number // 1000}" if number % 100 == 0 else ""
            writer.writerow([customer, "api_calls", str(1 + number % 97), f"big-{number}", at, note])


@pytest.fixture(scope="module", params=BACKENDS)
def big_ledger(request, tmp_path_factory):
    """A ledger of 100,000 usage entries (plus a correction), seeded once per backend and module."""
    folder = tmp_path_factory.mktemp("big")
    drop = None
    if request.param == "sqlite":
        path = folder / "ledger.sqlite3"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url, drop = new_postgres_database(request.getfixturevalue("postgres_server"), request.getfixturevalue("postgres_template"))
    ledger = open_ledger(url)
    seed(ledger)
    source = folder / "usage.csv"
    write_usage_csv(source, BIG_ENTRIES)
    result = import_usage(ledger, source, actor="tests")
    assert result.recorded == BIG_ENTRIES, result.errors[:3]
    yield ledger
    ledger.close()
    if drop:
        drop()
