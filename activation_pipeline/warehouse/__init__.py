"""The warehouse: a DuckDB file (the embedded default) or a PostgreSQL database, behind one interface.

``ACTIVATION_WAREHOUSE`` names it: a file path, or a ``postgresql://`` URL. The engine, the assets
and the CLI talk to a ``Session`` (base.py) and never to a driver; see README.md "The warehouse on
PostgreSQL".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from activation_pipeline.warehouse.base import WAREHOUSE_ERRORS, Backend, Dialect, Result, Session
from activation_pipeline.warehouse.duckdb_backend import DuckDBBackend, DuckDBSession
from activation_pipeline.warehouse.resource import WarehouseResource
from activation_pipeline.warehouse.select import DEFAULT_WAREHOUSE, backend_for, is_postgres, warehouse_location

__all__ = [
    "DEFAULT_WAREHOUSE",
    "WAREHOUSE_ERRORS",
    "Backend",
    "Dialect",
    "DuckDBBackend",
    "DuckDBSession",
    "Result",
    "Session",
    "WarehouseResource",
    "backend_for",
    "is_postgres",
    "read_warehouse",
    "warehouse_location",
    "warehouse_path",
    "write_warehouse",
]


def warehouse_path() -> Path:
    """``ACTIVATION_WAREHOUSE`` as a path (a DuckDB file); for a URL, use ``warehouse_location()``."""
    return Path(warehouse_location())


@contextmanager
def read_warehouse(location: Path | str | None = None, timeout: float = 60.0, read_only: bool = True) -> Iterator[Session]:
    """A short session for people and tools (read-only unless asked, e.g. ``ledger prune``), taken under the
    same lock as the assets'; an absent warehouse is never created (FileNotFoundError)."""
    backend = backend_for(location)
    if not backend.exists():
        raise FileNotFoundError(f"no warehouse at {backend.location} (set ACTIVATION_WAREHOUSE, or run `activation-pipeline demo` first)")
    with backend.session(timeout=timeout, read_only=read_only) as session:
        yield session


def write_warehouse(location: Path | str | None = None, timeout: float = 600.0) -> AbstractContextManager[Session]:
    """A short writing session for tools (``ledger prune``), taken under the same lock as the assets'."""
    return read_warehouse(location, timeout, read_only=False)
