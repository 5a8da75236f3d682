"""Who is acting and what time it is: recorded with every write."""

from __future__ import annotations

import getpass
import os
import time
from datetime import datetime, timezone

MAX_ACTOR_LENGTH = 200


def default_actor(program: str) -> str:
    """`$METERDESK_ACTOR`, else the program and the login name (e.g. `cli:alice`)."""
    given = os.environ.get("METERDESK_ACTOR", "").strip()
    if given:
        return given[:MAX_ACTOR_LENGTH]
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{program}:{user}"[:MAX_ACTOR_LENGTH]


def now_us() -> int:
    """Now, in integer microseconds since the epoch (no float on the way)."""
    return time.time_ns() // 1000


def now() -> datetime:
    return datetime.now(timezone.utc)
