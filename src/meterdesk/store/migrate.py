"""Schema migrations through Alembic, run on a connection meterdesk already holds.

Alembic is imported only when a migration has to run: every command opens the ledger, and most find
the schema already at `HEAD_REVISION` (a test keeps that constant equal to Alembic's head).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).with_name("migrations")
HEAD_REVISION = "0008"


def _config():
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision according to Alembic's scripts (HEAD_REVISION must equal it)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Bring the schema to the newest revision; returns (revision before, revision after)."""
    with engine.connect() as connection:
        before = current_revision(connection)
    if before == HEAD_REVISION:
        return before, before
    from alembic import command

    with engine.begin() as connection:
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        after = current_revision(connection)
    return before, after
