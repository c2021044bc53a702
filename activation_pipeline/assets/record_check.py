"""``all_records_confirmed``: the asset check every activation emits with its materialization, so a
partial sync shows as a failed (WARN) check in the asset's health and partitions view, not as green.

It fails when the platform rejected records or never answered for them (both are resent next run).
Invalid rows (caught before sending, never sent) do not fail it: they are the segment's data, not the
sync's outcome, and a demo with a few malformed emails would otherwise never be clean; their count
and top reasons are in the check's metadata so they stay visible.
"""

from __future__ import annotations

from typing import Any, Callable, ContextManager

import duckdb
from dagster import AssetCheckKey, AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue, PartitionsDefinition

from activation_pipeline.sync.engine import SyncReport
from activation_pipeline.sync.state import SCHEMA

CHECK_NAME = "all_records_confirmed"
TOP_REASONS = 5


def record_check_spec(name: str, partitions_def: PartitionsDefinition | None) -> AssetCheckSpec:
    # partitioned like its activation (a Dagster preview feature in 1.13) so each day's result shows in the partitions view
    return AssetCheckSpec(
        CHECK_NAME, asset=AssetKey(["activations", name]), partitions_def=partitions_def,
        description="every record sent this run was confirmed by the platform (fails, as a warning, on rejected or "
                    "unanswered records; invalid rows are counted in its metadata)",
    )


def record_check_key(name: str) -> AssetCheckKey:
    return AssetCheckKey(AssetKey(["activations", name]), CHECK_NAME)


def top_reasons(conn: duckdb.DuckDBPyConnection, run_id: str, activation: str, partition_key: str | None,
                statuses: tuple[str, ...]) -> list[tuple[str, str, int]]:
    """(status, message, records) of this run's records with these statuses, most common message first."""
    placeholders = ", ".join("?" * len(statuses))
    return [(s, m, int(n)) for s, m, n in conn.execute(
        f"""SELECT status, coalesce(message, ''), count(DISTINCT key) FROM {SCHEMA}.sync_records
            WHERE run_id = ? AND activation = ? AND partition_key IS NOT DISTINCT FROM ? AND status IN ({placeholders})
            GROUP BY ALL ORDER BY 3 DESC, 2 LIMIT {TOP_REASONS}""",
        [run_id, activation, partition_key, *statuses],
    ).fetchall()]


def _counts(report: SyncReport) -> dict[str, int]:
    counts = report.counts
    rejected_or_unanswered = sum(v for k, v in counts.items() if k.startswith("failed_"))
    sent = rejected_or_unanswered + sum(v for k, v in counts.items() if k.startswith("succeeded_"))
    return {"sent": sent, "failed": rejected_or_unanswered, "invalid": counts.get("invalid", 0)}


def record_check_result(name: str, reports: dict[str | None, SyncReport], scoped: bool,
                        connect: Callable[[], ContextManager[duckdb.DuckDBPyConnection]]) -> AssetCheckResult:
    """The check's result from the run's reports, by ledger partition key (a scope, a day or None), and the ledger's messages."""
    counts = {scope: _counts(report) for scope, report in reports.items()}
    failing = {scope: c for scope, c in counts.items() if c["failed"]}
    with connect() as conn:
        failed_reasons = {scope: top_reasons(conn, reports[scope].run_id, name, scope, ("rejected", "no_answer"))
                          for scope in failing}
        invalid_reasons = {scope: top_reasons(conn, r.run_id, name, scope, ("invalid",))
                           for scope, r in reports.items() if counts[scope]["invalid"]}
    total = {k: sum(c[k] for c in counts.values()) for k in ("sent", "failed", "invalid")}
    metadata: dict[str, Any] = {"records_sent": total["sent"], "records_failed": total["failed"], "records_invalid": total["invalid"]}
    if failed_reasons:
        metadata["top_failure_reasons"] = MetadataValue.md(_reasons_table(failed_reasons))
    if invalid_reasons:
        metadata["top_invalid_reasons"] = MetadataValue.md(_reasons_table(invalid_reasons))
    if scoped:
        metadata["records_failed_by_scope"] = MetadataValue.json({scope or "": c["failed"] for scope, c in counts.items()})
    if failing:
        parts = []
        for scope, c in failing.items():
            where = f"{scope}: " if scoped else ""
            reason = failed_reasons[scope][0][1] if failed_reasons[scope] else "no message"
            parts.append(f"{where}{c['failed']} of {c['sent']} records sent were not confirmed (most common: {reason[:300]})")
        description = "; ".join(parts) + ". They are resent next run."
    else:
        description = f"all {total['sent']} records sent were confirmed"
    if total["invalid"]:
        description += f"; {total['invalid']} invalid rows were not sent (see top_invalid_reasons)"
    return AssetCheckResult(
        check_name=CHECK_NAME, asset_key=AssetKey(["activations", name]), passed=not failing,
        severity=AssetCheckSeverity.WARN, description=description, metadata=metadata,
    )


def _reasons_table(reasons: dict[str | None, list[tuple[str, str, int]]]) -> str:
    rows = [f"| {scope or ''} | {status} | {n} | {message[:200].replace('|', '/')} |"
            for scope, found in reasons.items() for status, message, n in found]
    return "| scope | status | records | message |\n|---|---|---|---|\n" + "\n".join(rows)
