"""Watching the database connections a ledger's engine hands out, to check that none is left open."""

from __future__ import annotations

import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine


def track_connections(engine: Engine) -> list:
    """Every DBAPI connection the engine's pool hands out from now on (the listener moves to the new pool
    when the engine is disposed)."""
    handed_out: list = []
    event.listen(engine, "checkout", lambda dbapi_connection, _record, _proxy: handed_out.append(dbapi_connection))
    return handed_out


def still_open(connections: list) -> list:
    return [connection for connection in connections if _is_open(connection)]


def _is_open(dbapi_connection) -> bool:  # noqa: ANN001 - a psycopg or sqlite3 connection
    if isinstance(dbapi_connection, sqlite3.Connection):
        try:
            dbapi_connection.total_changes
        except sqlite3.ProgrammingError:  # "Cannot operate on a closed database."
            return False
        return True
    return not dbapi_connection.closed
