"""The ``activation_state`` schema: the ledger's tables and views, each activation's snapshot table,
and the small readers every state module shares."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime, timezone
from typing import Any

import polars as pl

from activation_pipeline.sql_identifiers import qualified_name
from activation_pipeline.warehouse import Dialect, Session

SCHEMA = "activation_state"


def ledger_ddl(dialect: Dialect) -> str:
    """The ledger's tables and views, in ``dialect``'s types (the views are portable SQL)."""
    return f"""
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
    attempt INTEGER, row_hash {dialect.hash_type}, payload {dialect.json_type}, seq BIGINT, recorded_at TIMESTAMPTZ
);
-- every operation on a key across runs, with its run's status
CREATE OR REPLACE VIEW {SCHEMA}.record_history AS
SELECT r.activation, r.key, r.recorded_at, r.run_id, r.partition_key, s.status AS run_status,
       r.change, r.operation, r.status, r.message, r.attempt, r.payload
FROM {SCHEMA}.sync_records r LEFT JOIN {SCHEMA}.sync_runs s
  ON s.run_id = r.run_id AND s.activation = r.activation AND s.partition_key IS NOT DISTINCT FROM r.partition_key;
-- the last version of every record that a platform confirmed, per activation
CREATE OR REPLACE VIEW {SCHEMA}.latest_records AS
SELECT activation, key, last_operation, in_platform, payload, row_hash, run_id, partition_key, confirmed_at
FROM (SELECT activation, key, operation AS last_operation, operation IN ('upsert', 'update') AS in_platform,
             payload, row_hash, run_id, partition_key, recorded_at AS confirmed_at,
             row_number() OVER (PARTITION BY activation, partition_key, key ORDER BY recorded_at DESC, seq DESC) AS version
      FROM {SCHEMA}.sync_records WHERE status = 'confirmed') AS confirmed
WHERE version = 1;
"""


def target_ddl(dialect: Dialect) -> str:
    """Which target each (activation, partition) snapshot describes, and the rows retired when it changed."""
    return f"""
ALTER TABLE {SCHEMA}.sync_runs ADD COLUMN IF NOT EXISTS target VARCHAR;
CREATE TABLE IF NOT EXISTS {SCHEMA}.snapshot_targets (
    activation VARCHAR, partition_key VARCHAR, destination VARCHAR, platform VARCHAR, object VARCHAR,
    identifier VARCHAR, options {dialect.json_type}, target VARCHAR, run_id VARCHAR, recorded_at TIMESTAMPTZ,
    column_types {dialect.json_type}, types_run_id VARCHAR, types_recorded_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.retired_snapshots (
    activation VARCHAR, partition_key VARCHAR, key VARCHAR, row_hash {dialect.hash_type}, run_id VARCHAR,
    confirmed_at TIMESTAMPTZ, identifier VARCHAR, target VARCHAR, retired_by_run VARCHAR, retired_at TIMESTAMPTZ
);
"""


def first_row(conn: Session, query: str, params: list[Any] | None = None) -> tuple | None:
    """The first row of a query, with the result fully consumed (DuckDB 2.0 refuses new
    statements on a connection whose previous result is still open)."""
    return conn.fetch_one(query, params)


def scalar(conn: Session, query: str, params: list[Any] | None = None) -> Any:
    """The one value of a query that always answers one row (an aggregate: ``count(*)``, ``max(…)``)."""
    row = first_row(conn, query, params)
    if row is None:
        raise LookupError(f"no row from {query.split()[0]} …: expected exactly one")
    return row[0]


def transaction(conn: Session, **frames: pl.DataFrame) -> AbstractContextManager[None]:
    """One transaction, rolled back on any error, with ``frames`` queryable by name for its statements."""
    return conn.transaction(**frames)


def snapshot_table(activation: str) -> str:
    return qualified_name(SCHEMA, activation)


def has_table(conn: Session, table: str) -> bool:
    """Whether ``activation_state.<table>`` exists (a ledger table, or an activation's snapshot)."""
    return conn.has_table(SCHEMA, table)


def ensure_state(conn: Session, activation: str) -> None:
    conn.execute(ledger_ddl(conn.dialect))
    _migrate_ledger(conn)
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {snapshot_table(activation)} "
        f"(key VARCHAR, row_hash {conn.dialect.hash_type}, run_id VARCHAR, confirmed_at TIMESTAMPTZ, partition_key VARCHAR, identifier VARCHAR)"
    )
    # snapshots made before the identifier was kept: the diff fills it in from the segment (snapshot.fill_missing_identifiers)
    conn.execute(f"ALTER TABLE {snapshot_table(activation)} ADD COLUMN IF NOT EXISTS identifier VARCHAR")
    conn.execute(target_ddl(conn.dialect))


def _migrate_ledger(conn: Session) -> None:
    """Bring a ledger made by an older version to the current columns (idempotent)."""
    if "planned_unchanged" in conn.columns(f"{SCHEMA}.sync_runs"):  # it always counted the unchanged rows that were resent
        conn.execute(f"ALTER TABLE {SCHEMA}.sync_runs RENAME COLUMN planned_unchanged TO unchanged_resent")
    conn.execute(f"ALTER TABLE {SCHEMA}.sync_runs ADD COLUMN IF NOT EXISTS unchanged_skipped BIGINT")


def now() -> datetime:
    return datetime.now(timezone.utc)
