"""``ACTIVATION_WAREHOUSE`` → the backend it names."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from activation_pipeline.warehouse.base import Backend
from activation_pipeline.warehouse.duckdb_backend import DuckDBBackend

DEFAULT_WAREHOUSE = Path("data/warehouse.duckdb")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def warehouse_location() -> str:
    """``ACTIVATION_WAREHOUSE`` as set (a path or a URL), else the default DuckDB file."""
    return os.environ.get("ACTIVATION_WAREHOUSE") or str(DEFAULT_WAREHOUSE)


def is_postgres(location: str | Path) -> bool:
    return str(location).startswith(POSTGRES_SCHEMES)


def backend_for(location: str | Path | None = None, lock_timeout_seconds: float = 600.0, duckdb_settings: dict[str, Any] | None = None) -> Backend:
    """The backend of a DuckDB file path or a ``postgresql://`` URL (default: ``ACTIVATION_WAREHOUSE``)."""
    location = warehouse_location() if location is None else location
    if is_postgres(location):
        from activation_pipeline.warehouse.postgres_backend import PostgresBackend

        return PostgresBackend(str(location))
    return DuckDBBackend(Path(location), lock_timeout_seconds, duckdb_settings)
