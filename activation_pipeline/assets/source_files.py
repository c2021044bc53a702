"""Reading a source file into a typed Polars frame, or a ``SourceFileError`` naming the place.

CSV cells are read as text (DuckDB's reader with its dialect sniffing off, so it never skips a
line or guesses a comment prefix, and reports ragged or non-UTF-8 records with their byte
position); each column then gets its declared type, or one inferred from every value of the
file (activation_pipeline/column_types.py). Parquet keeps its own types; declared columns are cast strictly.
Nothing here writes to the warehouse: a file that fails leaves ``sources.<name>`` as it was.
"""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import duckdb
import polars as pl

from activation_pipeline.column_types import (
    apply_types,
    cast_typed,
    described,
    first_lossy_cast,
    first_unparsed,
    infer_types,
)
from activation_pipeline.config import SourceConfig

DELIMITERS = (",", ";", "\t", "|")
HEADER_BYTES = 1 << 20  # the header line is looked for in the first megabyte
CSV_READER = """SELECT * FROM read_csv($path, auto_detect = false, columns = $columns, header = true, delim = $delim,
    quote = '"', escape = '"', comment = '', strict_mode = true, null_padding = false,
    store_rejects = true, rejects_limit = 10, parallel = true, allow_quoted_nulls = false)"""


class SourceFileError(ValueError):
    """A source file cannot be loaded; carries the source, file, line (or record/row) and column."""

    def __init__(self, source: str, file: str, problem: str, *, line: int | None = None, column: str | None = None, row: int | None = None):
        self.source, self.file, self.problem = source, file, problem
        self.line, self.column, self.row = line, column, row
        place = [
            f"line {line}" if line is not None else f"row {row}" if row is not None else None,
            f"column {column}" if column is not None else None,
        ]
        where = ", ".join(p for p in place if p)
        super().__init__(f"sources.{source}: {file}: {where + ': ' if where else ''}{problem}")


def read_source(name: str, path: Path, source: SourceConfig) -> pl.DataFrame:
    """The file's rows with their types; raise SourceFileError on anything that is not clean."""
    if source.file_format == "parquet":
        return _read_parquet(name, path, source)
    return _read_csv(name, path, source)


def _read_parquet(name: str, path: Path, source: SourceConfig) -> pl.DataFrame:
    label = str(source.path)
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SourceFileError(name, label, f"not a readable Parquet file (truncated or corrupt?): {first}") from None
    _check_declared_columns(name, label, frame.columns, source)
    lost = first_lossy_cast(frame, source.columns)
    if lost is not None:
        row, column = lost
        raise SourceFileError(name, label, _not_a(frame[column][row], source.columns[column]), row=row + 1, column=column)
    return cast_typed(frame, source.columns)


def _read_csv(name: str, path: Path, source: SourceConfig) -> pl.DataFrame:
    label, delimiter = str(source.path), source.delimiter
    header = _read_header(name, label, path, delimiter)
    _check_declared_columns(name, label, header, source)
    placeholders = {f"c{i}": "VARCHAR" for i in range(len(header))}  # file names never reach SQL
    try:
        with duckdb.connect() as conn:
            frame = conn.sql(CSV_READER, params={"path": str(path), "columns": placeholders, "delim": delimiter}).pl()
            reject = conn.sql("""SELECT line_byte_position, column_name, error_type, csv_line, error_message
                                 FROM reject_errors ORDER BY line_byte_position, column_idx LIMIT 1""").fetchall()
    except duckdb.Error as exc:
        raise SourceFileError(name, label, f"cannot be read as CSV: {str(exc).splitlines()[0]}") from None
    if reject:
        raise _rejected(name, label, path, header, delimiter, reject[0])
    frame.columns = header
    declared = dict(source.columns)
    bad = first_unparsed(frame, declared)
    if bad is not None:
        record, column = bad
        line = _line_of_record(path, record, delimiter, len(header))
        raise SourceFileError(name, label, _not_a(frame[column][record], declared[column]), line=line, column=column)
    return apply_types(frame, {**infer_types(frame, skip=set(declared)), **declared})


def _read_header(name: str, label: str, path: Path, delimiter: str) -> list[str]:
    """The header's column names, after the checks that need only the file's start."""
    with open(path, "rb") as handle:
        start = handle.read(HEADER_BYTES)
    if not start:
        raise SourceFileError(name, label, "the file is empty (0 bytes); a CSV source needs at least its header line")
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SourceFileError(name, label, "the file is UTF-16 (it starts with a UTF-16 byte order mark); save it as UTF-8")
    text = start.decode("utf-8", errors="replace").removeprefix("\ufeff")  # Excel's UTF-8 BOM is not part of the first name
    first_line = text.split("\n", 1)[0].rstrip("\r")
    if "\ufffd" in first_line:
        raise SourceFileError(name, label, "not valid UTF-8 in the header; save the file as UTF-8", line=1)
    try:
        header = next(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True))
    except (csv.Error, StopIteration):
        raise SourceFileError(name, label, "the header line cannot be read as CSV", line=1) from None
    if len(header) == 1:
        other = next((d for d in DELIMITERS if d != delimiter and d in header[0]), None)
        if other is not None:
            raise SourceFileError(
                name,
                label,
                f"the header is one column {header[0]!r}: the file looks {other!r}-separated; set delimiter: {other!r} on sources.{name}",
                line=1,
            )
    seen: set[str] = set()
    for column in header:
        if not column.strip():
            raise SourceFileError(name, label, f"column {header.index(column) + 1} of the header has no name", line=1)
        if column in seen:
            raise SourceFileError(name, label, f"column {column!r} appears twice in the header", line=1)
        seen.add(column)
    return header


def _check_declared_columns(name: str, label: str, columns: list[str], source: SourceConfig) -> None:
    missing = [c for c in source.columns if c not in columns]
    if missing:
        raise SourceFileError(
            name,
            label,
            f"column {missing[0]!r} is declared under sources.{name}.columns but the file has no such column; its columns: {', '.join(columns)}",
        )


def _rejected(name: str, label: str, path: Path, header: list[str], delimiter: str, reject: tuple) -> SourceFileError:
    position, placeholder, kind, text, message = reject
    line = _line_at_byte(path, position)
    column = header[int(placeholder[1:])] if placeholder else None
    if kind in ("MISSING COLUMNS", "TOO MANY COLUMNS"):
        fields = len(next(csv.reader(io.StringIO((text or "").strip("\r\n"), newline=""), delimiter=delimiter), []))
        verdict = "too few" if kind == "MISSING COLUMNS" else "too many"
        return SourceFileError(name, label, f"{verdict} fields: {fields} where the header has {len(header)} ({', '.join(header)})", line=line)
    if kind == "INVALID ENCODING":
        return SourceFileError(name, label, "not valid UTF-8; save the file as UTF-8", line=line, column=column)
    if kind == "UNQUOTED VALUE":
        return SourceFileError(name, label, "a quoted value is not closed, or text follows its closing quote", line=line, column=column)
    return SourceFileError(name, label, f"{kind.lower()}: {str(message).splitlines()[0]}", line=line, column=column)


def _line_at_byte(path: Path, position: int) -> int:
    """1-based line of the file holding byte ``position`` (DuckDB's line counter counts records)."""
    newlines, remaining = 0, position
    with open(path, "rb") as handle:
        while remaining > 0:
            chunk = handle.read(min(remaining, 1 << 24))
            if not chunk:
                break
            newlines += chunk.count(b"\n")
            remaining -= len(chunk)
    return newlines + 1


def _line_of_record(path: Path, record: int, delimiter: str, columns: int = 2) -> int:
    """1-based line where data record ``record`` (0-based, blank lines skipped as the reader does, except in a
    one-column file, where the reader reads a blank line as a null value) starts.

    Only called to name an offending value: the loop stops at that record."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        next(reader, None)
        previous_end, seen = reader.line_num, -1
        for row in reader:
            if row or columns == 1:
                seen += 1
                if seen == record:
                    return previous_end + 1
            previous_end = reader.line_num
    return previous_end + 1


def _not_a(value: object, type_name: str) -> str:
    shown = repr(value) if isinstance(value, str) else str(value)
    return f"{shown} is not {described(type_name)}"
