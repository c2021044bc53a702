"""``all_records_confirmed``: the asset check every activation emits with its materialization, so a
partial sync shows as a failed (WARN) check in the asset's health and partitions view, not as green.

It fails when the platform rejected records or never answered for them (both are resent next run);
records an update_only sync skips (not in the platform) are that mode's contract and do not fail it.
Invalid rows (caught before sending, never sent) do not fail it: they are the segment's data, not the
sync's outcome, and a demo with a few malformed emails would otherwise never be clean; their count
and top reasons are in the check's metadata so they stay visible.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    MetadataValue,
    PartitionsDefinition,
    PreviewWarning,
)

from activation_pipeline.sync.engine import SyncReport
from activation_pipeline.sync.state import Reason, top_reasons
from activation_pipeline.warehouse import Session

CHECK_NAME = "all_records_confirmed"
FAILED = ("rejected", "no_answer")  # the platform refused the record, or never answered for it


def record_check_spec(name: str, partitions_def: PartitionsDefinition | None) -> AssetCheckSpec:
    # partitioned like its activation, so each day's result shows in the partitions view; Dagster 1.13 calls a
    # partitioned check "preview" and warns at every definitions load: chosen knowingly, so not repeated to users
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)
        return AssetCheckSpec(
            CHECK_NAME,
            asset=AssetKey(["activations", name]),
            partitions_def=partitions_def,
            description="every record sent this run was confirmed by the platform (fails, as a warning, on rejected or "
            "unanswered records; invalid rows are counted in its metadata)",
        )


def record_check_key(name: str) -> AssetCheckKey:
    return AssetCheckKey(AssetKey(["activations", name]), CHECK_NAME)


def _counts(report: SyncReport) -> dict[str, int]:
    return {"sent": report.succeeded + report.failed, "failed": report.failed, "invalid": report.counts.invalid}


def record_check_result(
    name: str, reports: dict[str | None, SyncReport], scoped: bool, connect: Callable[[], AbstractContextManager[Session]]
) -> AssetCheckResult:
    """The check's result from the run's reports, by ledger partition key (a scope, a day or None), and the ledger's messages."""
    counts = {scope: _counts(report) for scope, report in reports.items()}
    failing = {scope: c for scope, c in counts.items() if c["failed"]}
    with connect() as conn:
        failed_reasons = {scope: top_reasons(conn, name, [reports[scope].run_id], FAILED, scope) for scope in failing}
        invalid_reasons = {
            scope: top_reasons(conn, name, [r.run_id], ("invalid",), scope) for scope, r in reports.items() if counts[scope]["invalid"]
        }
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
            found = failed_reasons[scope]
            why = f"; most common ({found[0].records}): {found[0].example[:300]}" if found else ""
            parts.append(f"{where}{c['failed']} of {c['sent']} records sent were not confirmed{why}")
        description = "; ".join(parts) + ". They are resent next run."
    elif any(r.dry_run for r in reports.values()):
        description = "dry run: nothing was sent"
    else:
        description = f"all {total['sent']} records sent were confirmed"
    if total["invalid"]:
        rows = "1 invalid row was" if total["invalid"] == 1 else f"{total['invalid']} invalid rows were"
        description += f"; {rows} not sent (see top_invalid_reasons)"
    return AssetCheckResult(
        check_name=CHECK_NAME,
        asset_key=AssetKey(["activations", name]),
        passed=not failing,
        severity=AssetCheckSeverity.WARN,
        description=description,
        metadata=metadata,
    )


def _reasons_table(reasons: dict[str | None, list[Reason]]) -> str:
    def cell(text: str) -> str:
        return text[:200].replace("|", "/").replace("\n", " ")

    rows = [
        f"| {scope or ''} | {r.status} | {r.records} | {cell(r.reason)} | {cell(r.example_key)}: {cell(r.example)} |"
        for scope, found in reasons.items()
        for r in found
    ]
    return "| scope | status | records | reason | e.g. |\n|---|---|---|---|---|\n" + "\n".join(rows)
