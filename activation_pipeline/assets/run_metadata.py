"""What an activation run shows in Dagster: a summary table first, then the counts Dagster plots over
materializations, the failed and invalid records as tables, and the run's ledger query, whole."""


from typing import Any

from dagster import MetadataValue, TableColumn, TableMetadataValue, TableRecord, TableSchema

from activation_pipeline.sql_identifiers import quote_literal
from activation_pipeline.sync.engine import SyncReport
from activation_pipeline.sync.state import SCHEMA

RECORD_SAMPLE = 20  # failed / invalid records listed per run
MESSAGE_CHARS = 300

SUMMARY_SCHEMA = TableSchema(columns=[
    TableColumn("records", "string", description="the diff's class of record (total: the run)"),
    TableColumn("planned", "int", description="to send this run (unchanged: resent by full_only or a full resync)"),
    TableColumn("succeeded", "int", description="confirmed by the platform: in the snapshot now"),
    TableColumn("failed", "int", description="rejected, or no answer: not in the snapshot, resent next run"),
    TableColumn("skipped", "int", description="update_only: not in the platform, so not created"),
    TableColumn("not sent", "int", description="removed: left in the platform (upsert); unchanged: identical to the "
                                                "snapshot; invalid: caught before sending, with the reason"),
])
RECORDS_SCHEMA = TableSchema(columns=[
    TableColumn("key", "string", description="the segment's primary key"),
    TableColumn("change", "string", description="added, changed, removed, unchanged (resent) or invalid"),
    TableColumn("status", "string", description="rejected / no_answer (failed), invalid"),
    TableColumn("message", "string", description="what the platform said, or why the record was not sent"),
])
SCOPES_SCHEMA = TableSchema(columns=[
    TableColumn("scope", "string"),
    TableColumn("status", "string"),
    TableColumn("added", "int", description="succeeded"),
    TableColumn("changed", "int", description="succeeded"),
    TableColumn("removed", "int", description="succeeded"),
    TableColumn("failed", "int"),
    TableColumn("invalid", "int"),
    TableColumn("snapshot", "int", description="records the platform confirmed, after the run"),
])


def summary_table(report: SyncReport) -> TableMetadataValue:
    """Added / changed / removed / unchanged × planned / succeeded / failed, with what was not sent, and the total."""
    counts = report.counts
    rows: list[dict[str, Any]] = []
    not_sent = {"removed": counts.get("removed_left_in_platform", 0), "unchanged": counts.get("unchanged_skipped", 0)}
    for change in ("added", "changed", "removed", "unchanged"):
        rows.append({"records": change, "planned": counts.get(f"planned_{change}", 0), "succeeded": counts.get(f"succeeded_{change}", 0),
                     "failed": counts.get(f"failed_{change}", 0), "skipped": None, "not sent": not_sent.get(change)})
    rows.append({"records": "invalid", "planned": None, "succeeded": None, "failed": None, "skipped": None,
                 "not sent": counts.get("invalid", 0)})
    total = {column: sum(row[column] or 0 for row in rows) for column in ("planned", "succeeded", "failed", "not sent")}
    rows.append({"records": "total", **total, "skipped": counts.get("skipped", 0)})
    return MetadataValue.table(records=[TableRecord(row) for row in rows], schema=SUMMARY_SCHEMA)


def records_table(records: list[tuple[str | None, str, str, str]]) -> TableMetadataValue:
    """(key, change, status, message) rows: the failed records with the platform's message, or the invalid with the reason."""
    return MetadataValue.table(
        records=[TableRecord({"key": key, "change": change, "status": status, "message": (message or "")[:MESSAGE_CHARS]})
                 for key, change, status, message in records[:RECORD_SAMPLE]],
        schema=RECORDS_SCHEMA,
    )


def scopes_table(reports: dict[str, SyncReport]) -> TableMetadataValue:
    return MetadataValue.table(
        records=[TableRecord({
            "scope": scope, "status": r.status, "added": r.counts.get("succeeded_added", 0), "changed": r.counts.get("succeeded_changed", 0),
            "removed": r.counts.get("succeeded_removed", 0), "failed": r.failed,
            "invalid": r.counts.get("invalid", 0), "snapshot": r.snapshot_size,
        }) for scope, r in reports.items()],
        schema=SCOPES_SCHEMA,
    )


def ledger_query(run_id: str, activation: str, partitions: list[str]) -> str:
    """The SQL that lists this run's record operations, to paste as is (a partitioned run names its day or scopes)."""
    where = f"WHERE run_id = {quote_literal(run_id)} AND activation = {quote_literal(activation)}"
    if len(partitions) == 1:
        where += f" AND partition_key = {quote_literal(partitions[0])}"
    elif partitions:
        where += f" AND partition_key IN ({', '.join(quote_literal(p) for p in partitions)})"
    return (f"-- this run's record operations and the platform's answers (warehouse schema {SCHEMA})\n"
            f"SELECT partition_key, key, change, operation, status, message, attempt, recorded_at\n"
            f"FROM {SCHEMA}.sync_records\n{where}\nORDER BY partition_key, seq;")


def invalid_records(conn: Any, run_id: str, activation: str, partition_key: str | None) -> list[tuple[str | None, str, str, str]]:
    """The run's first invalid records with their reason, from the ledger."""
    return [tuple(row) for row in conn.execute(  # type: ignore[misc]
        f"""SELECT key, change, status, message FROM {SCHEMA}.sync_records
            WHERE run_id = ? AND activation = ? AND partition_key IS NOT DISTINCT FROM ? AND status = 'invalid'
            ORDER BY seq LIMIT {RECORD_SAMPLE}""",
        [run_id, activation, partition_key],
    ).fetchall()]
