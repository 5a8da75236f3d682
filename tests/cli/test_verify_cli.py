"""`meterdesk verify` through a subprocess: exit 0 on a clean ledger, 4 with each difference printed."""

from __future__ import annotations

from meterdesk.store.engine import open_ledger
from tests.services.helpers import last_month
from tests.services.test_verify import build_ledger, tamper


def test_verify_exits_0_on_a_clean_ledger_and_4_on_a_difference(cli, ledger_url):
    ledger = open_ledger(ledger_url)
    try:
        build_ledger(ledger)
        clean = cli("verify")
        assert clean.status == 0, clean.stderr + clean.stdout
        assert clean.stdout.startswith("ok; checked ") and clean.stderr == ""
        document = cli("verify", "--json")
        assert document.status == 0
        assert document.json["ok"] is True and document.json["differences"] == []
        assert document.json["checked"]["invoices"] == 3

        tamper(ledger, "UPDATE settlements SET state = 'finalized' WHERE invoice_id = "
                       "(SELECT id FROM invoices WHERE customer_id = (SELECT id FROM customers WHERE external_id = 'acme'))")
        tamper(ledger, "UPDATE usage_daily SET entries = entries + 2 WHERE customer_id = "
                       "(SELECT id FROM customers WHERE external_id = 'bolt') AND period = :period "
                       "AND day = (SELECT min(day) FROM usage_daily WHERE period = :period AND customer_id = "
                       "(SELECT id FROM customers WHERE external_id = 'bolt'))", period=last_month())
    finally:
        ledger.close()
    found = cli("verify")
    assert found.status == 4
    lines = found.stdout.splitlines()
    assert lines[-1].startswith("4 difference(s); checked "), "\n".join(lines)
    assert any(line.startswith("invoice ") and " acme " in line and "settlement (finalized): expected a Stripe invoice id, found none" in line for line in lines), lines
    assert any(" acme " in line and "settlement (finalized): expected the customer's Stripe id, found none" in line for line in lines), lines
    assert any(line.startswith(f"usage_daily bolt {last_month()} ") and " entries: expected " in line for line in lines), lines
    assert found.stderr.strip() == "error: verify found 4 difference(s) between the stored figures and the entries"
    document = cli("verify", "--json")
    assert document.status == 4
    assert document.json["ok"] is False
    assert [set(d) for d in document.json["differences"]] == [{"what", "expected", "found"}] * 4
