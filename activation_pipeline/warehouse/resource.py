"""The Dagster resource every asset reaches the warehouse through."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from activation_pipeline.warehouse.base import Backend, Session
from activation_pipeline.warehouse.duckdb_backend import DEFAULT_SETTINGS
from activation_pipeline.warehouse.select import backend_for


class WarehouseResource(ConfigurableResource):
    """The warehouse as a Dagster resource: ``database`` is a DuckDB file path or a ``postgresql://`` URL
    (its password from PGPASSWORD or ~/.pgpass, never in the URL you configure)."""

    database: str = Field(description="a DuckDB file path, or a postgresql:// URL (libpq conventions)")
    lock_timeout_seconds: float = Field(default=600.0, description="how long to wait for another writer (DuckDB)")
    connection_config: dict[str, Any] = Field(
        default=DEFAULT_SETTINGS,
        description="DuckDB settings; the memory limit makes large diffs spill to disk instead of taking 80% of RAM",
    )

    @property
    def backend(self) -> Backend:
        return backend_for(self.database, lock_timeout_seconds=self.lock_timeout_seconds, duckdb_settings=self.connection_config)

    def get_connection(self) -> AbstractContextManager[Session]:
        """A short session (never held while a platform is called)."""
        return self.backend.session()

    @property
    def state_dir(self) -> Path:
        """Where plan files and confirmation journals live (beside a DuckDB file)."""
        return self.backend.state_dir
