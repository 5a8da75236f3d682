"""A short seeded soak on each database: several processes mixing every kind of write, then exactly-once and verify.

`tools/soak.py --minutes N` runs the same soak longer (src/meterdesk/testing/soak.py).
"""

from __future__ import annotations

import pytest

from meterdesk.testing.soak import run_soak

pytestmark = pytest.mark.slow

SECONDS = 25
SEED = 20261


def test_a_short_soak_leaves_a_ledger_that_verifies(ledger_url):
    report = run_soak(ledger_url, seconds=SECONDS, seed=SEED, processes=4)
    print(report.summary())
    assert report.ok, "\n" + report.summary()
    # It did what it is there for: every kind of write from every process, collisions, late usage.
    for outcome in report.outcomes:
        assert all(outcome.operations[kind] for kind in ("record", "import", "correct", "grant", "close")), outcome.operations
    assert sum(o.late for o in report.outcomes) > 0
    acknowledgements = sum(o.acknowledgements for o in report.outcomes)
    assert len(set().union(*(o.usage for o in report.outcomes))) < acknowledgements  # request ids collided
    assert report.checked["invoices"] == 8 and report.checked["corrections"] > 0
