"""The audit trail: who did what, appended in the same transaction as the change itself."""

from __future__ import annotations

import json

from sqlalchemy.engine import Connection

from meterdesk.services.context import now_us
from meterdesk.store.schema import audit_log


def record_audit(connection: Connection, actor: str, action: str, subject: str, **detail) -> None:
    connection.execute(
        audit_log.insert().values(
            at=now_us(),
            actor=actor,
            action=action,
            subject=subject[:255],
            detail=json.dumps(detail, default=str, sort_keys=True) if detail else None,
        )
    )
