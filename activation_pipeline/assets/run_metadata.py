"""What an activation run shows in Dagster: a summary table first, then the counts Dagster plots over
materializations, the failed and invalid records as tables, and the run's ledger query, whole (its SQL: sync/state)."""

from collections.abc import Sequence
from typing import Any

from dagster import (
    MetadataValue,
    TableColumn,
    TableMetadataValue,
    TableRecord,
    TableSchema,
)

from activation_pipeline.sync.counts import CHANGES
from activation_pipeline.sync.engine import SyncReport
from activation_pipeline.sync.state import run_records

RECORD_SAMPLE = 20  # failed / invalid records listed per run
MESSAGE_CHARS = 300

SUMMARY_SCHEMA = TableSchema(
    columns=[
        TableColumn("records", "string", description="the diff's class of record (total: the run)"),
        TableColumn("planned", "int", description="to send this run (unchanged: resent by full_only or a full resync)"),
        TableColumn("succeeded", "int", description="confirmed by the platform: in the snapshot now"),
        TableColumn("failed", "int", description="rejected, or no answer: not in the snapshot, resent next run"),
        TableColumn("skipped", "int", description="update_only: not in the platform, so not created"),
        TableColumn(
            "not sent",
            "int",
            description="removed: left in the platform (upsert); unchanged: identical to the "
            "snapshot; invalid: caught before sending, with the reason",
        ),
    ]
)
RECORDS_SCHEMA = TableSchema(
    columns=[
        TableColumn("key", "string", description="the segment's primary key"),
        TableColumn("change", "string", description="added, changed, removed, unchanged (resent) or invalid"),
        TableColumn("status", "string", description="rejected / no_answer (failed), invalid"),
        TableColumn("message", "string", description="what the platform said, or why the record was not sent"),
    ]
)
SCOPES_SCHEMA = TableSchema(
    columns=[
        TableColumn("scope", "string"),
        TableColumn("status", "string"),
        TableColumn("added", "int", description="succeeded"),
        TableColumn("changed", "int", description="succeeded"),
        TableColumn("removed", "int", description="succeeded"),
        TableColumn("failed", "int"),
        TableColumn("invalid", "int"),
        TableColumn("snapshot", "int", description="records the platform confirmed, after the run"),
    ]
)


def summary_table(report: SyncReport) -> TableMetadataValue:
    """Added / changed / removed / unchanged × planned / succeeded / failed, with what was not sent, and the total."""
    counts = report.counts
    rows: list[dict[str, Any]] = []
    not_sent = {"removed": counts.removed_left_in_platform, "unchanged": counts.unchanged_skipped}
    for change in CHANGES:
        counted = counts.of(change)
        rows.append(
            {
                "records": change,
                "planned": counted.planned,
                "succeeded": counted.succeeded,
                "failed": counted.failed,
                "skipped": None,
                "not sent": not_sent.get(change),
            }
        )
    rows.append({"records": "invalid", "planned": None, "succeeded": None, "failed": None, "skipped": None, "not sent": counts.invalid})
    total = {column: sum(row[column] or 0 for row in rows) for column in ("planned", "succeeded", "failed", "not sent")}
    rows.append({"records": "total", **total, "skipped": counts.skipped})
    return MetadataValue.table(records=[TableRecord(row) for row in rows], schema=SUMMARY_SCHEMA)


def records_table(records: Sequence[tuple[str | None, str, str, str]]) -> TableMetadataValue:
    """(key, change, status, message) rows: the failed records with the platform's message, or the invalid with the reason."""
    return MetadataValue.table(
        records=[
            TableRecord({"key": key, "change": change, "status": status, "message": (message or "")[:MESSAGE_CHARS]})
            for key, change, status, message in records[:RECORD_SAMPLE]
        ],
        schema=RECORDS_SCHEMA,
    )


def scopes_table(reports: dict[str, SyncReport]) -> TableMetadataValue:
    return MetadataValue.table(
        records=[
            TableRecord(
                {
                    "scope": scope,
                    "status": r.status,
                    "added": r.counts.added.succeeded,
                    "changed": r.counts.changed.succeeded,
                    "removed": r.counts.removed.succeeded,
                    "failed": r.failed,
                    "invalid": r.counts.invalid,
                    "snapshot": r.snapshot_size,
                }
            )
            for scope, r in reports.items()
        ],
        schema=SCOPES_SCHEMA,
    )


def invalid_records(conn: Any, run_id: str, activation: str, partition_key: str | None) -> list[tuple[str | None, str, str, str]]:
    """The run's first invalid records with their reason, from the ledger."""
    return run_records(conn, run_id, activation, partition_key, "invalid", RECORD_SAMPLE)
