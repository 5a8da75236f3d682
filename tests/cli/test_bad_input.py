"""SPEC section 5 through the command line: the right exit status, a message naming the field, nothing written."""

from __future__ import annotations

import pytest

from tests.services.helpers import last_month_at

NOTHING_WRITTEN = ("usage", "list", "--json")

BAD_INPUTS = [
    # (arguments, exit status, words the message must contain)
    (("usage", "record", "ghost", "api_calls", "1", "--request-id", "x"), 5, "customer"),
    (("usage", "record", "acme", "furlongs", "1", "--request-id", "x"), 5, "unit"),
    (("usage", "record", "acme", "api_calls", "ten", "--request-id", "x"), 3, "amount"),
    (("usage", "record", "acme", "api_calls", "NaN", "--request-id", "x"), 3, "amount"),
    (("usage", "record", "acme", "api_calls", "inf", "--request-id", "x"), 3, "amount"),
    (("usage", "record", "acme", "api_calls", "1e16", "--request-id", "x"), 3, "amount"),
    (("usage", "record", "acme", "api_calls", "1.5", "--request-id", "x"), 3, "amount"),
    (("usage", "record", "acme", "api_calls", "0", "--request-id", "x"), 3, "amount"),
    (("usage", "record", "acme", "api_calls", "-3", "--request-id", "x"), 3, "amount"),
    (("usage", "record", "acme", "api_calls", "1", "--request-id", ""), 3, "request_id"),
    (("usage", "record", "acme", "api_calls", "1", "--request-id", "r" * 256), 3, "request_id"),
    (("usage", "record", "acme", "api_calls", "1", "--request-id", "x", "--at", "tomorrow"), 3, "occurred_at"),
    (("usage", "record", "acme", "api_calls", "1", "--request-id", "x", "--at", "2999-01-01T00:00:00Z"), 3, "occurred_at"),
    (("usage", "record", "acme", "api_calls"), 2, "amount"),
    (("usage", "correct", "999999", "1", "--reason", "r"), 5, "entry"),
    (("usage", "correct", "abc", "1", "--reason", "r"), 3, "entry_id"),
    (("usage", "summary", "acme", "--period", "2026-13"), 3, "period"),
    (("customer", "add", "new", "--name", "New", "--plan", "nope"), 5, "plan"),
    (("customer", "add", "acme", "--name", "Again", "--plan", "pro"), 4, "acme"),
    (("customer", "add", "new", "--name", "New", "--plan", "pro", "--email", "not-an-email"), 3, "email"),
    (("credits", "grant", "acme", "10", "--request-id", "g"), 3, "customer"),
    (("credits", "grant", "bolt", "-10", "--request-id", "g"), 3, "amount"),
    (("unit", "add", "Bad-Code", "--name", "x"), 3, "code"),
    (("unit", "add", "fine", "--name", "x", "--decimals", "9"), 3, "decimals"),
    (("frobnicate",), 2, "frobnicate"),
]


@pytest.fixture
def seeded_cli(cli):
    from meterdesk.store.engine import open_ledger
    from tests.services.helpers import seed

    ledger = open_ledger(cli.url)
    seed(ledger)
    ledger.close()
    run = cli("usage", "record", "acme", "api_calls", "10", "--request-id", "existing", "--at", last_month_at(2))
    assert run.status == 0, run.stderr
    return cli


def test_bad_input_is_refused_with_the_right_status_and_nothing_written(seeded_cli):
    cli = seeded_cli
    before = cli(*NOTHING_WRITTEN).stdout
    units_before = cli("unit", "list", "--json").stdout
    failures = []
    for arguments, status, words in BAD_INPUTS:
        run = cli(*arguments)
        lines = run.stderr.strip().splitlines()
        if run.status != status or len(lines) != 1 or not lines[0].startswith("error: ") or words not in lines[0] or run.stdout:
            failures.append((arguments[:3], run.status, run.stderr.strip()[:200]))
    assert failures == []
    assert cli(*NOTHING_WRITTEN).stdout == before
    assert cli("unit", "list", "--json").stdout == units_before


def test_bad_plan_files_are_refused(seeded_cli, tmp_path):
    cli = seeded_cli
    cases = {
        "unsorted.toml": 'code = "x"\nname = "X"\ncurrency = "EUR"\nbase_fee = "1"\n[[charges]]\nunit = "api_calls"\nmodel = "graduated"\n'
        'tiers = [ { up_to = "200", unit_price = "1" }, { up_to = "100", unit_price = "1" }, { unit_price = "1" } ]\n',
        "currency.json": '{"code": "x", "name": "X", "currency": "EURO", "base_fee": "1"}',
        "negative.json": '{"code": "x", "name": "X", "currency": "EUR", "base_fee": "-1"}',
        "float.json": '{"code": "x", "name": "X", "currency": "EUR", "base_fee": 1.5}',
        "unknown_unit.json": '{"code": "x", "name": "X", "currency": "EUR", "base_fee": "1", "charges": [{"unit": "nope", "model": "per_unit", "unit_price": "1"}]}',
        "broken.toml": "code = ",
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        run = cli("plan", "import", str(path))
        assert run.status == 3, (name, run.stderr)
        assert run.stderr.startswith("error: ") and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert [p["code"] for p in cli("plan", "list", "--json").json["plans"]] == ["pro", "starter"]


def test_currency_mismatch_is_refused(seeded_cli, tmp_path):
    cli = seeded_cli
    path = tmp_path / "usd.json"
    path.write_text('{"code": "pro", "name": "Pro", "currency": "USD", "base_fee": "1"}')
    run = cli("plan", "import", str(path))
    assert run.status == 3 and "currency" in run.stderr


def test_closed_period_is_a_conflict(seeded_cli):
    cli = seeded_cli
    from tests.services.helpers import this_month

    run = cli("period", "close", this_month())
    assert run.status == 4 and "period" in run.stderr


def test_unreachable_database_is_exit_6():
    from tests.cli.conftest import Cli
    from tests.support.postgres import free_port

    run = Cli(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/nothing")("unit", "list")
    assert run.status == 6
    assert run.stderr.startswith("error: ") and len(run.stderr.strip().splitlines()) == 1
