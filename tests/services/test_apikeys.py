"""API keys: the secret is shown once and stored as a hash; revoking takes effect on the next check."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import select

from meterdesk.domain.errors import Conflict, InvalidInput, NotFound
from meterdesk.services import apikeys
from meterdesk.services.apikeys import KeyChecker, create_api_key, list_api_keys, revoke_api_key
from meterdesk.store.schema import api_keys, audit_log


def test_a_key_is_stored_only_as_the_hash_of_its_secret(ledger):
    created = create_api_key(ledger, "billing-backend", "usage:write,usage:read", actor="alice")
    assert created.key.startswith("mdk_") and len(created.key) > 40
    assert created.to_json() == {"name": "billing-backend", "scopes": ["usage:write", "usage:read"], "key": created.key}
    with ledger.read() as connection:
        stored = connection.execute(select(api_keys)).one()._mapping
        assert created.key not in {str(value) for value in stored.values()}
        assert stored["key_hash"] == hashlib.sha256(created.key.encode()).hexdigest()
        assert connection.execute(select(audit_log.c.action).where(audit_log.c.subject == "apikey:billing-backend")).scalar() == "apikey.create"
    listed = [info.to_json() for info in list_api_keys(ledger)]
    assert listed == [{
        "name": "billing-backend", "scopes": ["usage:write", "usage:read"], "created_at": listed[0]["created_at"],
        "created_by": "alice", "last_used_at": None, "revoked_at": None,
    }]
    assert "key" not in listed[0]


def test_two_keys_never_share_a_secret(ledger):
    assert create_api_key(ledger, "a", "usage:read").key != create_api_key(ledger, "b", "usage:read").key


def test_the_checker_accepts_the_key_and_refuses_others(ledger):
    created = create_api_key(ledger, "ingest", ["usage:write"])
    checker = KeyChecker(ledger)
    row = checker.authenticate(created.key)
    assert row is not None and row.name == "ingest" and row.scopes == ("usage:write",)
    assert checker.authenticate(created.key[:-1]) is None
    assert checker.authenticate(created.key + "x") is None
    assert checker.authenticate("") is None
    assert checker.authenticate("é" * 10) is None
    assert checker.authenticate("x" * 100_000) is None


def test_a_revoked_key_is_refused_on_the_next_check(ledger):
    created = create_api_key(ledger, "ingest", "usage:write")
    checker = KeyChecker(ledger)
    assert checker.authenticate(created.key) is not None
    info = revoke_api_key(ledger, "ingest", actor="bob")
    assert info.revoked and info.to_json()["revoked_at"].endswith("Z")
    assert checker.authenticate(created.key) is None
    with pytest.raises(Conflict):
        revoke_api_key(ledger, "ingest")
    with pytest.raises(NotFound):
        revoke_api_key(ledger, "nobody")


def test_last_used_moves_at_most_once_a_minute(ledger, monkeypatch):
    created = create_api_key(ledger, "ingest", "usage:write")
    checker = KeyChecker(ledger)
    clock = [1_800_000_000_000_000]
    monkeypatch.setattr(apikeys, "now_us", lambda: clock[0])
    checker.authenticate(created.key)
    first = list_api_keys(ledger)[0].row.last_used_at
    assert first == clock[0]
    clock[0] += 30_000_000
    checker.authenticate(created.key)
    assert list_api_keys(ledger)[0].row.last_used_at == first
    clock[0] += 31_000_000
    checker.authenticate(created.key)
    assert list_api_keys(ledger)[0].row.last_used_at == clock[0]


@pytest.mark.parametrize(("name", "scopes", "field"), [
    ("", "usage:read", "name"),
    ("has space", "usage:read", "name"),
    ("-leading", "usage:read", "name"),
    ("x" * 65, "usage:read", "name"),
    ("ok", "usage:admin", "scope"),
    ("ok", "", "scope"),
])
def test_bad_names_and_scopes_are_refused(ledger, name, scopes, field):
    with pytest.raises(InvalidInput) as refused:
        create_api_key(ledger, name, scopes)
    assert refused.value.field == field
    assert list_api_keys(ledger) == []


def test_a_name_is_never_reused(ledger):
    create_api_key(ledger, "ingest", "usage:write")
    revoke_api_key(ledger, "ingest")
    with pytest.raises(Conflict):
        create_api_key(ledger, "ingest", "usage:write")
