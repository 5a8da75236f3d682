"""Qt item models over the services' read models (columns as IntEnum, raw values for sorting)."""
