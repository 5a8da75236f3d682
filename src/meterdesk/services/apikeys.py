"""API keys of the usage API: created (the secret shown once), listed, revoked, and checked on every request."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from meterdesk.domain.errors import Conflict, InvalidInput, NotFound
from meterdesk.services.audit import record_audit
from meterdesk.services.context import default_actor, now_us
from meterdesk.services.shapes import timestamp
from meterdesk.store.apikeys import (
    ApiKeyRow,
    all_api_keys,
    api_key_by_hash,
    api_key_by_name,
    insert_api_key,
    revoke_api_key as revoke_row,
    touch_api_key,
)
from meterdesk.store.engine import Ledger

__all__ = ["ApiKeyRow", "KeyChecker", "create_api_key", "has_scope", "list_api_keys", "revoke_api_key"]

SCOPES = ("usage:write", "usage:read")
KEY_PREFIX = "mdk_"
SECRET_BYTES = 32  # 256 bits from the OS's CSPRNG: a plain SHA-256 of it is as good as any slow hash
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TOUCH_EVERY_US = 60 * 1_000_000  # last_used_at moves at most once a minute per key (and process)
MAX_PRESENTED_KEY = 200  # anything longer is not one of ours, and is not even hashed


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """A key as staff see it: everything but the secret, which is never stored."""

    row: ApiKeyRow

    @property
    def name(self) -> str:
        return self.row.name

    @property
    def scopes(self) -> tuple[str, ...]:
        return self.row.scopes

    @property
    def revoked(self) -> bool:
        return self.row.revoked_at is not None

    def to_json(self) -> dict:
        r = self.row
        return {
            "name": r.name,
            "scopes": list(r.scopes),
            "created_at": timestamp(r.created_at),
            "created_by": r.created_by,
            "last_used_at": None if r.last_used_at is None else timestamp(r.last_used_at),
            "revoked_at": None if r.revoked_at is None else timestamp(r.revoked_at),
        }


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key and its secret: the only time the secret exists outside the caller's hands."""

    info: ApiKeyInfo
    key: str

    def to_json(self) -> dict:
        return {"name": self.info.name, "scopes": list(self.info.scopes), "key": self.key}


def validate_key_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidInput(
            "name", "must be 1 to 64 characters: letters, digits, '_', '.' or '-', starting with a letter or digit"
        )
    return name


def parse_scopes(value: str | Iterable[str]) -> tuple[str, ...]:
    """Scopes from "usage:write,usage:read" (or a list), in SPEC order, each once; at least one."""
    parts = value.replace(" ", ",").split(",") if isinstance(value, str) else list(value)
    chosen = {part.strip() for part in parts if part.strip()}
    unknown = sorted(chosen - set(SCOPES))
    if unknown:
        raise InvalidInput("scope", f"unknown scope {unknown[0]!r}; the scopes are {', '.join(SCOPES)}")
    if not chosen:
        raise InvalidInput("scope", f"give at least one of {', '.join(SCOPES)}")
    return tuple(scope for scope in SCOPES if scope in chosen)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_api_key(ledger: Ledger, name: str, scopes, *, actor: str | None = None) -> CreatedKey:
    name = validate_key_name(name)
    scopes = parse_scopes(scopes)
    actor = actor or default_actor("cli")
    key = KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    with ledger.write() as connection:
        if api_key_by_name(connection, name) is not None:
            raise Conflict(f"name: an API key named {name!r} exists already (names are never reused, also after revoking)")
        try:
            with connection.begin_nested():
                row = insert_api_key(connection, name, scopes, hash_key(key), now_us(), actor)
        except IntegrityError:  # another process took the name between the check and the insert
            raise Conflict(f"name: an API key named {name!r} exists already") from None
        record_audit(connection, actor, "apikey.create", f"apikey:{name}", scopes=list(scopes))
    return CreatedKey(ApiKeyInfo(row), key)


def list_api_keys(ledger: Ledger) -> list[ApiKeyInfo]:
    with ledger.read() as connection:
        return [ApiKeyInfo(row) for row in all_api_keys(connection)]


def revoke_api_key(ledger: Ledger, name: str, *, actor: str | None = None) -> ApiKeyInfo:
    """Revoke a key by name: the next request made with it is refused, in every server process."""
    actor = actor or default_actor("cli")
    with ledger.write() as connection:
        row = api_key_by_name(connection, name)
        if row is None:
            raise NotFound(f"name: no API key named {name!r}")
        if not revoke_row(connection, row.id, now_us(), actor):
            raise Conflict(f"name: the API key {name!r} was revoked already, at {timestamp(row.revoked_at)}")
        record_audit(connection, actor, "apikey.revoke", f"apikey:{name}")
        row = api_key_by_name(connection, name)
    return ApiKeyInfo(row)


class KeyChecker:
    """Checks a presented key on every request: one lookup of its hash in the unique index, so a revocation
    made by any process is seen by the next request. `last_used_at` is written at most once a minute per
    key from this process, so the hot path stays a read."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._touched: dict[int, int] = {}
        self._lock = threading.Lock()

    def authenticate(self, presented: str) -> ApiKeyRow | None:
        """The key's row, or None for an unknown or revoked key (which the caller refuses alike)."""
        if not presented or len(presented) > MAX_PRESENTED_KEY or not presented.isascii():
            return None
        digest = hash_key(presented)
        with self.ledger.read() as connection:
            row = api_key_by_hash(connection, digest)
        # The lookup found the row by its hash; comparing again in constant time keeps the decision itself
        # free of any early-exit comparison whatever the database's index does.
        if row is None or not hmac.compare_digest(row.key_hash, digest) or row.revoked_at is not None:
            return None
        self._touch(row)
        return row

    def _touch(self, row: ApiKeyRow) -> None:
        now = now_us()
        with self._lock:
            last = self._touched.get(row.id, row.last_used_at or 0)
            if now - last < TOUCH_EVERY_US:
                return
            self._touched[row.id] = now
        with self.ledger.write() as connection:
            touch_api_key(connection, row.id, now)


def has_scope(row: ApiKeyRow, scope: str) -> bool:
    return scope in row.scopes
