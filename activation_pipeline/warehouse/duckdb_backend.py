"""The embedded default: one DuckDB file.

DuckDB lets one process at a time open a file for writing. Assets run in separate
processes under Dagster's multiprocess executor, so every session here is short and
serialised across processes by a file lock beside the database (the same pattern as
Dagster's own ETL tutorial). Long work (talking to a platform) never holds a session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
from filelock import FileLock

from activation_pipeline.sql_identifiers import quote_identifier, quote_literal
from activation_pipeline.warehouse.base import Backend, Dialect, Result, Session, T

if TYPE_CHECKING:  # frames come from DuckDB's .pl(); a sync never imports Polars (test_sync_imports.py)
    import polars as pl

DEFAULT_SETTINGS = {"memory_limit": "2GB"}  # large diffs spill to disk instead of taking 80% of RAM
# a Parquet file (the plan) is written in row groups this small: DuckDB buffers less while it writes, and the push,
# reading one group at a time, holds only a small batch (benchmarks/bench_vs_drt.py: the first sync's peak RSS)
PARQUET_ROW_GROUP_ROWS = 16_384
# a fold's memory limit (Session.in_little_memory): what DuckDB holds beyond it (the ledger's new rows, the row groups
# its checkpoint merges) goes to the database's temporary folder. 48 MB folded 1M answers at once, 32 MB did not;
# a fold that needs more is run again with the session's own limit (benchmarks/bench_vs_drt.py: the peak RSS)
LITTLE_MEMORY = "64MB"


class DuckDBDialect(Dialect):
    name = "duckdb"
    hash_type = "UBIGINT"
    hash_arrow_type = pa.uint64()
    row_id = "rowid"

    def row_hash(self, columns: Sequence[str]) -> str:
        return f"hash({', '.join(columns)})"

    def json_object(self, pairs: Sequence[tuple[str, str]]) -> str:
        return f"to_json(struct_pack({', '.join(f'{quote_identifier(key)} := {value}' for key, value in pairs)}))::VARCHAR"

    def create_or_replace_table(self, table: str, query: str) -> list[str]:
        return [f"CREATE OR REPLACE TABLE {table} AS {query}"]


DIALECT = DuckDBDialect()


class DuckDBSession(Session):
    """A session on an open DuckDB connection (``connection``: for DuckDB-only tools and benchmarks)."""

    dialect = DIALECT

    def __init__(self, connection: duckdb.DuckDBPyConnection, settings: dict[str, Any] | None = None):
        self.connection = connection
        self.settings = settings or {}  # what the connection was opened with (restored after in_little_memory)
        self._names = 0

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        return self.connection.execute(sql, list(params or []))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.connection.executemany(sql, [list(row) for row in rows])

    def modify(self, sql: str, params: Sequence[Any] | None = None) -> int:
        rows = self.connection.execute(sql, list(params or [])).fetchall()  # DuckDB answers DML with its row count
        return int(rows[0][0]) if rows else 0

    def fetch_arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        return self.connection.sql(sql, params=list(params or [])).to_arrow_table()

    def fetch_polars(self, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        return self.connection.sql(sql, params=list(params or [])).pl()

    def insert(self, table: str, data: pl.DataFrame | pa.Table) -> int:
        self._names += 1
        name = f"__insert_{self._names}"
        with self.frames(**{name: data}):
            self.connection.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {name}")
        return len(data)

    @contextmanager
    def frames(self, **frames: pl.DataFrame | pa.Table) -> Iterator[None]:
        for name, frame in frames.items():
            self.connection.register(name, frame)
        try:
            yield
        finally:
            for name in frames:
                self.connection.unregister(name)

    @contextmanager
    def transaction(self, **frames: pl.DataFrame | pa.Table) -> Iterator[None]:
        with self.frames(**frames):
            self.connection.execute("BEGIN TRANSACTION")
            try:
                yield
                self.connection.execute("COMMIT")
            except BaseException:
                self.connection.execute("ROLLBACK")
                raise

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        yield  # every DuckDB session is already alone (the file lock)

    def in_little_memory(self, work: Callable[[], T]) -> T:
        """One thread and ``LITTLE_MEMORY``, the rest spilled to disk, then a checkpoint under the same limit
        before the session's own settings come back. Without it, a fold's checkpoint that merges the small row
        groups earlier folds appended (every fifth fold of 50,000 answers, about 250,000 ledger rows) held
        90 MB more for 3-4 s: the peak of a first sync. A fold that needs more than the limit (DuckDB's
        out-of-memory error, its transaction rolled back) is run again with the session's own limit."""
        own = {name: self.settings.get(name) or self.fetch_all("SELECT current_setting(?)", [name])[0][0] for name in ("threads", "memory_limit")}
        self.connection.execute("SET threads = 1")  # one thread's buffers, not one per core
        self.connection.execute(f"SET memory_limit = {quote_literal(LITTLE_MEMORY)}")
        try:
            try:
                result = work()
            except duckdb.OutOfMemoryException:
                self.connection.execute(f"SET memory_limit = {quote_literal(str(own['memory_limit']))}")
                result = work()
            try:
                self.connection.execute("CHECKPOINT")  # now, in little memory, rather than at close with the own limit
            except (duckdb.OutOfMemoryException, duckdb.TransactionException):
                pass  # committed all the same: the checkpoint is left to the close, with the session's own settings
            return result
        finally:
            for name, value in own.items():
                self.connection.execute(f"SET {name} = {quote_literal(str(value))}")

    def copy_to_parquet(self, query: str, path: Path, params: Sequence[Any] | None = None) -> None:
        self.connection.execute("SET preserve_insertion_order = false")  # row order is irrelevant; this lets DuckDB stream it
        try:
            options = f"FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {PARQUET_ROW_GROUP_ROWS}"
            self.connection.execute(f"COPY ({query}) TO {quote_literal(str(path))} ({options})", list(params or []))
        finally:
            self.connection.execute("RESET preserve_insertion_order")

    def columns(self, table: str) -> dict[str, str]:
        return {row[0]: row[1] for row in self.connection.execute(f"DESCRIBE {table}").fetchall()}

    def has_table(self, schema: str, table: str) -> bool:
        rows = self.connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ? AND table_type = 'BASE TABLE'",
            [schema, table],
        ).fetchall()
        return bool(rows[0][0])

    def table_comments(self, schema: str) -> dict[str, str]:
        rows = self.connection.execute("SELECT table_name, coalesce(comment, '') FROM duckdb_tables() WHERE schema_name = ?", [schema]).fetchall()
        return dict(rows)


class DuckDBBackend(Backend):
    """A DuckDB file; every session is taken under ``<file>.lock`` (shared with every process using it)."""

    dialect = DIALECT

    def __init__(self, path: Path | str, lock_timeout_seconds: float = 600.0, settings: dict[str, Any] | None = None):
        self.path = Path(path)
        self.lock_timeout_seconds = lock_timeout_seconds
        self.settings = dict(DEFAULT_SETTINGS if settings is None else settings)

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def state_dir(self) -> Path:
        return self.path.parent / "activation_state"

    def exists(self) -> bool:
        return self.path.exists()

    @contextmanager
    def session(self, timeout: float | None = None, read_only: bool = False) -> Iterator[DuckDBSession]:
        if read_only and not self.path.exists():
            raise FileNotFoundError(f"no warehouse at {self.path} (set ACTIVATION_WAREHOUSE, or run `activation-pipeline demo` first)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{self.path}.lock", timeout=self.lock_timeout_seconds if timeout is None else timeout):
            connection = duckdb.connect(str(self.path), read_only=read_only, config=self.settings)
            try:
                yield DuckDBSession(connection, self.settings)
            finally:  # closed on error too: an open connection would keep DuckDB's own file lock
                connection.close()
