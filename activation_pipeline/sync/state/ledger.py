"""The ledger's run rows (``sync_runs``: one per run of an activation or partition, with its counts)
and its retention. Its record rows (``sync_records``) are written by the journal's fold
(state/journal.py) and by verification (state/verification.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NamedTuple

from activation_pipeline.sync.state.schema import SCHEMA, first_row, now, transaction
from activation_pipeline.warehouse import Session


def start_run(conn: Session, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    conn.execute(
        f"INSERT INTO {SCHEMA}.sync_runs ({columns}) VALUES ({', '.join('?' * len(row))})",
        list(row.values()),
    )


def finish_run(conn: Session, run_id: str, activation: str, values: dict[str, Any], partition_key: str | None = None) -> None:
    assignments = ", ".join(f"{column} = ?" for column in values)
    conn.execute(
        f"UPDATE {SCHEMA}.sync_runs SET {assignments} WHERE run_id = ? AND activation = ? AND partition_key IS NOT DISTINCT FROM ?",
        [*values.values(), run_id, activation, partition_key],
    )


def last_synced_sql_hash(conn: Session, activation: str) -> str | None:
    row = first_row(
        conn,
        f"""SELECT segment_sql_hash FROM {SCHEMA}.sync_runs
            WHERE activation = ? AND status IN ('succeeded', 'partial') ORDER BY started_at DESC LIMIT 1""",
        [activation],
    )
    return row[0] if row else None


class Pruned(NamedTuple):
    deleted: int  # record rows dropped (their counts stay in sync_runs)
    cleared: int  # rows kept (each record's last confirmed version) whose payload and message were dropped


def prune_ledger(conn: Session, retention_days: int, activation: str | None = None, when_due: bool = False) -> Pruned:
    """Drop what the ledger holds about records beyond ``retention_days``, keeping the counts.

    ``sync_runs`` is untouched. Of the ``sync_records`` rows recorded before the start of the UTC
    day ``retention_days`` ago, the last confirmed version of each record (what ``latest_records``
    shows) stays, so "is it in the platform, since when, from which run" is still answered, but it
    loses its payload and message (either may hold personal data); every other old row is deleted.
    ``when_due`` (after each run): do nothing unless an old row still holds a payload or message,
    so the full pass runs about once a day (measured: ~0.5 s per million rows) instead of every run.
    """
    today = now().replace(hour=0, minute=0, second=0, microsecond=0)
    cutoff = today - timedelta(days=retention_days)
    where, params = ("activation = ?", [activation]) if activation else ("TRUE", [])
    if when_due and not first_row(
        conn,
        f"""SELECT 1 FROM {SCHEMA}.sync_records WHERE {where} AND recorded_at < ?
                  AND (payload IS NOT NULL OR message IS NOT NULL) LIMIT 1""",
        [*params, cutoff],
    ):
        return Pruned(0, 0)
    with transaction(conn):
        row_id = conn.dialect.row_id
        deleted = conn.modify(
            f"""DELETE FROM {SCHEMA}.sync_records WHERE {where} AND recorded_at < ? AND {row_id} NOT IN (
                SELECT {row_id} FROM (
                  SELECT {row_id}, row_number() OVER (PARTITION BY activation, partition_key, key ORDER BY recorded_at DESC, seq DESC) AS version
                  FROM {SCHEMA}.sync_records WHERE {where} AND status = 'confirmed') AS confirmed
                WHERE version = 1)""",
            [*params, cutoff, *params],
        )
        cleared = conn.modify(
            f"""UPDATE {SCHEMA}.sync_records SET payload = NULL, message = NULL
                WHERE {where} AND recorded_at < ? AND (payload IS NOT NULL OR message IS NOT NULL)""",
            [*params, cutoff],
        )
    return Pruned(deleted, cleared)
