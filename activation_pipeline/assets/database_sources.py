"""A source that is a table or a query of an external PostgreSQL database, read through ADBC into Polars.

The URL comes only from the environment variable the config names (``sources.<t>.database.url_env``);
it never reaches a log line, an error message or metadata: errors from the driver are scrubbed of it
(and of its password) before they are raised. The frame read here goes into the warehouse through the
same path a file source's frame takes (activation_pipeline/assets/sources.py).

PostgreSQL types arrive as Arrow types Polars reads (integers, floats, text, booleans, dates,
timestamps, lists). ``numeric`` arrives as text: it becomes a double unless ``columns`` declares it
(``decimal(p, s)`` keeps it exact); ``uuid`` and ``json`` become text. A column of another type that
Polars cannot hold (an ``interval``) is an error naming it: cast it in a query.

A source's fingerprint is computed by the database in one statement over the rows (their count and
the sum of each row's hash), so it does not depend on row order and nothing is read into this process.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

import polars as pl
import pyarrow as pa

from activation_pipeline.column_types import cast_typed, described, first_lossy_cast
from activation_pipeline.config import DatabaseSourceConfig, SourceConfig
from activation_pipeline.sql_identifiers import quote_identifier

URL_SCHEMES = ("postgresql", "postgres")
# the rows' count and the sum of each row's 64-bit hash (Postgres's own text hash, the one hash partitioning uses):
# about the cost of reading each row as text once, a third of md5's (bench_database_source.py); a server upgrade that
# changed the hash would change every fingerprint once, which costs one reload
FINGERPRINT = "SELECT count(*)::text || ':' || coalesce(sum(hashtextextended(q::text, 0)::numeric), 0)::text FROM ({}) AS q"


class DatabaseSourceError(ValueError):
    """A database source cannot be read: the message names the source, its table or query, and what went wrong."""

    def __init__(self, source: str, database: DatabaseSourceConfig, problem: str, column: str | None = None, row: int | None = None):
        self.source, self.problem, self.column, self.row = source, problem, column, row
        where = ", ".join(p for p in (f"row {row}" if row is not None else None, f"column {column}" if column is not None else None) if p)
        super().__init__(f"sources.{source}: {database.label} of ${database.url_env}: {where + ': ' if where else ''}{problem}")


def source_sql(database: DatabaseSourceConfig) -> str:
    if database.table is not None:
        schema, table = database.table.split(".")
        return f"SELECT * FROM {quote_identifier(schema)}.{quote_identifier(table)}"
    return str(database.query).strip().rstrip(";")


def database_url(name: str, database: DatabaseSourceConfig) -> str:
    url = os.environ.get(database.url_env)
    if not url:
        raise DatabaseSourceError(name, database, f"the environment variable {database.url_env} (sources.{name}.database.url_env) is not set")
    if urlsplit(url).scheme not in URL_SCHEMES:
        raise DatabaseSourceError(
            name, database, f"the environment variable {database.url_env} does not hold a postgresql:// URL (postgresql://user@host:port/database)"
        )
    return url


def scrubbed(message: str, url: str) -> str:
    """The driver's message without the URL or its password (libpq does not echo them today; this keeps it so)."""
    password = urlsplit(url).password
    message = message.replace(url, "<url>")
    if password:
        message = message.replace(password, "***")
    message = re.sub(r"^[A-Z_]+: ", "", message.strip())  # ADBC's status code prefix (IO:, NOT_FOUND:)
    message = message.split("\n\nQuery was:")[0].split("\nLINE ")[0]  # the query is in the config; its echo adds nothing
    return re.sub(r"\s+", " ", message).replace("Failed to prepare query: ", "").strip()


def _fetch(name: str, database: DatabaseSourceConfig, sql: str) -> pa.Table:
    url = database_url(name, database)
    try:
        import adbc_driver_postgresql.dbapi as adbc
    except ImportError:
        raise DatabaseSourceError(name, database, "reading a database needs the ADBC driver: pip install 'activation_pipeline[postgres]'") from None
    try:
        with adbc.connect(url) as conn, conn.cursor() as cursor:
            cursor.execute(sql)
            return cursor.fetch_arrow_table()
    except adbc.Error as exc:
        raise DatabaseSourceError(name, database, scrubbed(str(exc), url)) from None


def database_fingerprint(name: str, source: SourceConfig) -> str:
    """The rows' count and order-independent hash, computed by the database."""
    assert source.database is not None
    table = _fetch(name, source.database, FINGERPRINT.format(source_sql(source.database)))
    return str(table.column(0)[0].as_py())


def read_database(name: str, source: SourceConfig) -> pl.DataFrame:
    """The table's or query's rows with their types; raise DatabaseSourceError on anything that cannot be loaded."""
    database = source.database
    assert database is not None
    table = _fetch(name, database, source_sql(database))
    columns: dict[str, pl.Series] = {}
    for field, column in zip(table.schema, table.columns, strict=True):
        if field.name in columns:
            raise DatabaseSourceError(name, database, f"column {field.name!r} appears twice in the result; give each column its own name")
        columns[field.name] = _series(name, database, field, column, declared=field.name in source.columns)
    frame = pl.DataFrame(list(columns.values()))
    missing = [c for c in source.columns if c not in frame.columns]
    if missing:
        problem = f"column {missing[0]!r} is declared under sources.{name}.columns but the result has no such column"
        raise DatabaseSourceError(name, database, f"{problem}; its columns: {', '.join(frame.columns)}")
    lost = first_lossy_cast(frame, source.columns)
    if lost is not None:
        row, column = lost
        raise DatabaseSourceError(name, database, f"{frame[column][row]!r} is not {described(source.columns[column])}", column=column, row=row + 1)
    return cast_typed(frame, source.columns)


def _series(name: str, database: DatabaseSourceConfig, field: pa.Field, column: pa.ChunkedArray, declared: bool) -> pl.Series:
    kind = field.type
    if isinstance(kind, pa.BaseExtensionType):
        type_name = getattr(kind, "type_name", None)
        if isinstance(kind, pa.UuidType):  # 16 bytes each: as the usual 8-4-4-4-12 text
            return pl.Series(field.name, [None if v is None else str(v) for v in column.to_pylist()], dtype=pl.String)
        series = pl.Series(field.name, pa.chunked_array([c.storage for c in column.chunks], kind.storage_type))
        if type_name == "numeric" and not declared:
            return series.cast(pl.Float64, strict=False)  # 'NaN' and infinities included
        return series
    try:
        return pl.Series(field.name, column)
    except Exception:
        raise DatabaseSourceError(
            name, database, f"PostgreSQL gives it as {kind}, which cannot be loaded; cast it in a query (e.g. {field.name}::text)", column=field.name
        ) from None
