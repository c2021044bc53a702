"""What read-back verification reads and writes (assets/verification.py runs it): the records to read
back, from ``latest_records`` and the snapshot, and one ``verify`` row per record read, in
``sync_records``; a mismatch also clears the snapshot's hash of its record, so the next sync resends it."""

from __future__ import annotations

import polars as pl

from activation_pipeline.sql_identifiers import quote_literal
from activation_pipeline.sync.state.schema import SCHEMA, snapshot_table, transaction
from activation_pipeline.sync.state.snapshot import has_snapshot
from activation_pipeline.warehouse import Session

VERIFIED_SCHEMA = {"key": pl.Utf8, "partition_key": pl.Utf8, "status": pl.Utf8, "message": pl.Utf8}


def records_to_verify(conn: Session, activation: str, keyed_by_identifier: bool, keys: list[str], everything: bool, run_id: str) -> pl.DataFrame:
    """Key, identifier, partition and last confirmed payload of the records to verify: ``keys``, or
    ``everything`` the platform should hold, or else what the latest sync confirmed (this run's, when
    the check runs after the sync)."""
    if not has_snapshot(conn, activation):  # never synced: nothing to verify
        return pl.DataFrame(schema={"key": pl.Utf8, "identifier": pl.Utf8, "partition_key": pl.Utf8, "payload": pl.Utf8})
    if keys:
        chosen, params = "AND lr.key IN (SELECT unnest(?::VARCHAR[]))", [activation, keys]
    elif everything:
        chosen, params = "", [activation]
    else:
        chosen = f"""AND lr.run_id = coalesce(
            (SELECT min(run_id) FROM {SCHEMA}.sync_runs WHERE activation = ? AND run_id = ?),
            (SELECT run_id FROM {SCHEMA}.sync_runs WHERE activation = ? AND status IN ('succeeded', 'partial') ORDER BY started_at DESC LIMIT 1))"""
        params = [activation, activation, run_id, activation]
    # the identifier the platform confirmed, from the snapshot (the key itself when they are one column)
    fallback = "lr.key" if keyed_by_identifier else "NULL"
    return conn.fetch_polars(
        f"""SELECT lr.key, coalesce(snap.identifier, {fallback}) AS identifier, lr.partition_key, lr.payload::VARCHAR AS payload
            FROM {SCHEMA}.latest_records lr
            JOIN {snapshot_table(activation)} snap ON snap.key = lr.key AND snap.partition_key IS NOT DISTINCT FROM lr.partition_key
            WHERE lr.activation = ? AND lr.in_platform AND coalesce(snap.identifier, {fallback}) IS NOT NULL {chosen}
            ORDER BY lr.partition_key, lr.key""",
        params,
    )


def record_verification(conn: Session, activation: str, run_id: str, verified: list[tuple[str, str | None, str, str | None]]) -> None:
    """(key, partition, 'matched' / 'mismatch' / 'unread', message) rows in the ledger; the snapshot forgets the
    hash of each mismatch (a sync folding at the same moment may have just written it: the cost of that race is
    one extra resend, never a loss)."""
    if not verified:
        return
    frame = pl.DataFrame(verified, schema=VERIFIED_SCHEMA, orient="row")
    with transaction(conn, verified=frame):
        conn.execute(
            f"""INSERT INTO {SCHEMA}.sync_records
                SELECT ?, partition_key, ?, key, 'verified', 'verify', status, message, 1, NULL, NULL, row_number() OVER (), now()
                FROM verified""",
            [run_id, activation],
        )
        conn.execute(
            f"""UPDATE {snapshot_table(activation)} AS s SET row_hash = NULL
                FROM verified v WHERE v.status = 'mismatch' AND v.key = s.key AND v.partition_key IS NOT DISTINCT FROM s.partition_key"""
        )


def verification_query(run_id: str, activation: str) -> str:
    """The SQL that lists a verification's ledger rows, to paste as is."""
    return (
        f"SELECT key, partition_key, status, message FROM {SCHEMA}.sync_records\n"
        f"WHERE run_id = {quote_literal(run_id)} AND activation = {quote_literal(activation)} AND operation = 'verify';"
    )
