"""The warehouse backend interface: what the engine, the assets and the CLI may ask of a warehouse.

Three pieces, one implementation of each per backend (duckdb_backend.py, postgres_backend.py):

- ``Backend``: where the warehouse is (a DuckDB file, a PostgreSQL database); opens short ``Session``s,
  knows its ``Dialect``, the local folder where a run keeps its plan files (``state_dir``), and whether
  runs keep their lock and journal in it (``shares_state``).
- ``Session``: one connection, held briefly (never while a platform is called). SQL is written with
  ``?`` placeholders on both backends (the PostgreSQL session translates them); results come back as
  rows, Polars frames or Arrow tables; frames are loaded in bulk; a query can be copied to a Parquet file.
- ``Dialect``: the few SQL fragments that differ between the backends (the row hash, JSON building,
  types, CREATE OR REPLACE, the physical row id). Everything else the project writes is portable SQL.

A backend error is one of ``WAREHOUSE_ERRORS`` (catch that tuple, not ``duckdb.Error``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import duckdb
import pyarrow as pa

if TYPE_CHECKING:  # Polars is imported where a frame is made: a sync never needs it (test_sync_imports.py)
    import polars as pl

try:  # psycopg comes with the postgres extra; the embedded default (`pip install .`) runs without it
    import psycopg

    WAREHOUSE_ERRORS: tuple[type[Exception], ...] = (duckdb.Error, psycopg.Error)
except ImportError:
    WAREHOUSE_ERRORS = (duckdb.Error,)


class Result(Protocol):
    """What ``Session.execute`` returns: the statement's rows, read once."""

    def fetchall(self) -> list[tuple[Any, ...]]: ...

    def fetchone(self) -> tuple[Any, ...] | None: ...


class Dialect(ABC):
    """The SQL fragments that differ between backends. Column and table names passed in are already quoted."""

    name: str
    hash_type: str  # the SQL type of a row hash (snapshot.row_hash, sync_records.row_hash)
    hash_arrow_type: pa.DataType  # the same, as an Arrow type (the journal's frame)
    json_type: str = "JSON"
    row_id: str  # a column naming one physical row (DuckDB ``rowid``, PostgreSQL ``ctid``)

    @abstractmethod
    def row_hash(self, columns: Sequence[str]) -> str:
        """An expression hashing these columns of one row to ``hash_type``; NULLs hash distinctly from values."""

    @abstractmethod
    def json_object(self, pairs: Sequence[tuple[str, str]]) -> str:
        """An expression building a JSON object text (VARCHAR) from (key, SQL expression) pairs; keys are plain names."""

    @abstractmethod
    def create_or_replace_table(self, table: str, query: str) -> list[str]:
        """Statements that replace ``table`` by the result of ``query`` (run them in one transaction)."""

    def arg_min(self, value: str, by: str) -> str:
        """The ``value`` of the row with the smallest ``by`` in a group."""
        return f"arg_min({value}, {by})"

    def any_value(self, value: str) -> str:
        """Some non-null ``value`` of a group (which one is unspecified)."""
        return f"any_value({value})"


T = TypeVar("T")


class Session(ABC):
    """One short connection to the warehouse. Not thread-safe; open one per thread and close it soon."""

    dialect: Dialect

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        """Run one statement (or, without params, a script of several) with ``?`` placeholders."""

    @abstractmethod
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row of parameters."""

    @abstractmethod
    def modify(self, sql: str, params: Sequence[Any] | None = None) -> int:
        """Run an INSERT / UPDATE / DELETE; return the rows it changed."""

    def fetch_all(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.execute(sql, params).fetchall()

    def fetch_one(self, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...] | None:
        """The first row (the rest of the result is consumed), or None."""
        rows = self.fetch_all(sql, params)
        return rows[0] if rows else None

    @abstractmethod
    def fetch_arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table: ...

    def fetch_polars(self, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        import polars as pl

        frame = pl.from_arrow(self.fetch_arrow(sql, params))
        assert isinstance(frame, pl.DataFrame)
        return frame

    @abstractmethod
    def insert(self, table: str, data: pl.DataFrame | pa.Table) -> int:
        """Append ``data`` to an existing ``table`` in bulk, its columns matched by name; return the rows loaded."""

    @abstractmethod
    def frames(self, **frames: pl.DataFrame | pa.Table) -> AbstractContextManager[None]:
        """Make each frame queryable by its name (``FROM name``) by the statements run inside the block."""

    @abstractmethod
    def transaction(self, **frames: pl.DataFrame | pa.Table) -> AbstractContextManager[None]:
        """One transaction, rolled back on any error, with ``frames`` queryable by name inside it."""

    def in_little_memory(self, work: Callable[[], T]) -> T:
        """Run ``work``, one bookkeeping transaction (a fold of a run's answers), in as little memory as the
        backend can do it in, and return its result. ``work`` must be safe to run again: it is one transaction,
        rolled back whole on error. Here: as it is (a PostgreSQL server's memory is not the run's)."""
        return work()

    @abstractmethod
    def exclusive(self, name: str) -> AbstractContextManager[None]:
        """A block that no other session holding the same ``name`` runs at the same time (e.g. DDL that
        concurrent processes would race on); on PostgreSQL one transaction, on DuckDB the file lock already does it."""

    @abstractmethod
    def copy_to_parquet(self, query: str, path: Path, params: Sequence[Any] | None = None) -> None:
        """Write the result of ``query`` to a zstd Parquet file, streamed (never held whole in memory)."""

    @abstractmethod
    def columns(self, table: str) -> dict[str, str]:
        """Column -> type of a table or view, the type spelled as DuckDB does (VARCHAR, BIGINT, DOUBLE,
        TIMESTAMP WITH TIME ZONE, DECIMAL(p,s), VARCHAR[], …) on every backend."""

    @abstractmethod
    def has_table(self, schema: str, table: str) -> bool:
        """Whether the base table ``schema.table`` exists (views do not count)."""

    @abstractmethod
    def table_comments(self, schema: str) -> dict[str, str]:
        """Table -> its comment (``COMMENT ON TABLE``; "" for none) of every base table in ``schema``."""


class Backend(ABC):
    """A warehouse: a DuckDB file or a PostgreSQL database."""

    dialect: Dialect
    # several processes, on several machines, may write it at once: a run's lock and confirmation journal
    # then live in the warehouse (sync/state/run_state.py), not in local files beside it
    shares_state: bool = False

    @property
    @abstractmethod
    def location(self) -> str:
        """Where it is, fit to show people (a path, or a URL without its password)."""

    @property
    @abstractmethod
    def state_dir(self) -> Path:
        """The local folder where a run keeps its plan files (and, unless ``shares_state``, its journals and run locks)."""

    @abstractmethod
    def exists(self) -> bool:
        """Whether the warehouse is there to read (a tool never creates one)."""

    @abstractmethod
    def session(self, timeout: float | None = None, read_only: bool = False) -> AbstractContextManager[Session]:
        """A short session; ``timeout`` bounds the wait for another writer (DuckDB's file lock)."""
