"""A lifelike ledger to look at the charts with, and the Charts page screenshots made from it.

Set METERDESK_CHART_SCREENSHOTS=/some/dir to keep the PNGs (otherwise they go to pytest's tmp_path).
"""

from __future__ import annotations

import math
import os
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from meterdesk.domain.periods import from_micros, to_micros
from meterdesk.services import corrections, credits, recording
from meterdesk.services.billing import close_period
from meterdesk.services.catalog import add_customer, add_unit, save_plan
from meterdesk.services.context import now_us
from meterdesk.store.engine import open_ledger
from meterdesk.ui.charts.screenshot import render_chart_page

HYBRID_PLAN = {
    "code": "scale",
    "name": "Scale",
    "currency": "EUR",
    "base_fee": "49.00",
    "charges": [
        {
            "unit": "api_calls",
            "included": "100000",
            "model": "graduated",
            "tiers": [{"up_to": "400000", "unit_price": "0.001"}, {"unit_price": "0.0005", "flat_fee": "10"}],
        },
        {"unit": "storage_gb", "included": "50", "model": "per_unit", "unit_price": "0.10"},
    ],
}
PREPAID_PLAN = {
    "code": "payg",
    "name": "Pay as you go",
    "currency": "EUR",
    "base_fee": "0",
    "charges": [
        {"unit": "api_calls", "model": "per_unit", "unit_price": "0.002"},
        {"unit": "storage_gb", "model": "per_unit", "unit_price": "0.10"},
    ],
}
HOUR = timedelta(hours=1)


class _Clock:
    """Stands in for the services' clock while seeding, so entries are recorded when they happened."""

    def __init__(self, monkeypatch) -> None:
        self.value = now_us()
        for module in (recording, credits, corrections):
            monkeypatch.setattr(module, "now_us", lambda: self.value)

    def at(self, instant: datetime) -> str:
        self.value = to_micros(instant) + 90_000_000  # recorded a minute and a half after it happened
        return instant.strftime("%Y-%m-%dT%H:%M:%SZ")


def seed_showcase(ledger, monkeypatch) -> None:
    """Units, a hybrid and a prepaid plan, six customers and ~8 weeks of usage, grants and corrections:
    `northwind` (hybrid, past its allowance, a late entry and a correction) and `bluefin` (prepaid,
    burning through top-ups towards its credit limit)."""
    rng = random.Random(20261124)
    clock = _Clock(monkeypatch)
    add_unit(ledger, "api_calls", "API calls", 0, "sum", actor="showcase")
    add_unit(ledger, "storage_gb", "Storage GB", 3, "sum", actor="showcase")
    save_plan(ledger, HYBRID_PLAN, actor="showcase")
    save_plan(ledger, PREPAID_PLAN, actor="showcase")
    customers = [
        ("northwind", "Northwind Traders", "scale", False),
        ("bluefin", "Bluefin Analytics", "payg", True),
        ("acme", "Acme Corp", "scale", False),
        ("globex", "Globex", "scale", False),
        ("initech", "Initech", "payg", True),
        ("umbrella", "Umbrella Health", "scale", False),
    ]
    for customer_id, name, plan, prepaid in customers:
        add_customer(ledger, customer_id, name, plan, prepaid=prepaid, credit_limit="25" if prepaid else None, actor="showcase")

    now = from_micros(now_us())
    start = (now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)).replace(day=1)
    this_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    # bluefin tops up 200 EUR whenever its balance runs low, until its card stopped working 17 days ago.
    top_ups_until = now - timedelta(days=17)
    clock.at(start + timedelta(hours=8))
    credits.grant_credits(ledger, "bluefin", "200", "topup-first", note="card top-up", actor="showcase")
    credits.grant_credits(ledger, "initech", "80", "topup-first", actor="showcase")

    hour = start
    last_entry = {}
    while hour + 2 * HOUR < now:
        day = (hour - start).days
        daytime = 0.35 + 0.65 * max(0.0, math.sin((hour.hour - 6) / 24 * 2 * math.pi))
        weekday = 0.55 if hour.weekday() >= 5 else 1.0
        growth = 1 + day / 45
        for customer_id, base in (("northwind", 1150), ("bluefin", 420)):
            amount = max(1, int(rng.gauss(base * daytime * weekday * growth, base * 0.18)))
            if customer_id == "bluefin" and hour.date() == (this_month + timedelta(days=15)).date() and hour.hour == 14:
                amount *= 12  # a runaway batch job
            when = hour + timedelta(minutes=rng.randrange(0, 110))
            result = recording.record_usage(ledger, customer_id, "api_calls", amount, f"{customer_id}-{when:%m%d%H%M}", occurred_at=clock.at(when), actor="showcase")
            last_entry[(customer_id, day)] = result.entry_id
            if result.balance is not None and result.balance < 40 and when < top_ups_until:
                credits.grant_credits(ledger, customer_id, "200", f"topup-{when:%m%d%H%M}", note="automatic top-up", actor="showcase")
        if hour.hour == 22:
            for customer_id, base in (("northwind", 2.6), ("bluefin", 0.8)):
                gigabytes = f"{max(0.001, rng.gauss(base * growth, base * 0.1)):.3f}"
                recording.record_usage(ledger, customer_id, "storage_gb", gigabytes, f"{customer_id}-gb-{hour:%m%d}", occurred_at=clock.at(hour + timedelta(minutes=30)), actor="showcase")
            for customer_id, base in (("acme", 900), ("globex", 2600), ("initech", 400), ("umbrella", 60)):
                amount = max(1, int(rng.gauss(base * growth, base * 0.3)))
                recording.record_usage(ledger, customer_id, "api_calls", amount, f"{customer_id}-{hour:%m%d}", occurred_at=clock.at(hour), actor="showcase")
        hour += 2 * HOUR

    # A batch sent twice on bluefin, corrected to 0 the next morning; a miscounted hour on northwind.
    for customer_id, day_offset, new_amount, reason in (("bluefin", 12, "0", "duplicate batch"), ("northwind", 6, "500", "meter reset double count")):
        entry = last_entry.get((customer_id, (this_month - start).days + day_offset))
        if entry is not None:
            clock.at(this_month + timedelta(days=day_offset + 1, hours=9))
            corrections.correct_entry(ledger, entry, new_amount, reason, actor="showcase")
    # Close last month for northwind, then a usage record for it that comes in late, today.
    clock.value = now_us()
    close_period(ledger, f"{start:%Y-%m}", customer="northwind", actor="showcase")
    late = (this_month - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recording.record_usage(ledger, "northwind", "api_calls", 25_000, "northwind-late-batch", occurred_at=late, actor="showcase")


@pytest.fixture
def showcase_ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("METERDESK_TIMEZONE", "Europe/Berlin")
    ledger = open_ledger(f"sqlite:///{tmp_path / 'showcase.sqlite3'}")
    with monkeypatch.context() as patched:
        seed_showcase(ledger, patched)
    yield ledger
    ledger.close()


def _screenshot_dir(tmp_path: Path) -> Path:
    given = os.environ.get("METERDESK_CHART_SCREENSHOTS")
    return Path(given) if given else tmp_path


@pytest.mark.slow
def test_screenshots_of_a_prepaid_and_a_hybrid_customer(qapp, showcase_ledger, tmp_path):
    folder = _screenshot_dir(tmp_path)
    shots = {
        "charts-prepaid.png": render_chart_page(showcase_ledger, "bluefin", folder / "charts-prepaid.png"),
        "charts-hybrid.png": render_chart_page(showcase_ledger, "northwind", folder / "charts-hybrid.png", hover=True),
        "charts-hybrid-90-days.png": render_chart_page(showcase_ledger, "northwind", folder / "charts-hybrid-90-days.png", preset="last_90_days"),
    }
    for path in shots.values():
        image = QImage(str(path))
        assert not image.isNull()
        assert (image.width(), image.height()) == (1280, 800)
