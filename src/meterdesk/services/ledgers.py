"""Opening, naming and upgrading ledgers: what the command line and the GUI need of the store, so neither imports it."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError

from meterdesk.domain.errors import Unavailable
from meterdesk.store import migrate
from meterdesk.store.engine import Ledger, describe_url, make_engine, open_ledger, resolve_url
from meterdesk.store.health import ping

__all__ = ["Ledger", "describe_url", "open_ledger", "ping", "resolve_url", "upgrade_database"]


def upgrade_database(db: str | None) -> tuple[str, str | None, str]:
    """Create or migrate the schema at `db` (the configured ledger when None) without opening it as a ledger:
    its name and the revisions before (None: created now) and after."""
    url = resolve_url(db)
    engine = make_engine(url)
    try:
        before, after = migrate.upgrade(engine)
    except DBAPIError as error:
        raise Unavailable(f"cannot migrate {describe_url(url)}: {str(error.orig).splitlines()[0]}") from error
    finally:
        engine.dispose()
    return describe_url(url), before, after
