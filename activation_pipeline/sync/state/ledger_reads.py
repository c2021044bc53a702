"""What the ledger tells people: the reads behind a run's metadata, the ``all_records_confirmed``
check, the demo's summary and the ``activation-pipeline ledger`` command (assets/ and cli.py show
them; the SQL stays beside the schema it reads)."""

from __future__ import annotations

from typing import NamedTuple

import polars as pl

from activation_pipeline.sql_identifiers import quote_literal
from activation_pipeline.sync.state.schema import SCHEMA, scalar
from activation_pipeline.warehouse import Session

# a message's quoted values, indexes and long numbers (ids, emails, keys) blanked, so one reason groups its records
REASON_PATTERN = r"""'[^']*'|"[^"]*"|\[[0-9]+\]|[A-Za-z0-9_.@+-]*[0-9]{4,}[A-Za-z0-9_.@+-]*"""
TOP_REASONS = 5


def _placeholders(values: list | tuple) -> str:
    return ", ".join("?" * len(values))


def run_records_query(run_id: str, activation: str, partitions: list[str]) -> str:
    """The SQL that lists this run's record operations, to paste as is (a partitioned run names its day or scopes)."""
    where = f"WHERE run_id = {quote_literal(run_id)} AND activation = {quote_literal(activation)}"
    if len(partitions) == 1:
        where += f" AND partition_key = {quote_literal(partitions[0])}"
    elif partitions:
        where += f" AND partition_key IN ({', '.join(quote_literal(p) for p in partitions)})"
    return (
        f"-- this run's record operations and the platform's answers (warehouse schema {SCHEMA})\n"
        f"SELECT partition_key, key, change, operation, status, message, attempt, recorded_at\n"
        f"FROM {SCHEMA}.sync_records\n{where}\nORDER BY partition_key, seq;"
    )


def run_records(
    conn: Session, run_id: str, activation: str, partition_key: str | None, status: str, limit: int
) -> list[tuple[str | None, str, str, str]]:
    """(key, change, status, message) of the run's first ``limit`` records with this status."""
    return [
        (key, change, status_, message)
        for key, change, status_, message in conn.execute(
            f"""SELECT key, change, status, message FROM {SCHEMA}.sync_records
            WHERE run_id = ? AND activation = ? AND partition_key IS NOT DISTINCT FROM ? AND status = ?
            ORDER BY seq LIMIT {int(limit)}""",
            [run_id, activation, partition_key, status],
        ).fetchall()
    ]


class Reason(NamedTuple):
    status: str
    reason: str  # the message with its values blanked
    records: int
    example_key: str
    example: str  # one record's message as the platform wrote it


def top_reasons(
    conn: Session,
    activation: str,
    run_ids: list[str],
    statuses: tuple[str, ...],
    partition_key: str | None = None,
    any_partition: bool = False,
    limit: int = TOP_REASONS,
) -> list[Reason]:
    """The ledger's most common reasons among these runs' records with these statuses."""
    where = "" if any_partition else "AND partition_key IS NOT DISTINCT FROM ?"
    params = [] if any_partition else [partition_key]
    return [
        Reason(*row)
        for row in conn.execute(
            f"""SELECT status, regexp_replace(coalesce(message, ''), ?, '…', 'g') AS reason, count(DISTINCT key),
                   coalesce(min(key), '(null key)'), coalesce({conn.dialect.arg_min("message", "key")}, {conn.dialect.any_value("message")}, '')
            FROM {SCHEMA}.sync_records
            WHERE activation = ? AND run_id IN ({_placeholders(run_ids)}) AND status IN ({_placeholders(statuses)}) {where}
            GROUP BY 1, 2 ORDER BY 3 DESC, 2 LIMIT {int(limit)}""",
            [REASON_PATTERN, activation, *run_ids, *statuses, *params],
        ).fetchall()
    ]


def run_totals(conn: Session, run_ids: list[str]) -> list[tuple]:
    """Per activation synced by these runs: (activation, partitions, statuses, planned, succeeded, failed,
    invalid, skipped, snapshot), the snapshot being what each partition holds now."""
    return conn.execute(
        f"""SELECT activation, count(DISTINCT partition_key) AS parts, string_agg(DISTINCT status, ',' ORDER BY status) AS status,
                   sum(planned_added + planned_changed + planned_removed + unchanged_resent), sum(succeeded), sum(failed),
                   sum(invalid), sum(skipped),
                   sum(snapshot_size) FILTER (WHERE latest) AS snapshot  -- what each partition holds now
            FROM (SELECT *, row_number() OVER (PARTITION BY activation, partition_key ORDER BY started_at DESC) = 1 AS latest
                  FROM {SCHEMA}.sync_runs WHERE run_id IN ({_placeholders(run_ids)})) AS runs
            GROUP BY activation ORDER BY activation""",
        run_ids,
    ).fetchall()


def activations_with_status(conn: Session, run_ids: list[str], statuses: tuple[str, ...]) -> list[str]:
    """The activations that have records with one of these statuses in these runs."""
    return [
        row[0]
        for row in conn.execute(
            f"""SELECT DISTINCT activation FROM {SCHEMA}.sync_records
            WHERE run_id IN ({_placeholders(run_ids)}) AND status IN ({_placeholders(statuses)}) ORDER BY 1""",
            [*run_ids, *statuses],
        ).fetchall()
    ]


def keys_with_status(conn: Session, activation: str, run_ids: list[str], statuses: tuple[str, ...]) -> int:
    """How many of the activation's records have one of these statuses in these runs."""
    return scalar(
        conn,
        f"""SELECT count(DISTINCT key) FROM {SCHEMA}.sync_records WHERE activation = ?
                  AND run_id IN ({_placeholders(run_ids)}) AND status IN ({_placeholders(statuses)})""",
        [activation, *run_ids, *statuses],
    )


def activations_with_runs(conn: Session) -> set[str]:
    return {row[0] for row in conn.execute(f"SELECT DISTINCT activation FROM {SCHEMA}.sync_runs").fetchall()}


def latest_records(conn: Session, activation: str, limit: int) -> pl.DataFrame:
    """The last confirmed version of the activation's records, by key."""
    return conn.fetch_polars(
        f"""SELECT key, last_operation, in_platform, confirmed_at, run_id, partition_key, payload
            FROM {SCHEMA}.latest_records WHERE activation = ? ORDER BY key LIMIT ?""",
        [activation, limit],
    )


def latest_records_count(conn: Session, activation: str) -> int:
    return scalar(conn, f"SELECT count(*) FROM {SCHEMA}.latest_records WHERE activation = ?", [activation])


def record_history(conn: Session, activation: str, key: str, limit: int) -> pl.DataFrame:
    """Every operation on one key across runs, newest first."""
    return conn.fetch_polars(
        f"""SELECT recorded_at, run_id, run_status, partition_key, change, operation, status, attempt, message, payload
            FROM {SCHEMA}.record_history WHERE activation = ? AND key = ? ORDER BY recorded_at DESC LIMIT ?""",
        [activation, key, limit],
    )
