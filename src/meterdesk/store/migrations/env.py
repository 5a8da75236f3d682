"""Alembic environment: migrates the connection meterdesk hands over (see store/migrate.py)."""

from alembic import context

from meterdesk.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - meterdesk always passes its own connection
    raise RuntimeError("run migrations through `meterdesk db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
