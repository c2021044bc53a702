"""Snapshot and ledger tables (schema ``activation_state``) and the confirmation journal.

Durability without holding the warehouse: the DuckDB file allows one writer process, so a
sync never keeps a connection open while it talks to a platform. Each batch's outcomes are
appended (and fsynced) to a per-activation journal file the moment the platform answers;
every few seconds, and at the end, the journal is folded into the snapshot and ledger in
one transaction that also records the last folded sequence number. A run killed at any
point is recovered at the start of the next: unfolded journal lines are folded, so what
the platform confirmed is never sent again and what it did not confirm always is.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import polars as pl

from activation_pipeline.sql_identifiers import qualified_name

SCHEMA = "activation_state"

LEDGER_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.sync_runs (
    run_id VARCHAR, activation VARCHAR, partition_key VARCHAR, platform VARCHAR,
    mode VARCHAR, operation VARCHAR, full_resync BOOLEAN, segment_sql_hash VARCHAR,
    status VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
    planned_added BIGINT, planned_changed BIGINT, planned_removed BIGINT,
    unchanged_resent BIGINT, unchanged_skipped BIGINT,  -- unchanged rows sent again (full_only, full resync) / left alone
    succeeded BIGINT, failed BIGINT, invalid BIGINT, skipped BIGINT,
    requests BIGINT, retries BIGINT, snapshot_size BIGINT, folded_seq BIGINT, error VARCHAR
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.sync_records (
    run_id VARCHAR, partition_key VARCHAR, activation VARCHAR, key VARCHAR,
    change VARCHAR, operation VARCHAR, status VARCHAR, message VARCHAR,
    attempt INTEGER, row_hash UBIGINT, payload JSON, seq BIGINT, recorded_at TIMESTAMPTZ
);
-- every operation on a key across runs, with its run's status
CREATE OR REPLACE VIEW {SCHEMA}.record_history AS
SELECT r.activation, r.key, r.recorded_at, r.run_id, r.partition_key, s.status AS run_status,
       r.change, r.operation, r.status, r.message, r.attempt, r.payload
FROM {SCHEMA}.sync_records r LEFT JOIN {SCHEMA}.sync_runs s
  ON s.run_id = r.run_id AND s.activation = r.activation AND s.partition_key IS NOT DISTINCT FROM r.partition_key;
-- the last version of every record that a platform confirmed, per activation
CREATE OR REPLACE VIEW {SCHEMA}.latest_records AS
SELECT activation, key, operation AS last_operation, operation IN ('upsert', 'update') AS in_platform,
       payload, row_hash, run_id, partition_key, recorded_at AS confirmed_at
FROM {SCHEMA}.sync_records WHERE status = 'confirmed'
QUALIFY row_number() OVER (PARTITION BY activation, partition_key, key ORDER BY recorded_at DESC, seq DESC) = 1;
"""


# which target each (activation, partition) snapshot describes, and the rows retired when it changed
TARGET_DDL = f"""
ALTER TABLE {SCHEMA}.sync_runs ADD COLUMN IF NOT EXISTS target VARCHAR;
CREATE TABLE IF NOT EXISTS {SCHEMA}.snapshot_targets (
    activation VARCHAR, partition_key VARCHAR, destination VARCHAR, platform VARCHAR, object VARCHAR,
    identifier VARCHAR, options JSON, target VARCHAR, run_id VARCHAR, recorded_at TIMESTAMPTZ,
    column_types JSON, types_run_id VARCHAR, types_recorded_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.retired_snapshots (
    activation VARCHAR, partition_key VARCHAR, key VARCHAR, row_hash UBIGINT, run_id VARCHAR,
    confirmed_at TIMESTAMPTZ, identifier VARCHAR, target VARCHAR, retired_by_run VARCHAR, retired_at TIMESTAMPTZ
);
"""


class LedgerEntry(NamedTuple):
    """One journal/ledger line (a tuple: a million of them must be cheap to make and write)."""

    seq: int
    key: str | None
    change: str
    operation: str
    status: str
    message: str
    attempt: int
    row_hash: int | None
    payload: str | None = None  # the fields sent, as JSON
    identifier: str | None = None  # the platform id sent (kept in the snapshot: a removed record is deleted by it)


def first_row(conn: duckdb.DuckDBPyConnection, query: str, params: list[Any] | None = None) -> tuple | None:
    """The first row of a query, with the result fully consumed (DuckDB 2.0 refuses new
    statements on a connection whose previous result is still open)."""
    rows = conn.execute(query, params or []).fetchall()
    return rows[0] if rows else None


def snapshot_table(activation: str) -> str:
    return qualified_name(SCHEMA, activation)


def ensure_state(conn: duckdb.DuckDBPyConnection, activation: str) -> None:
    conn.execute(LEDGER_DDL)
    _migrate_ledger(conn)
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {snapshot_table(activation)} "
        "(key VARCHAR, row_hash UBIGINT, run_id VARCHAR, confirmed_at TIMESTAMPTZ, partition_key VARCHAR, identifier VARCHAR)"
    )
    # snapshots made before the identifier was kept: the diff fills it in from the segment (diff._fill_missing_identifiers)
    conn.execute(f"ALTER TABLE {snapshot_table(activation)} ADD COLUMN IF NOT EXISTS identifier VARCHAR")
    conn.execute(TARGET_DDL)


def _migrate_ledger(conn: duckdb.DuckDBPyConnection) -> None:
    """Bring a ledger made by an older version to the current columns (idempotent)."""
    columns = {row[0] for row in conn.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = ? AND table_name = 'sync_runs'", [SCHEMA]).fetchall()}
    if "planned_unchanged" in columns:  # it always counted the unchanged rows that were resent
        conn.execute(f"ALTER TABLE {SCHEMA}.sync_runs RENAME COLUMN planned_unchanged TO unchanged_resent")
    conn.execute(f"ALTER TABLE {SCHEMA}.sync_runs ADD COLUMN IF NOT EXISTS unchanged_skipped BIGINT")


def now() -> datetime:
    return datetime.now(timezone.utc)


def run_scope(activation: str, partition_key: str | None) -> str:
    """What one run owns exclusively: the activation, or one partition of it."""
    return activation if partition_key is None else f"{activation}.{partition_key}"


def plan_path(state_dir: Path, activation: str, partition_key: str | None, run_id: str) -> Path:
    """Where a run writes its plan: a folder per activation (partition), so its next run can clean it."""
    return state_dir / "plans" / run_scope(activation, partition_key) / f"{run_id}.parquet"


def remove_stale_plans(state_dir: Path, activation: str, partition_key: str | None) -> None:
    """Delete plans a killed run of this activation (partition) left; call under the run's lock (none is in use)."""
    stale = list(plan_path(state_dir, activation, partition_key, "_").parent.glob("*.parquet"))
    stale += (state_dir / "plans").glob(f"{activation}-*.parquet")  # named so before plans had a folder each
    for path in stale:
        path.unlink(missing_ok=True)


class Journal:
    """Append-only, fsynced record of platform answers not yet folded into DuckDB."""

    def __init__(self, directory: Path, activation: str, partition_key: str | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{run_scope(activation, partition_key)}.jsonl"

    def append(self, run_id: str, entries: Iterable[LedgerEntry]) -> None:
        lines = "".join(json.dumps([run_id, *e]) + "\n" for e in entries)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> list[tuple[str, LedgerEntry]]:
        """(run id, entry) pairs, oldest first."""
        if not self.path.exists():
            return []
        rows = []
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    run_id, *fields = json.loads(line)
                except (json.JSONDecodeError, ValueError):
                    break  # a torn last line from a kill mid-write: that batch was never confirmed
                rows.append((run_id, LedgerEntry(*fields)))
        return rows

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def fold(
    conn: duckdb.DuckDBPyConnection,
    activation: str,
    run_id: str,
    partition_key: str | None,
    entries: list[LedgerEntry],
) -> int:
    """Apply journal entries to snapshot and ledger in one transaction; return the new folded seq.

    Entries at or below the run's recorded ``folded_seq`` are skipped, so folding the same
    journal twice (a crash between commit and journal removal) changes nothing.
    """
    folded = first_row(
        conn, f"""SELECT coalesce(max(folded_seq), -1) FROM {SCHEMA}.sync_runs
                  WHERE run_id = ? AND activation = ? AND partition_key IS NOT DISTINCT FROM ?""",
        [run_id, activation, partition_key],
    )[0]
    fresh = [e for e in entries if e.seq > folded]
    if not fresh:
        return folded
    frame = pl.DataFrame(
        fresh, orient="row",
        schema={"seq": pl.Int64, "key": pl.Utf8, "change": pl.Utf8, "operation": pl.Utf8, "status": pl.Utf8,
                "message": pl.Utf8, "attempt": pl.Int32, "row_hash": pl.UInt64, "payload": pl.Utf8, "identifier": pl.Utf8},
    )
    last = int(frame["seq"].max())
    snap = snapshot_table(activation)
    conn.register("journal_batch", frame)
    try:
        conn.execute("BEGIN TRANSACTION")
        conn.execute(
            f"""DELETE FROM {snap} WHERE partition_key IS NOT DISTINCT FROM ? AND key IN (
                SELECT key FROM journal_batch WHERE status = 'confirmed' AND operation IN ('upsert', 'update', 'delete'))""",
            [partition_key],
        )
        conn.execute(
            f"""INSERT INTO {snap} (key, row_hash, run_id, confirmed_at, partition_key, identifier)
                SELECT key, arg_max(row_hash, seq), ?, now(), ?, arg_max(identifier, seq) FROM journal_batch
                WHERE status = 'confirmed' AND operation IN ('upsert', 'update')  -- update: update_only's confirmed updates
                  AND key NOT IN (SELECT key FROM journal_batch WHERE status = 'confirmed' AND operation = 'delete')
                GROUP BY key""",
            [run_id, partition_key],
        )
        conn.execute(
            f"""INSERT INTO {SCHEMA}.sync_records
                SELECT ?, ?, ?, key, change, operation, status, nullif(message, ''), attempt, row_hash, payload, seq, now()
                FROM journal_batch ORDER BY seq""",
            [run_id, partition_key, activation],
        )
        conn.execute(
            f"UPDATE {SCHEMA}.sync_runs SET folded_seq = ? WHERE run_id = ? AND activation = ? AND partition_key IS NOT DISTINCT FROM ?",
            [last, run_id, activation, partition_key],
        )
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.unregister("journal_batch")
    return last


def recover(conn: duckdb.DuckDBPyConnection, journal: Journal, activation: str, partition_key: str | None = None) -> int:
    """Fold what a killed run of this activation (partition) left in its journal; mark such
    runs 'interrupted'. Returns the lines recovered."""
    entries = journal.read()
    by_run: dict[str, list[LedgerEntry]] = {}
    for run_id, entry in entries:
        by_run.setdefault(run_id, []).append(entry)
    for run_id, run_entries in by_run.items():  # the journal belongs to this (activation, partition)
        fold(conn, activation, run_id, partition_key, run_entries)
    conn.execute(
        f"""UPDATE {SCHEMA}.sync_runs SET status = 'interrupted', finished_at = coalesce(finished_at, now()),
            error = coalesce(error, 'the run stopped before it finished; its confirmed records were recovered')
            WHERE activation = ? AND partition_key IS NOT DISTINCT FROM ? AND status = 'running'""",
        [activation, partition_key],
    )
    journal.clear()
    return len(entries)


def start_run(conn: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> None:
    columns = ", ".join(row)
    conn.execute(
        f"INSERT INTO {SCHEMA}.sync_runs ({columns}) VALUES ({', '.join('?' * len(row))})",
        list(row.values()),
    )


def finish_run(conn: duckdb.DuckDBPyConnection, run_id: str, activation: str, values: dict[str, Any],
               partition_key: str | None = None) -> None:
    assignments = ", ".join(f"{column} = ?" for column in values)
    conn.execute(
        f"UPDATE {SCHEMA}.sync_runs SET {assignments} WHERE run_id = ? AND activation = ? AND partition_key IS NOT DISTINCT FROM ?",
        [*values.values(), run_id, activation, partition_key],
    )


def last_synced_sql_hash(conn: duckdb.DuckDBPyConnection, activation: str) -> str | None:
    row = first_row(
        conn, f"""SELECT segment_sql_hash FROM {SCHEMA}.sync_runs
            WHERE activation = ? AND status IN ('succeeded', 'partial') ORDER BY started_at DESC LIMIT 1""",
        [activation],
    )
    return row[0] if row else None


def snapshot_size(conn: duckdb.DuckDBPyConnection, activation: str, partition_key: str | None = None) -> int:
    """Records confirmed in the platform, for the whole activation or one of its partitions."""
    if partition_key is None:
        return first_row(conn, f"SELECT count(*) FROM {snapshot_table(activation)}")[0]
    return first_row(conn, f"SELECT count(*) FROM {snapshot_table(activation)} WHERE partition_key = ?", [partition_key])[0]


class Pruned(NamedTuple):
    deleted: int  # record rows dropped (their counts stay in sync_runs)
    cleared: int  # rows kept (each record's last confirmed version) whose payload and message were dropped


def prune_ledger(conn: duckdb.DuckDBPyConnection, retention_days: int, activation: str | None = None,
                 when_due: bool = False) -> Pruned:
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
        conn, f"""SELECT 1 FROM {SCHEMA}.sync_records WHERE {where} AND recorded_at < ?
                  AND (payload IS NOT NULL OR message IS NOT NULL) LIMIT 1""", [*params, cutoff]):
        return Pruned(0, 0)
    conn.execute("BEGIN TRANSACTION")
    try:
        deleted = conn.execute(
            f"""DELETE FROM {SCHEMA}.sync_records WHERE {where} AND recorded_at < ? AND rowid NOT IN (
                SELECT rowid FROM {SCHEMA}.sync_records WHERE {where} AND status = 'confirmed'
                QUALIFY row_number() OVER (PARTITION BY activation, partition_key, key ORDER BY recorded_at DESC, seq DESC) = 1)""",
            [*params, cutoff, *params],
        ).fetchall()[0][0]
        cleared = conn.execute(
            f"""UPDATE {SCHEMA}.sync_records SET payload = NULL, message = NULL
                WHERE {where} AND recorded_at < ? AND (payload IS NOT NULL OR message IS NOT NULL)""",
            [*params, cutoff],
        ).fetchall()[0][0]
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return Pruned(deleted, cleared)
