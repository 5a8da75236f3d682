"""Exporting a chart: the picture as PNG (SVG export is broken on PySide6) and its numbers as CSV."""

from __future__ import annotations

import csv
from pathlib import Path

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QWidget

from meterdesk.services.shapes import exact_money, plain, timestamp
from meterdesk.ui.charts.model import ChartModel
from meterdesk.ui.charts.style import local_time

CSV_COLUMNS = ("customer", "series", "unit", "start", "end", "start_local", "value", "cumulative", "reversals")


def write_png(widget: QWidget, path: str | Path) -> QSize:
    """Grab the widget as it is drawn (the whole chart, header included) and save it as PNG."""
    pixmap = widget.grab()
    if not pixmap.save(str(path), "PNG"):
        raise OSError(f"could not write {path}")
    return pixmap.size()


def csv_rows(model: ChartModel):
    """The chart's numbers, exact: one row per unit bucket the series has, then the balance per bucket.

    `value` is the bucket's quantity (usage) or the balance at the bucket's end (balance); `cumulative`
    is the period-cumulative (for a `max` unit the period's peak so far). Instants are UTC, as in the
    command line's JSON; `start_local` is the bucket's start in the billing time zone.
    """
    for track in model.units:
        for index, (start, end) in enumerate(zip(track.starts_us.tolist(), track.ends_us.tolist())):
            yield {
                "customer": model.customer,
                "series": "usage",
                "unit": track.code,
                "start": timestamp(start),
                "end": timestamp(end),
                "start_local": local_time(start, model.timezone).isoformat(),
                "value": plain(track.values[index]),
                "cumulative": plain(track.cumulative[index]),
                "reversals": track.reversals.get(start, 0),
            }
    if model.balance is not None:
        edges = model.edges_us.tolist()
        for index, value in enumerate(model.balance.balances):
            start = edges[index]
            yield {
                "customer": model.customer,
                "series": "balance",
                "unit": model.currency,
                "start": timestamp(start),
                "end": timestamp(int(model.balance.at_us[index])),
                "start_local": local_time(start, model.timezone).isoformat(),
                "value": exact_money(value),
                "cumulative": "",
                "reversals": "",
            }


def write_csv(model: ChartModel, path: str | Path) -> int:
    count = 0
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in csv_rows(model):
            writer.writerow(row)
            count += 1
    return count
