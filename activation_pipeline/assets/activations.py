"""``activations/<name>``: diff the segment against the platform's confirmed snapshot and push the changes."""


from typing import Any

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, Config, Failure, MaterializeResult, MetadataValue, asset
from pydantic import Field

from activation_pipeline.assets.metadata import column_lineage
from activation_pipeline.assets.partitions import daily_partitions
from activation_pipeline.config import ProjectConfig
from activation_pipeline.platforms import PLATFORMS
from activation_pipeline.platforms.base import PlatformError, SyncTarget
from activation_pipeline.sync.diff import PlanError, PlanRequest
from activation_pipeline.sync.engine import ActivationBusy, SafeguardTripped, SyncJob, SyncOptions, SyncReport, run_sync


class SyncRunConfig(Config):
    """Run config of an activation (Launchpad in the UI, or ``--config`` on the CLI)."""

    full_resync: bool = Field(default=False, description="resend every row as on a first run; never deletes")
    dry_run: bool = Field(default=False, description="plan and report only: send nothing, change no state")
    allow_mass_delete: bool = Field(default=False, description="lift max_delete_fraction for this run")
    allow_segment_change: bool = Field(default=False, description="accept a changed segment SQL on an auto-synced activation")
    keys: list[str] = Field(default_factory=list, description="sync just these primary keys now, whatever the snapshot says")


def destination_resource_key(destination: str) -> str:
    return f"destination_{destination}"


def build_sync_job(config: ProjectConfig, name: str, state_dir: Any) -> SyncJob:
    activation = config.activations[name]
    segment = config.segments[activation.segment]
    platform = config.destinations[activation.destination].platform
    spec = PLATFORMS[platform]
    return SyncJob(
        plan=PlanRequest(
            activation=name,
            segment_table=f'segments."{activation.segment}"',
            primary_key=segment.primary_key,
            identifier=activation.identifier or segment.primary_key,
            columns=activation.sent_columns(segment.primary_key),
            mode=activation.mode,
            operation=activation.operation,
            partition_column=config.activation_partition_column(name),
        ),
        target=SyncTarget(activation=name, title=activation.title or name, object=activation.object, options=dict(activation.options)),
        platform=platform,
        max_items_per_request=activation.max_items_per_request or spec.max_items_per_request,
        concurrency=activation.concurrency,
        max_delete_fraction=activation.max_delete_fraction,
        auto_synced=activation.auto_synced,
        segment_sql_hash=segment.sql_hash,
        state_dir=state_dir,
    )


def build_activation_asset(config: ProjectConfig, name: str) -> AssetsDefinition:
    activation = config.activations[name]
    platform = config.destinations[activation.destination].platform
    resource_key = destination_resource_key(activation.destination)
    # only a partitioned activation scopes its diff, snapshot and ledger by day; an unpartitioned
    # one inside a partitioned run (sync_everything for one day) still syncs everything
    partitioned = config.activation_partition_column(name) is not None

    @asset(
        key=["activations", name],
        deps=[AssetKey(["segments", activation.segment])],
        group_name="activations",
        kinds={platform, "duckdb"},
        description=activation.title or f"{activation.segment} -> {platform} {activation.object}",
        required_resource_keys={"warehouse", resource_key},
        tags={"platform": platform, "mode": activation.mode, "operation": activation.operation},
        metadata={"destination": activation.destination, "object": activation.object},
        partitions_def=daily_partitions(config) if partitioned else None,
    )
    def _activation(context: AssetExecutionContext, config: SyncRunConfig) -> MaterializeResult:
        warehouse = context.resources.warehouse
        job = build_sync_job(project, name, warehouse.state_dir)
        options = SyncOptions(
            full_resync=config.full_resync, dry_run=config.dry_run, allow_mass_delete=config.allow_mass_delete,
            allow_segment_change=config.allow_segment_change, only_keys=tuple(config.keys),
        )
        try:
            client = getattr(context.resources, resource_key).client()
        except PlatformError as exc:
            raise Failure(f"activations.{name}: {exc}") from None
        try:
            report = run_sync(job, client, warehouse.get_connection, options, run_id=context.run_id,
                              partition_key=context.partition_key if partitioned else None, log=context.log)
        except (SafeguardTripped, ActivationBusy, PlanError, PlatformError) as exc:
            raise Failure(description=str(exc)) from None
        finally:
            client.close()
        segment_key = AssetKey(["segments", activation.segment])
        lineage = {field: [(segment_key, column)] for field, column in job.plan.columns.items()}
        lineage["id"] = [(segment_key, job.plan.identifier)]
        return MaterializeResult(metadata={**activation_metadata(report, job), "dagster/column_lineage": column_lineage(lineage)})

    project = config
    return _activation


def activation_metadata(report: SyncReport, job: SyncJob) -> dict[str, Any]:
    counts = report.counts
    metadata: dict[str, Any] = {"status": report.status, "dry_run": report.dry_run}
    for change in ("added", "changed", "removed"):
        metadata[f"{change}_planned"] = counts.get(f"planned_{change}", 0)
        metadata[f"{change}_succeeded"] = counts.get(f"succeeded_{change}", 0)
        metadata[f"{change}_failed"] = counts.get(f"failed_{change}", 0)
    metadata.update({
        "unchanged_resent": counts.get("planned_unchanged", 0),
        "unchanged_skipped": counts.get("unchanged_skipped", 0),
        "removed_left_in_platform": counts.get("removed_left_in_platform", 0),
        "invalid": counts.get("invalid", 0),
        "skipped": counts.get("skipped", 0),
        "requests": report.requests,
        "retries": report.retries,
        "duration_seconds": report.duration_seconds,
        "rows_per_second": report.rows_per_second,
        "snapshot_size": report.snapshot_size,
        "recovered_from_interrupted_run": report.recovered,
        "ledger_run_id": report.run_id,
        "ledger_query": MetadataValue.md(
            "```sql\nSELECT key, change, operation, status, message\nFROM activation_state.sync_records\n"
            f"WHERE run_id = '{report.run_id}' AND activation = '{report.activation}';\n```"
        ),
    })
    if report.failed_sample:
        rows = "\n".join(f"| {k} | {c} | {s} | {m[:200].replace('|', '/')} |" for k, c, s, m in report.failed_sample)
        metadata["failed_records"] = MetadataValue.md(f"| key | change | status | platform message |\n|---|---|---|---|\n{rows}")
    return metadata
