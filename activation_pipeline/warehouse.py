"""The warehouse: one DuckDB file, shared by every asset through dagster-duckdb's resource.

DuckDB lets one process at a time open a file for writing. Assets run in separate
processes under Dagster's multiprocess executor, so every session here is short and
serialised across processes by a file lock beside the database (the same pattern as
Dagster's own ETL tutorial). Long work (talking to a platform) never holds a session.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import duckdb
from dagster_duckdb import DuckDBResource
from filelock import FileLock
from pydantic import Field

DEFAULT_WAREHOUSE = Path("data/warehouse.duckdb")


def warehouse_path() -> Path:
    return Path(os.environ.get("ACTIVATION_WAREHOUSE", DEFAULT_WAREHOUSE))


class WarehouseResource(DuckDBResource):
    """DuckDBResource whose connections are serialised across processes by a file lock."""

    lock_timeout_seconds: float = Field(default=600.0, description="how long to wait for another writer")
    connection_config: dict[str, Any] = Field(
        default={"memory_limit": "2GB"},
        description="DuckDB settings; the memory limit makes large diffs spill to disk instead of taking 80% of RAM",
    )

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{self.database}.lock", timeout=self.lock_timeout_seconds):
            with super().get_connection() as conn:
                try:
                    yield conn
                finally:  # dagster-duckdb closes only on success: an exception would leave DuckDB's file lock held
                    conn.close()

    @property
    def state_dir(self) -> Path:
        """Where plan files and confirmation journals live, beside the database."""
        return Path(self.database).parent / "activation_state"


@contextmanager
def read_warehouse(path: Path | None = None, timeout: float = 60.0, read_only: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short session for people and tools (read-only unless asked, e.g. ``ledger prune``), taken under the
    same lock as the assets'; an absent warehouse is never created."""
    database = Path(path or warehouse_path())
    if not database.exists():
        raise FileNotFoundError(f"no warehouse at {database} (set ACTIVATION_WAREHOUSE, or run `activation-pipeline demo` first)")
    with FileLock(f"{database}.lock", timeout=timeout):
        with duckdb.connect(str(database), read_only=read_only) as conn:
            yield conn


def write_warehouse(path: Path | None = None, timeout: float = 600.0) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
    """A short writing session for tools (``ledger prune``), taken under the same lock as the assets'."""
    return read_warehouse(path, timeout, read_only=False)
