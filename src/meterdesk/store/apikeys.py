"""The API keys table (migration 0008): plain frozen rows in, plain frozen rows out."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.engine import Connection

from meterdesk.store.schema import api_keys


@dataclass(frozen=True, slots=True)
class ApiKeyRow:
    id: int
    name: str
    scopes: tuple[str, ...]
    key_hash: str
    created_at: int
    created_by: str
    last_used_at: int | None
    revoked_at: int | None
    revoked_by: str | None


def _row(row) -> ApiKeyRow:
    return ApiKeyRow(
        id=row.id,
        name=row.name,
        scopes=tuple(row.scopes.split()),
        key_hash=row.key_hash,
        created_at=row.created_at,
        created_by=row.created_by,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
    )


def insert_api_key(connection: Connection, name: str, scopes: tuple[str, ...], key_hash: str, at: int, by: str) -> ApiKeyRow:
    """Insert a key; the unique name and hash are the database's to enforce (IntegrityError when taken)."""
    connection.execute(
        api_keys.insert().values(name=name, scopes=" ".join(scopes), key_hash=key_hash, created_at=at, created_by=by)
    )
    found = api_key_by_name(connection, name)
    assert found is not None
    return found


def api_key_by_name(connection: Connection, name: str) -> ApiKeyRow | None:
    row = connection.execute(select(api_keys).where(api_keys.c.name == name)).first()
    return None if row is None else _row(row)


def api_key_by_hash(connection: Connection, key_hash: str) -> ApiKeyRow | None:
    """The key whose secret hashes to `key_hash` (one lookup in the unique index), revoked or not."""
    row = connection.execute(select(api_keys).where(api_keys.c.key_hash == key_hash)).first()
    return None if row is None else _row(row)


def all_api_keys(connection: Connection) -> list[ApiKeyRow]:
    return [_row(row) for row in connection.execute(select(api_keys).order_by(api_keys.c.name))]


def revoke_api_key(connection: Connection, key_id: int, at: int, by: str) -> bool:
    """Mark the key revoked; False when it already was (the first revocation is kept)."""
    result = connection.execute(
        api_keys.update()
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=at, revoked_by=by)
    )
    return result.rowcount == 1


def touch_api_key(connection: Connection, key_id: int, at: int) -> None:
    """Note that the key was used at `at` (never moves last_used_at backwards)."""
    connection.execute(
        api_keys.update()
        .where(api_keys.c.id == key_id)
        .where((api_keys.c.last_used_at.is_(None)) | (api_keys.c.last_used_at < at))
        .values(last_used_at=at)
    )
