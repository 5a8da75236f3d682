"""Upgrading a ledger's schema, the use case behind `meterdesk db upgrade`."""

from __future__ import annotations

import pytest

from meterdesk.domain.errors import Unavailable
from meterdesk.services.ledgers import upgrade_database
from meterdesk.store.migrate import HEAD_REVISION
from tests.support.postgres import free_port


def test_a_new_database_is_created_at_the_newest_revision_and_then_left_there(tmp_path):
    url = f"sqlite:///{tmp_path / 'new.sqlite'}"
    assert upgrade_database(url) == (f"SQLite {tmp_path / 'new.sqlite'}", None, HEAD_REVISION)
    assert upgrade_database(url) == (f"SQLite {tmp_path / 'new.sqlite'}", HEAD_REVISION, HEAD_REVISION)


def test_a_ledger_in_use_is_already_at_the_newest_revision(ledger_url):
    _name, before, after = upgrade_database(ledger_url)
    assert before == after == HEAD_REVISION


def test_an_unreachable_database_is_unavailable_naming_it():
    with pytest.raises(Unavailable, match=r"cannot migrate .*nothing"):
        upgrade_database(f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/nothing")
