"""The warehouse on PostgreSQL, through psycopg 3.

``ACTIVATION_WAREHOUSE=postgresql://user@host:port/dbname`` (libpq conventions: the password from
PGPASSWORD or ~/.pgpass, or in the URL; it is never shown: ``location`` drops it). Sessions are short
autocommit connections (PostgreSQL serialises writers itself, so there is no file lock); ``transaction``
opens a real transaction. The SQL the project writes uses ``?`` placeholders, translated here to psycopg's.
Frames reach the server by ``COPY … FROM STDIN``; a plan is streamed from a server-side cursor into a
Parquet file, batch by batch, so neither side holds it whole.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import polars as pl
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.string import TextLoader

from activation_pipeline.sql_identifiers import quote_literal
from activation_pipeline.warehouse.base import Backend, Dialect, Result, Session

STATE_DIR_ENV = "ACTIVATION_STATE_DIR"
CSV_CHUNK_ROWS = 100_000  # rows of a frame written to COPY at a time (bounded memory for a large source)
# a run's advisory lock is held by its connection: if its machine dies, the server notices within about a
# minute (30 s idle, then 3 probes 10 s apart) and releases the lock for a run elsewhere
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
PLAN_BATCH_ROWS = 50_000  # rows per fetch from the plan's server-side cursor (and per Parquet row group)


class PostgresDialect(Dialect):
    name = "postgres"
    hash_type = "BIGINT"  # PostgreSQL has no unsigned 64-bit integer; hashtextextended answers a signed one
    hash_arrow_type = pa.int64()
    row_id = "ctid"

    def row_hash(self, columns: Sequence[str]) -> str:
        # the row's text form tells NULL ("()") from an empty string ('("")') and keeps column boundaries
        return f"hashtextextended(ROW({', '.join(columns)})::text, 0)"

    def json_object(self, pairs: Sequence[tuple[str, str]]) -> str:
        return f"json_build_object({', '.join(f'{quote_literal(key)}, {value}' for key, value in pairs)})::text"

    def create_or_replace_table(self, table: str, query: str) -> list[str]:
        return [f"DROP TABLE IF EXISTS {table}", f"CREATE TABLE {table} AS {query}"]

    def arg_min(self, value: str, by: str) -> str:
        return f"(array_agg({value} ORDER BY {by}) FILTER (WHERE {by} IS NOT NULL))[1]"

    def any_value(self, value: str) -> str:
        return f"min({value})"  # PostgreSQL 16 has any_value; 15 does not


DIALECT = PostgresDialect()

# PostgreSQL's type names (format_type) -> DuckDB's spelling, which diff.py and target_guard.py reason about
_TYPE_NAMES = {
    "text": "VARCHAR",
    "character varying": "VARCHAR",
    "character": "VARCHAR",
    "bigint": "BIGINT",
    "integer": "INTEGER",
    "smallint": "SMALLINT",
    "double precision": "DOUBLE",
    "real": "FLOAT",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp without time zone": "TIMESTAMP",
    "timestamp with time zone": "TIMESTAMP WITH TIME ZONE",
    "json": "JSON",
    "jsonb": "JSON",
    "uuid": "UUID",
    "numeric": "DECIMAL(38,9)",
}


def duckdb_type_name(postgres_type: str) -> str:
    """``character varying(20)`` -> ``VARCHAR``, ``numeric(10,2)`` -> ``DECIMAL(10,2)``, ``text[]`` -> ``VARCHAR[]``."""
    if postgres_type.endswith("[]"):
        return duckdb_type_name(postgres_type[:-2]) + "[]"
    numeric = re.fullmatch(r"numeric\((\d+),(\d+)\)", postgres_type)
    if numeric:
        return f"DECIMAL({numeric[1]},{numeric[2]})"
    base = re.sub(r"\(.*\)", "", postgres_type).strip()
    return _TYPE_NAMES.get(base, base.upper())


def _postgres_type(dtype: Any) -> str:
    """The column type a frame's column gets in a temporary table."""
    if isinstance(dtype, pl.List):
        return _postgres_type(dtype.inner) + "[]"
    if isinstance(dtype, pl.Datetime):
        return "timestamptz" if dtype.time_zone else "timestamp"
    if isinstance(dtype, pl.Decimal):
        return f"numeric({dtype.precision or 38},{dtype.scale})"
    for kinds, name in (
        ((pl.Int8, pl.Int16, pl.UInt8), "smallint"),
        ((pl.Int32, pl.UInt16), "integer"),
        ((pl.Int64, pl.UInt32), "bigint"),
        ((pl.UInt64,), "numeric(20,0)"),
        ((pl.Float32,), "real"),
        ((pl.Float64,), "double precision"),
        ((pl.Boolean,), "boolean"),
        ((pl.Date,), "date"),
    ):
        if dtype in kinds:
            return name
    return "text"  # Utf8, Null (an empty column), and anything else as its text


# result column OIDs -> Arrow types, for the plan's Parquet file (pg_type.oid values are fixed)
_ARROW_TYPES: dict[int, pa.DataType] = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    700: pa.float32(),
    701: pa.float64(),
    1700: pa.float64(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
    1009: pa.list_(pa.string()),
    1015: pa.list_(pa.string()),
    1016: pa.list_(pa.int64()),
    1007: pa.list_(pa.int32()),
    1022: pa.list_(pa.float64()),
}


def _arrow_column(values: list[Any], kind: pa.DataType | None) -> pa.Array:
    """One result column as Arrow: a known type as is (numeric as a double), anything else as its text
    (``kind`` None: the type inferred from the texts, pa.null() for a column of NULLs only)."""
    if kind is None or kind == pa.string():
        return pa.array(_texts(values), type=kind)
    if kind == pa.float64() and any(isinstance(v, Decimal) for v in values):
        values = [None if v is None else float(v) for v in values]
    return pa.array(values, type=kind)


def _arrow_arrays(rows: list[tuple[Any, ...]], kinds: Sequence[pa.DataType | None]) -> list[pa.Array]:
    return [_arrow_column([row[i] for row in rows], kind) for i, kind in enumerate(kinds)]


def translate_placeholders(sql: str) -> str:
    """``?`` -> ``%s`` and ``%`` -> ``%%`` outside quotes and comments (psycopg's placeholder syntax)."""
    out, i, n = [], 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # a doubled quote inside the literal
                        end += 2
                        continue
                    break
                end += 1
            out.append(sql[i : end + 1].replace("%", "%%"))
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif ch == "?":
            out.append("%s")
            i += 1
        elif ch == "%":
            out.append("%%")
            i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class PostgresSession(Session):
    """A session on one psycopg connection (autocommit outside ``transaction``)."""

    dialect = DIALECT

    def __init__(self, connection: psycopg.Connection[Any]):
        self.connection = connection
        self._names = 0

    def _run(self, sql: str, params: Sequence[Any] | None) -> psycopg.Cursor[Any]:
        if not params:
            return self.connection.execute(sql.encode())  # bytes: no placeholder parsing (a script may hold several statements)
        return self.connection.execute(translate_placeholders(sql), [_adapt(p) for p in params])

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        return self._run(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.connection.cursor() as cursor:
            cursor.executemany(translate_placeholders(sql), [[_adapt(p) for p in row] for row in rows])

    def modify(self, sql: str, params: Sequence[Any] | None = None) -> int:
        return self._run(sql, params).rowcount

    def fetch_arrow(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        cursor = self._run(sql, params)
        description = cursor.description or []
        arrays = _arrow_arrays(cursor.fetchall(), [_ARROW_TYPES.get(column.type_code) for column in description])
        return pa.Table.from_arrays(arrays, names=[column.name for column in description])

    def insert(self, table: str, data: pl.DataFrame | pa.Table) -> int:
        frame = data if isinstance(data, pl.DataFrame) else pl.DataFrame(pl.from_arrow(data))
        if frame.width == 0:
            return 0
        columns = ", ".join(f'"{name}"' for name in frame.columns)
        if any(dtype.is_nested() or dtype in (pl.Binary, pl.Object) for dtype in frame.dtypes):  # no CSV for these: row by row
            with self.connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN".encode()) as copy:
                for row in frame.iter_rows():
                    copy.write_row(row)
            return frame.height
        # Polars writes the CSV (a null unquoted and empty, an empty string as ""), PostgreSQL parses it: no Python per row
        with self.connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)".encode()) as copy:
            for offset in range(0, frame.height, CSV_CHUNK_ROWS):
                copy.write(frame.slice(offset, CSV_CHUNK_ROWS).write_csv(include_header=False))
        return frame.height

    @contextmanager
    def frames(self, **frames: pl.DataFrame | pa.Table) -> Iterator[None]:
        made = []
        try:
            for name, data in frames.items():
                frame = data if isinstance(data, pl.DataFrame) else pl.DataFrame(pl.from_arrow(data))
                columns = ", ".join(f'"{column}" {_postgres_type(dtype)}' for column, dtype in frame.schema.items())
                self.connection.execute(f"CREATE TEMPORARY TABLE {name} ({columns})".encode())
                made.append(name)
                self.insert(name, frame)
                # autovacuum never analyzes a temporary table: without statistics the planner takes a 50,000-row
                # journal batch for a few rows and joins it to a 1M-row snapshot by nested loop (a fold took minutes)
                self.connection.execute(f"ANALYZE {name}".encode())
            yield
        finally:
            for name in made:
                if not self.connection.closed and self.connection.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
                    self.connection.execute(f"DROP TABLE IF EXISTS {name}".encode())

    @contextmanager
    def transaction(self, **frames: pl.DataFrame | pa.Table) -> Iterator[None]:
        with self.connection.transaction(), self.frames(**frames):
            yield

    @contextmanager
    def exclusive(self, name: str) -> Iterator[None]:
        with self.connection.transaction():
            self.connection.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [name])
            yield

    def copy_to_parquet(self, query: str, path: Path, params: Sequence[Any] | None = None) -> None:
        self._names += 1
        writer: pq.ParquetWriter | None = None
        try:
            with self.connection.transaction(), self.connection.cursor(name=f"plan_{self._names}") as cursor:
                cursor.itersize = PLAN_BATCH_ROWS
                if params:
                    cursor.execute(translate_placeholders(query), [_adapt(p) for p in params])
                else:
                    cursor.execute(query.encode())
                while True:
                    rows = cursor.fetchmany(PLAN_BATCH_ROWS)
                    description = cursor.description or []
                    schema = pa.schema([(c.name, _ARROW_TYPES.get(c.type_code, pa.string())) for c in description])
                    if writer is None:
                        writer = pq.ParquetWriter(str(path), schema, compression="zstd")
                    if not rows:
                        break
                    writer.write_table(pa.Table.from_arrays(_arrow_arrays(rows, schema.types), schema=schema))
        finally:
            if writer is not None:
                writer.close()

    def columns(self, table: str) -> dict[str, str]:
        rows = self.connection.execute(
            """SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
               WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum""",
            [table],
        ).fetchall()
        return {name: duckdb_type_name(kind) for name, kind in rows}

    def has_table(self, schema: str, table: str) -> bool:
        row = self.connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s AND table_type = 'BASE TABLE'",
            [schema, table],
        ).fetchone()
        return bool(row and row[0])

    def table_comments(self, schema: str) -> dict[str, str]:
        rows = self.connection.execute(
            """SELECT c.relname, coalesce(obj_description(c.oid, 'pg_class'), '') FROM pg_class AS c
               JOIN pg_namespace AS n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind IN ('r', 'p')""",
            [schema],
        ).fetchall()
        return dict(rows)


def _adapt(value: Any) -> Any:
    """Parameters as PostgreSQL takes them: a Path as its text (DuckDB accepts either)."""
    return str(value) if isinstance(value, Path) else value


def _texts(values: list[Any]) -> list[str | None]:
    return [None if v is None else v if isinstance(v, str) else v.isoformat() if isinstance(v, date | datetime) else str(v) for v in values]


def redacted(url: str) -> str:
    """The URL without its password (what logs, errors and metadata may show)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class PostgresBackend(Backend):
    """A PostgreSQL database named by a libpq URL."""

    dialect = DIALECT
    shares_state = True  # runs keep their lock and journal here: any machine may run, or recover, any activation

    def __init__(self, url: str, connect_timeout: int = 10):
        self.url = url
        self.connect_timeout = connect_timeout

    @property
    def location(self) -> str:
        return redacted(self.url)

    @property
    def state_dir(self) -> Path:
        """``$ACTIVATION_STATE_DIR``, else a folder of this database's own under the system's temporary folder:
        it holds plan files only (temporary: losing one costs a resend); journals and run locks are in the database."""
        configured = os.environ.get(STATE_DIR_ENV)
        if configured:
            return Path(configured)
        digest = hashlib.sha256(self.location.encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / "activation_pipeline" / digest

    def _connect(self, timeout: float | None) -> psycopg.Connection[Any]:
        seconds = max(1, int(timeout if timeout is not None else self.connect_timeout))
        try:
            given = conninfo_to_dict(self.url)
            keepalives = {name: value for name, value in KEEPALIVES.items() if name not in given}  # the URL's own win
            connection = psycopg.connect(make_conninfo(self.url, **keepalives), autocommit=True, connect_timeout=seconds)
        except psycopg.OperationalError as exc:  # libpq's message can quote the URL: name the redacted one instead
            raise psycopg.OperationalError(f"cannot connect to the warehouse at {self.location}: {_first_line(exc, self.url)}") from None
        for json_type in ("json", "jsonb"):  # JSON comes back as its text, as from DuckDB (callers json.loads it)
            connection.adapters.register_loader(json_type, TextLoader)
        return connection

    def exists(self) -> bool:
        """False when the server answers that the database does not exist; any other failure (no server,
        a wrong password) is raised, naming the warehouse without its password."""
        try:
            self._connect(None).close()
        except psycopg.OperationalError as exc:
            if "does not exist" in str(exc):
                return False
            raise
        return True

    @contextmanager
    def session(self, timeout: float | None = None, read_only: bool = False) -> Iterator[PostgresSession]:
        connection = self._connect(timeout)
        try:
            if read_only:
                connection.execute(b"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            yield PostgresSession(connection)
        finally:
            connection.close()


def _first_line(exc: Exception, url: str) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text
