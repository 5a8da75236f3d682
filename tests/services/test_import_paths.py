"""The ways an import reads and writes a batch all record the same ledger: in this process or a reader
process, request ids looked up first or left to the unique key."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from sqlalchemy import text

from meterdesk.services import imports
from meterdesk.services.credits import grant_credits
from meterdesk.services.summary import usage_summary
from meterdesk.services.imports import import_usage
from tests.services.helpers import ENTRY_INSERT, last_month_at, seed

LINES = [
    "acme,api_calls,100,r1,,first",
    "acme,api_calls,abc,r2,,",
    f"acme,storage_gb,1.25,r3,{last_month_at(3)},",
    "ghost,api_calls,5,r4,,",
    "bolt,api_calls,1000,r5,,prepaid",
    "acme,api_calls,100,r1,,same again",
    "acme,api_calls,7,r1,,conflicting",
    "acme,api_calls,5,r6,2999-01-01T00:00:00Z,",
    " acme , api_calls , 2.0 , r7 , ,",  # ids as written: customer ' acme ' is nobody (SPEC 2 "Ids")
    f"bolt,seats,3,r8,{last_month_at(4)},",
    "bolt,builds,1,r9,,",
] + [f"{'bolt' if n % 3 else 'acme'},api_calls,{n % 50 + 1},bulk-{n},," for n in range(60)]


@pytest.fixture
def seeded(ledger):
    seed(ledger)
    grant_credits(ledger, "bolt", "100", "g")
    return ledger


def _outcome(result) -> tuple:
    """What an import reports, errors by line and field (their messages may quote the time)."""
    return result.recorded, result.duplicates, result.rejected, [(e["line"], e["error"].split(":")[0]) for e in result.errors]


def _ledger_state(ledger) -> dict:
    with ledger.read() as connection:
        return {
            "entries": connection.execute(text(
                "SELECT customer_id, unit_id, quantity, period, request_id, charged FROM usage_entries ORDER BY customer_id, request_id"
            )).all(),
            "daily": connection.execute(text("SELECT * FROM usage_daily ORDER BY period, customer_id, unit_id, day")).all(),
            "balances": connection.execute(text("SELECT * FROM customer_balances ORDER BY customer_id")).all(),
        }


@pytest.mark.parametrize("reader_process", [False, True], ids=["in-process", "reader-process"])
def test_every_way_of_importing_records_the_same(seeded, tmp_path, monkeypatch, reader_process):
    from meterdesk.store.engine import open_ledger

    path = tmp_path / "usage.csv"
    path.write_text("customer,unit,amount,request_id,occurred_at,note\n" + "\n".join(LINES) + "\n")
    # Reference: one batch, request ids looked up, in this process, on a SQLite ledger of its own.
    reference = open_ledger(f"sqlite:///{tmp_path / 'reference.sqlite3'}")
    seed(reference)
    grant_credits(reference, "bolt", "100", "g")
    expected = import_usage(reference, path, batch_size=1000)
    expected_state = _ledger_state(reference)
    reference.close()
    # " r7 " is a padded request id: refused (SPEC 2 "Ids").
    assert (expected.recorded, expected.duplicates, expected.rejected) == (65, 1, 5)

    # Batches of 8, the unique key alone checking request ids after the first batch found none taken.
    monkeypatch.setattr(imports, "EXPECT_NEW_AFTER", 5)
    if reader_process:
        monkeypatch.setattr(imports, "READER_PROCESS_BYTES", 0)
    found = import_usage(seeded, path, batch_size=8)
    assert _outcome(found) == _outcome(expected)
    assert _ledger_state(seeded) == expected_state
    again = import_usage(seeded, path, batch_size=8)
    assert (again.recorded, again.duplicates, again.rejected) == (0, 66, 5)


def test_a_batch_expected_new_that_meets_a_recorded_request_id_falls_back(seeded, tmp_path, monkeypatch):
    monkeypatch.setattr(imports, "EXPECT_NEW_AFTER", 5)
    first = tmp_path / "first.csv"
    first.write_text("".join(f"bolt,api_calls,10,old-{n}\n" for n in range(10)))
    assert import_usage(seeded, first).recorded == 10
    second = tmp_path / "second.csv"
    lines = [f"bolt,api_calls,10,new-{n}" for n in range(10)] + [f"bolt,api_calls,10,old-{n}" for n in range(10)]
    lines += [f"bolt,api_calls,10,later-{n}" for n in range(10)]
    second.write_text("\n".join(lines) + "\n")
    result = import_usage(seeded, second, batch_size=10)
    assert (result.recorded, result.duplicates, result.rejected) == (20, 10, 0)
    summary = usage_summary(seeded, "bolt")
    api = next(u for u in summary.units if u.unit == "api_calls")
    assert api.quantity == Decimal(300) and api.entries == 30
    # 300 api calls at 0.002 charged from the 100 granted, once each.
    assert summary.balance == Decimal("99.4")


def test_bad_bytes_read_by_the_reader_process_are_a_rejected_line(seeded, tmp_path, monkeypatch):
    monkeypatch.setattr(imports, "READER_PROCESS_BYTES", 0)
    path = tmp_path / "usage.csv"
    path.write_bytes(b"acme,api_calls,1,r1\n\xff\xfe not utf-8\nacme,api_calls,1,r3\n")
    result = import_usage(seeded, path)
    assert (result.recorded, result.rejected) == (2, 1)
    assert result.errors == [{"line": 2, "error": "line: not valid UTF-8 (byte 0xFF at character 1); nothing on it was read"}]


def _this_period_at(ledger, second: int) -> str:
    """A UTC timestamp `second` seconds into the ledger's current period (the shape the fast lane reads)."""
    from datetime import UTC, datetime

    from meterdesk.services.context import now_us
    
    timeline = ledger.timeline
    start, _ = timeline.bounds(timeline.period_of(now_us()))
    return datetime.fromtimestamp(start // 1_000_000 + second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _fast_lane_file(ledger, path) -> None:
    clean = [f"{'bolt' if n % 3 else 'acme'},{'storage_gb' if n % 5 == 0 else 'api_calls'},{n % 7 + 1}{'.5' if n % 5 == 0 else ''},"
             f"fast-{n},{_this_period_at(ledger, n)}" for n in range(40)]
    seats = [f"bolt,seats,{n % 4 + 1},seat-{n},{_this_period_at(ledger, 100 + n)}" for n in range(8)]
    messy = [
        f"acme,api_calls,abc,bad-1,{_this_period_at(ledger, 200)}",  # a bad amount: its batch goes the general way
        f"ghost,api_calls,1,bad-2,{_this_period_at(ledger, 201)}",
        "",
        f"bolt,api_calls,5,fast-1,{_this_period_at(ledger, 1)}",  # the same request id, another event: a conflict
        f"bolt,api_calls,3,fast-2,{_this_period_at(ledger, 2)}",  # the same event again: a duplicate
        f"acme,api_calls,4,late-{0},{_this_period_at(ledger, 203)}",
    ]
    tail = [f"acme,api_calls,1,tail-{n},{_this_period_at(ledger, 300 + n)}" for n in range(8)]
    quoted = [f'acme,api_calls,2,"quoted-{n}",{_this_period_at(ledger, 400 + n)}' for n in range(3)] + ["bolt,api_calls,2,after-quotes,"]
    path.write_text("customer,unit,amount,request_id,occurred_at\n" + "\n".join(clean + seats + messy + tail + quoted) + "\n")


@pytest.mark.parametrize("rollup", ["loop", "arrays"])
@pytest.mark.parametrize("reader_process", [False, True], ids=["in-process", "reader-process"])
def test_the_fast_lane_records_what_the_general_path_records(seeded, tmp_path, monkeypatch, reader_process, rollup):
    """Clean batches go through the fast lane (services/column_reader.py, store/column_writer.py); the same file through the general path alone gives
    the same entries, rollup, balances, outcome and errors (line numbers included) — then again, as a re-run.
    The fast lane adds up a big batch's rollup with numpy ("arrays"): here every batch is made to."""
    from meterdesk.services import column_reader
    from meterdesk.store import column_writer
    from meterdesk.store.engine import open_ledger

    path = tmp_path / "usage.csv"
    _fast_lane_file(seeded, path)
    monkeypatch.setattr(imports, "EXPECT_NEW_AFTER", 5)
    monkeypatch.setattr(column_writer, "ARRAY_ROLLUP_ROWS", 0 if rollup == "arrays" else 1 << 40)
    if reader_process:
        monkeypatch.setattr(imports, "READER_PROCESS_BYTES", 0)

    reference = open_ledger(f"sqlite:///{tmp_path / 'reference.sqlite3'}")
    seed(reference)
    grant_credits(reference, "bolt", "100", "g")
    with monkeypatch.context() as general_only:
        general_only.setattr(column_reader.ColumnReader, "check", lambda *arguments: None)
        general_only.setattr(imports, "READER_PROCESS_BYTES", 1 << 40)
        expected = [import_usage(reference, path, batch_size=8) for _ in range(2)]
    expected_state = _ledger_state(reference)
    reference.close()
    assert (expected[0].recorded, expected[0].duplicates, expected[0].rejected) == (61, 1, 3)

    written = []
    original = column_writer.write_columns

    def counting(*arguments, **keywords):
        outcome = original(*arguments, **keywords)
        written.append(outcome)
        return outcome

    monkeypatch.setattr(imports, "write_columns", counting)
    found = [import_usage(seeded, path, batch_size=8) for _ in range(2)]
    if not reader_process:
        assert sum(1 for outcome in written if outcome is not None) >= 6, "the clean batches went through the fast lane"
    assert [_outcome(result) for result in found] == [_outcome(result) for result in expected]
    # Entry ids may differ (the general path inserts a batch in key order, the fast lane by customer or in file order).
    def errors(result) -> list:
        return [(error["line"], re.sub(r"entry \d+", "entry N", error["error"])) for error in result.errors]

    assert [errors(result) for result in found] == [errors(result) for result in expected]
    assert _ledger_state(seeded) == expected_state
    assert (found[1].recorded, found[1].duplicates) == (0, 62)


def test_batches_in_customer_order_report_their_lines_in_file_order(seeded, tmp_path, monkeypatch):
    """The reader process sends each clean batch in customer order (column_writer.by_customer). Lines the fast
    lane finds recorded as another event, and a batch it hands to the general path (a request id twice),
    are reported at their own line numbers in file order, and the ledger, balances included, is the one the
    general path alone records."""
    from meterdesk.services import column_reader
    from meterdesk.store import column_writer
    from meterdesk.store.engine import open_ledger

    first = tmp_path / "first.csv"
    second = tmp_path / "second.csv"
    customers = ["bolt", "acme", "bolt", "acme", "acme", "bolt"]
    first.write_text("".join(
        f"{customers[n % 6]},api_calls,{n % 9 + 1},id-{n},{_this_period_at(seeded, n)}\n" for n in range(30)))
    again = [f"{customers[n % 6]},api_calls,{n % 9 + (2 if n in (4, 11, 23) else 1)},id-{n},{_this_period_at(seeded, n)}"
             for n in range(30)]  # lines 5, 12 and 24: the same request ids, other amounts
    again += [f"{customers[n % 6]},api_calls,{n % 5 + 1},new-{n},{_this_period_at(seeded, 40 + n)}" for n in range(20)]
    again.insert(42, f"bolt,api_calls,3,new-2,{_this_period_at(seeded, 90)}")  # line 43: new-2 (line 33) again, another event
    again.append(f"acme,api_calls,7,id-1,{_this_period_at(seeded, 1)}")  # line 52: acme's id-1, another amount
    second.write_text("\n".join(again) + "\n")

    reference = open_ledger(f"sqlite:///{tmp_path / 'reference.sqlite3'}")
    seed(reference)
    grant_credits(reference, "bolt", "100", "g")
    with monkeypatch.context() as general_only:
        general_only.setattr(column_reader.ColumnReader, "check", lambda *arguments: None)
        general_only.setattr(imports, "READER_PROCESS_BYTES", 1 << 40)
        expected = [import_usage(reference, path, batch_size=32) for path in (first, second)]
    expected_state = _ledger_state(reference)
    reference.close()
    assert [error["line"] for error in expected[1].errors] == [5, 12, 24, 43, 52]

    monkeypatch.setattr(imports, "READER_PROCESS_BYTES", 0)
    batches = []
    original = column_writer.write_columns

    def recording(importer, batch, *arguments, **keywords):
        outcome = original(importer, batch, *arguments, **keywords)
        batches.append((batch.lines is not None, outcome is not None))
        return outcome

    monkeypatch.setattr(imports, "write_columns", recording)
    found = [import_usage(seeded, path, batch_size=32) for path in (first, second)]
    assert (True, True) in batches and (True, False) in batches, "customer-ordered batches, through the fast lane and past it"
    assert [_outcome(result) for result in found] == [_outcome(result) for result in expected]
    # Entry ids may differ: the fast lane inserts by customer.
    assert [re.sub(r"entry \d+", "entry N", e["error"]) for e in found[1].errors] == [
        re.sub(r"entry \d+", "entry N", e["error"]) for e in expected[1].errors]
    assert _ledger_state(seeded) == expected_state


def test_by_customer_keeps_each_customers_lines_in_file_order():
    from meterdesk.store.column_writer import ColumnBatch, by_customer

    batch = ColumnBatch(10, 14, 0, [3, 1, 3, 2, 1], [1, 1, 2, 1, 2], [5, 6, 7, 8, 9], [50, 60, 70, 80, 90], ["a", "b", "c", "d", "e"])
    ordered = by_customer(batch)
    assert ordered.customer_ids == [1, 1, 2, 3, 3] and ordered.request_ids == ["b", "e", "d", "a", "c"]
    assert ordered.quantities == [6, 9, 8, 5, 7] and ordered.occurred == [60, 90, 80, 50, 70] and ordered.unit_ids == [1, 2, 1, 1, 2]
    assert [ordered.line(i) for i in range(5)] == [11, 14, 13, 10, 12]
    assert [batch.line(i) for i in range(5)] == [10, 11, 12, 13, 14]
    assert by_customer(ordered) is ordered


def test_by_customer_orders_a_big_batch_as_a_small_one(monkeypatch):
    """Batches from NUMPY_ORDER_ROWS lines up are put in order through numpy; a quantity beyond 64 bits
    (16 digits with 6 decimals) is still taken exactly."""
    import random

    from meterdesk.store import column_writer
    from meterdesk.store.column_writer import ColumnBatch, by_customer

    rnd = random.Random(7)
    n = 500
    batch = ColumnBatch(
        3, n + 2, 0, [rnd.randrange(1, 40) for _ in range(n)], [rnd.randrange(1, 6) for _ in range(n)],
        [rnd.randrange(1, 10**6) for _ in range(n - 1)] + [9_999_999_999_999_999_999_999], [1_756_684_802_000_000 + i for i in range(n)],
        [f"r-{i}" for i in range(n)],
    )
    plain = by_customer(batch)
    monkeypatch.setattr(column_writer, "NUMPY_ORDER_ROWS", 2)
    through_numpy = by_customer(batch)
    assert through_numpy == plain
    assert all(type(value) is int for column in through_numpy[3:7] for value in column)
    assert [plain.line(i) for i in range(n)] == sorted(range(3, n + 3), key=lambda line: (batch.customer_ids[line - 3], line))


def test_the_column_reader_scales_amounts_as_the_general_parser():
    """Whole amounts are scaled by the unit's decimals in one pass; those with a fractional part one by one,
    and a batch with one the general parser must word (more places than the unit allows) is declined."""
    from meterdesk.services.column_reader import ColumnReader
    from meterdesk.domain.units import MAX_SCALED_AMOUNTS, plain_quantity

    reader = ColumnReader(None, 5, MAX_SCALED_AMOUNTS, lambda now: now)
    reader.unit_decimals.update({"calls": 0, "gb": 3, "seats": 0})
    texts = ["7", "1.5", "2", "0.125", "12", "3.0", "40.25", "9"]
    units = ["calls", "gb", "gb", "gb", "seats", "calls", "gb", "gb"]
    expected = [plain_quantity(text, reader.unit_decimals[unit]) for text, unit in zip(texts, units)]
    assert reader._amounts(texts, units) == expected == [7, 1500, 2000, 125, 12, 3, 40250, 9000]
    assert reader._amounts(["1", "2"], ["calls", "seats"]) == [1, 2]
    assert reader._amounts(["1", "0.0005"], ["calls", "gb"]) is None  # four places for a unit of three
    assert reader._amounts(["1", "2.5"], ["calls", "calls"]) is None  # a fraction of a whole unit


def test_the_fast_lane_stores_quotes_and_backslashes_as_given(seeded, tmp_path, monkeypatch):
    """Its constants go into the statement (SQLite) or a COPY text (PostgreSQL): both must keep them exact."""
    from meterdesk.store import column_writer

    written = []
    original = column_writer.write_columns
    monkeypatch.setattr(imports, "write_columns", lambda *a, **k: written.append(original(*a, **k)) or written[-1])
    path = tmp_path / "usage.csv"
    ids = ["back\\slash-1", "tab\\t-2", "quote'3", "plain-4"]
    path.write_text("".join(f"acme,api_calls,{n + 1},{request_id},{_this_period_at(seeded, n)}\n" for n, request_id in enumerate(ids)))
    actor = "O'Brien \\ billing\tops"
    result = import_usage(seeded, path, actor=actor)
    assert (result.recorded, result.rejected) == (4, 0)
    assert written and written[0] is not None, "the batch went through the fast lane"
    with seeded.read() as connection:
        stored = connection.execute(text("SELECT request_id, actor, source, kind FROM usage_entries ORDER BY quantity")).all()
    assert [tuple(row) for row in stored] == [(request_id, actor, "import", "usage") for request_id in ids]


def test_foreign_keys_are_checked_again_after_a_fast_lane_import(seeded, tmp_path):
    """SQLite's fast lane writes with the per-row foreign key checks off; the connection gets them back."""
    from sqlalchemy.exc import IntegrityError

    path = tmp_path / "usage.csv"
    path.write_text("".join(f"acme,api_calls,{n + 1},fk-{n},{_this_period_at(seeded, n)}\n" for n in range(20)))
    assert import_usage(seeded, path).recorded == 20
    for _ in range(3):  # whichever kept connection the next write gets
        with pytest.raises(IntegrityError):
            with seeded.write() as connection:
                connection.execute(text(ENTRY_INSERT.replace("VALUES (1, 1,", "VALUES (999, 1,")),
                                   {"request_id": "fk-bad", "kind": "usage", "source": "cli"})


TIERED_PLAN = {
    "code": "tiered",
    "name": "Tiered",
    "currency": "EUR",
    "base_fee": "0",
    "charges": [
        {"unit": "api_calls", "model": "graduated", "included": "5", "tiers": [
            {"up_to": "20", "unit_price": "0.0125", "flat_fee": "0.50"}, {"up_to": "60", "unit_price": "0.003"},
            {"unit_price": "0.0001234", "flat_fee": "0.07"}]},
        {"unit": "storage_gb", "model": "volume", "tiers": [
            {"up_to": "2.5", "unit_price": "0.333333"}, {"unit_price": "0.1234567", "flat_fee": "1"}]},
        {"unit": "seats", "model": "package", "package_size": "3", "package_price": "2.999"},
        {"unit": "builds", "model": "graduated", "tiers": [{"up_to": "3", "unit_price": "0"}, {"unit_price": "0.4"}]},
    ],
}


def test_the_fast_lane_prices_every_model_as_the_general_path(seeded, tmp_path, monkeypatch):
    """A prepaid customer on graduated, volume and package charges over sum, max and count units: the
    fast lane's integer pricing charges each line what the general path's Decimal pricing charges."""
    from meterdesk.services import column_reader
    from meterdesk.store import column_writer
    from meterdesk.services.catalog import add_customer, save_plan
    from meterdesk.store.engine import open_ledger

    units = ["api_calls", "storage_gb", "seats", "builds"]
    amounts = {"api_calls": lambda n: str(n % 9 + 1), "storage_gb": lambda n: f"0.{n % 7 + 1}25", "seats": lambda n: str(n % 11 + 1), "builds": lambda n: "1"}
    lines = [f"cora,{units[n % 4]},{amounts[units[n % 4]](n)},tier-{n},{_this_period_at(seeded, n)}" for n in range(120)]
    path = tmp_path / "tiered.csv"
    path.write_text("customer,unit,amount,request_id,occurred_at\n" + "\n".join(lines) + "\n")

    def prepare(ledger) -> None:
        save_plan(ledger, TIERED_PLAN, actor="tests")
        add_customer(ledger, "cora", "Cora", "tiered", prepaid=True, credit_limit="1000", actor="tests")
        grant_credits(ledger, "cora", "10", "g")

    reference = open_ledger(f"sqlite:///{tmp_path / 'reference.sqlite3'}")
    seed(reference)
    grant_credits(reference, "bolt", "100", "g")
    prepare(reference)
    with monkeypatch.context() as general_only:
        general_only.setattr(column_reader.ColumnReader, "check", lambda *arguments: None)
        general_only.setattr(imports, "READER_PROCESS_BYTES", 1 << 40)
        expected = import_usage(reference, path, batch_size=16)
    expected_state = _ledger_state(reference)
    reference.close()

    prepare(seeded)
    written = []
    original = column_writer.write_columns
    monkeypatch.setattr(imports, "write_columns", lambda *a, **k: written.append(original(*a, **k)) or written[-1])
    monkeypatch.setattr(imports, "READER_PROCESS_BYTES", 1 << 40)
    found = import_usage(seeded, path, batch_size=16)
    assert len(written) >= 6 and all(outcome is not None for outcome in written), "every batch went through the fast lane"
    assert _outcome(found) == _outcome(expected) == (120, 0, 0, [])
    state = _ledger_state(seeded)
    assert state == expected_state
    assert len({row.charged for row in state["entries"]}) > 10  # the lines were really charged, differently


def test_a_failure_while_the_copy_runs_writes_nothing_and_leaves_the_ledger_usable(seeded, tmp_path, monkeypatch):
    """On PostgreSQL the slices are priced while the COPY is under way: when pricing fails the COPY is
    abandoned, the batch rolls back, and the ledger takes the next import."""
    from meterdesk.store import column_writer

    path = tmp_path / "usage.csv"
    path.write_text("".join(f"bolt,api_calls,{n % 5 + 1},boom-{n},{_this_period_at(seeded, n)}\n" for n in range(30)))
    grant_credits(seeded, "bolt", "100", "g")

    def failing(*arguments):
        raise RuntimeError("pricing failed")

    with monkeypatch.context() as broken:
        broken.setattr(column_writer._Charger, "charge", failing)
        with pytest.raises(RuntimeError, match="pricing failed"):
            import_usage(seeded, path)
    with seeded.read() as connection:
        assert connection.execute(text("SELECT count(*) FROM usage_entries WHERE request_id LIKE 'boom-%'")).scalar() == 0
        assert connection.execute(text("SELECT coalesce(sum(entries), 0) FROM usage_daily")).scalar() == 0
    result = import_usage(seeded, path)
    assert (result.recorded, result.rejected) == (30, 0)


@pytest.mark.parametrize("general", [False, True], ids=["fast-lane", "general-path"])
def test_an_import_leaves_the_wal_copied_and_its_connections_checkpointing_again(seeded, tmp_path, monkeypatch, general):
    """SQLite: the batches' WAL checkpoints run on a thread (store/engine.py BackgroundCheckpoints); when the
    import ends everything is in the database file, the WAL is empty, and the ledger's connections take up
    their own automatic checkpoints again."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from meterdesk.services import column_reader

    if seeded.dialect != "sqlite":
        pytest.skip("PostgreSQL has no WAL checkpoints of its own to move")
    path = tmp_path / "usage.csv"
    _fast_lane_file(seeded, path)
    monkeypatch.setattr(imports, "EXPECT_NEW_AFTER", 5)
    monkeypatch.setattr(imports, "READER_PROCESS_BYTES", 0)
    if general:
        monkeypatch.setattr(column_reader.ColumnReader, "check", lambda *arguments: None)
    result = import_usage(seeded, path, batch_size=8)
    assert (result.recorded, result.duplicates) == (61, 1)
    database = Path(make_url(seeded.url).database)
    assert database.with_name(database.name + "-wal").stat().st_size == 0
    with seeded.write() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    with seeded.read() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM usage_entries").scalar() == 61
