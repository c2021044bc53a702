"""Mapped columns checked against the segments the warehouse already holds, when the definitions load.

A mapping to a column the segment does not have then fails ``dagster definitions validate`` (and the
code location) instead of the first run. The run itself refuses it too, before any request (the
engine's plan, ``PlanError``), which covers a warehouse that does not hold the segment yet.

Only a segment table built from the segment's current SQL is compared (its table comment holds the SQL
hash): after an edit of the SQL the stored table is stale, and its next materialization decides. The
warehouse (a DuckDB file or a PostgreSQL database) is opened read-only, briefly, never created; a
warehouse held by a running writer (DuckDB lets one process open a file being written) or out of reach
skips the check rather than failing the load.
"""

from __future__ import annotations

from pathlib import Path

from filelock import Timeout

from activation_pipeline.config import ConfigError, ProjectConfig
from activation_pipeline.warehouse import WAREHOUSE_ERRORS, backend_for

LOCK_WAIT_SECONDS = 1.0
UNREADABLE: tuple[type[Exception], ...] = (Timeout, *WAREHOUSE_ERRORS)
SQL_HASH_COMMENT = "sql_hash "  # the segment asset's table comment: "sql_hash <hash of its SQL>"


def segment_table_comment(sql_hash: str) -> str:
    return SQL_HASH_COMMENT + sql_hash


def stored_segment_columns(database: Path | str) -> dict[str, tuple[str, list[str]]] | None:
    """{segment: (table comment, columns)} of the warehouse's ``segments`` schema; None when it cannot be read now."""
    backend = backend_for(database)
    try:
        if not backend.exists():
            return None
        with backend.session(timeout=LOCK_WAIT_SECONDS, read_only=True) as conn:
            comments = conn.table_comments("segments")
            columns: dict[str, list[str]] = {}
            for table, column in conn.fetch_all(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'segments' ORDER BY table_name, ordinal_position"
            ):
                columns.setdefault(table, []).append(column)
    except UNREADABLE:  # a writer holds it, or it is out of reach: the run's own check still holds
        return None
    return {table: (comments.get(table, ""), found) for table, found in columns.items()}


def check_mapped_columns(config: ProjectConfig, database: Path | str) -> None:
    """Raise ConfigError for the first mapped column that a current segment table lacks."""
    stored = stored_segment_columns(database)
    if not stored:
        return
    for name, activation in config.activations.items():
        segment = config.segments[activation.segment]
        comment, columns = stored.get(activation.segment, ("", []))
        if comment != segment_table_comment(segment.sql_hash):
            continue
        wanted = [(f"mapping.{field}", column) for field, column in activation.mapping.items()]
        wanted += [("custom_attributes", column) for column in activation.custom_attributes]
        wanted += [("identifier", activation.identifier)] if activation.identifier else []
        wanted += [("scope.column", activation.scope.column)] if activation.scope else []
        for field, column in wanted:
            if column not in columns:
                raise ConfigError(
                    config.path,
                    f"activations.{name}",
                    field,
                    f"column {column!r} is not in segments.{activation.segment} (columns in {backend_for(database).location}: {', '.join(columns)})",
                )
