"""Closing a period and settling it: 1,000 customers' invoices frozen, then sent to the local Stripe test server.

meterdesk: `services.billing.close_period` for the month, then `services.settlement.settle` through the
real stripe library against `meterdesk.testing.stripe_server` (in this process, on a local port). Reported:
the time of each, and how many Stripe requests one invoice takes. There is no baseline: Stripe's side is
a test server, so the figures say what meterdesk adds, not what Stripe would take.
"""

from __future__ import annotations

import time

from bench import data, ledgers
from bench.harness import REPORTED, Context, Result, not_available

SCENARIO = "settlement"
EVENTS = 100_000


def run(context: Context) -> list[Result]:
    customers = context.sizes.settlement_customers
    names = (f"close the period, {customers:,} customers", f"settle {customers:,} invoices", "Stripe requests per invoice")
    units = ("s", "s", "requests")
    try:
        from meterdesk.services.billing import close_period
        from meterdesk.services.settlement import settle
        from meterdesk.stripe_gateway import StripeGateway
        from meterdesk.testing.stripe_server import StripeTestServer
    except ImportError as error:
        return [not_available(SCENARIO, name, unit, REPORTED, f"settlement is not there yet ({error})") for name, unit in zip(names, units)]
    from meterdesk.store.engine import open_ledger

    path = context.work_dir / "settlement.sqlite3"
    ledgers.copy_sqlite(ledgers.sqlite_base(), path)
    events = data.generate_events(EVENTS if not context.quick else 5_000)
    ledgers.load_sqlite(path, events)
    ledger = open_ledger(f"sqlite:///{path}", upgrade=False)
    try:
        chosen = [spec.external_id for spec in data.customer_specs()][:customers]
        context.log(f"settlement: closing {data.PERIOD} for {customers:,} customers")
        start = time.perf_counter()
        if customers == data.CUSTOMERS:
            closed = close_period(ledger, data.PERIOD, actor="bench").invoices
        else:
            closed = [invoice for customer in chosen for invoice in close_period(ledger, data.PERIOD, customer=customer, actor="bench").invoices]
        close_s = time.perf_counter() - start
        if len(closed) != customers:
            raise RuntimeError(f"closing the period made {len(closed)} invoices, expected {customers}")
        with StripeTestServer() as server:
            gateway = StripeGateway(api_key="sk_test_meterdesk_bench", api_base=server.url)
            try:
                context.log(f"settlement: sending {customers:,} invoices to the local Stripe test server")
                start = time.perf_counter()
                result = settle(ledger, period=data.PERIOD, gateway=gateway, actor="bench")
                settle_s = time.perf_counter() - start
            finally:
                gateway.close()
            requests = len(server.requests)
        if result.failed:
            raise RuntimeError(f"{len(result.failed)} invoices failed to settle: {result.failed[0]}")
    finally:
        ledger.close()
        ledgers.remove_sqlite(path)
    return [
        Result(SCENARIO, names[0], close_s, "s", note=f"{close_s / customers * 1000:.1f} ms per invoice, one transaction each"),
        Result(SCENARIO, names[1], settle_s, "s", note=f"{settle_s / customers * 1000:.1f} ms per invoice, real stripe library, local test server"),
        Result(SCENARIO, names[2], requests / customers, "requests", note=f"{requests:,} requests for {customers:,} invoices"),
    ]
