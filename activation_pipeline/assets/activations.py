"""``activations/<name>``: diff the segment against the platform's confirmed snapshot and push the changes."""

import os
from dataclasses import replace
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from activation_pipeline.assets.metadata import code_references, column_lineage
from activation_pipeline.assets.partitions import daily_partitions
from activation_pipeline.assets.record_check import (
    record_check_key,
    record_check_result,
    record_check_spec,
)
from activation_pipeline.assets.run_metadata import (
    RECORD_SAMPLE,
    invalid_records,
    records_table,
    scopes_table,
    summary_table,
)
from activation_pipeline.config import ProjectConfig
from activation_pipeline.deployment import push_refusal
from activation_pipeline.platforms import PLATFORMS
from activation_pipeline.platforms.base import (
    CredentialsRefused,
    PlatformError,
    SyncTarget,
)
from activation_pipeline.sql_identifiers import qualified_name
from activation_pipeline.sync.diff import PlanError, PlanRequest
from activation_pipeline.sync.engine import (
    FAILED_SAMPLE_SIZE,
    ActivationBusy,
    SafeguardTripped,
    SyncJob,
    SyncOptions,
    SyncReport,
    run_sync,
)
from activation_pipeline.sync.state import run_records_query, run_state_for


class SyncRunConfig(Config):
    """Run config of an activation (Launchpad in the UI, or ``--config`` on the CLI)."""

    full_resync: bool = Field(default=False, description="resend every row as on a first run; never deletes")
    dry_run: bool = Field(default=False, description="plan and report only: send nothing, change no state")
    allow_mass_delete: bool = Field(default=False, description="lift max_delete_fraction for this run")
    allow_segment_change: bool = Field(default=False, description="accept a changed segment SQL on an auto-synced activation")
    allow_retarget: bool = Field(default=False, description="let a mirror activation move to its new destination/object/identifier")
    allow_type_change: bool = Field(default=False, description="send a mapped column whose type changed (not a safe widening)")
    keys: list[str] = Field(default_factory=list, description="sync just these primary keys now, whatever the snapshot says")
    scopes: list[str] = Field(default_factory=list, description="a scoped activation: sync only these of its scopes (default: all)")


def destination_resource_key(destination: str) -> str:
    return f"destination_{destination}"


def build_sync_job(config: ProjectConfig, name: str, state_dir: Any, run_state: Any = None) -> SyncJob:
    activation = config.activations[name]
    segment = config.segments[activation.segment]
    platform = config.destinations[activation.destination].platform
    spec = PLATFORMS[platform]
    scope = activation.scope
    return SyncJob(
        plan=PlanRequest(
            activation=name,
            segment_table=qualified_name("segments", activation.segment),
            primary_key=segment.primary_key,
            identifier=activation.identifier or segment.primary_key,
            columns=activation.sent_columns(segment.primary_key),
            mode=activation.mode,
            operation=activation.operation,
            partition_column=scope.column if scope else config.activation_partition_column(name),
            partition_kind="value" if scope else "day",
        ),
        target=SyncTarget(
            activation=name, title=activation.title or name, object=activation.object, options=dict(activation.options), model=spec.target
        ),
        platform=platform,
        destination=activation.destination,
        max_items_per_request=activation.max_items_per_request or spec.max_items_per_request,
        concurrency=activation.concurrency,
        max_delete_fraction=activation.max_delete_fraction,
        auto_synced=activation.auto_synced,
        segment_sql_hash=segment.sql_hash,
        state_dir=state_dir,
        run_state=run_state,
        target_options=spec.target_options,
        target_details=tuple(spec.target_details(activation.object, activation.title or name, dict(activation.options)).items())
        if spec.target_details
        else (),
        ledger_retention_days=config.ledger_retention_days,
        nulls=activation.nulls or spec.nulls_default,
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
        # `after:` activations run first in a run that selects both (and the UI draws the edge)
        deps=[AssetKey(["segments", activation.segment]), *(AssetKey(["activations", other]) for other in activation.after)],
        check_specs=[record_check_spec(name, daily_partitions(config) if partitioned else None)],
        group_name="activations",
        kinds={platform, "duckdb"},
        description=activation.title or f"{activation.segment} -> {platform} {activation.object}",
        required_resource_keys={"warehouse", resource_key},
        tags={"platform": platform, "mode": activation.mode, "operation": activation.operation},
        metadata={"destination": activation.destination, "object": activation.object, **code_references(config, "activations", name)},
        owners=activation.owners,
        partitions_def=daily_partitions(config) if partitioned else None,
    )
    def _activation(context: AssetExecutionContext, config: SyncRunConfig) -> MaterializeResult:
        warehouse = context.resources.warehouse
        job = build_sync_job(project, name, warehouse.state_dir, run_state_for(warehouse.backend))  # lock, journal: wherever the warehouse keeps them
        options = SyncOptions(
            full_resync=config.full_resync,
            dry_run=config.dry_run,
            allow_mass_delete=config.allow_mass_delete,
            allow_segment_change=config.allow_segment_change,
            allow_retarget=config.allow_retarget,
            allow_type_change=config.allow_type_change,
            only_keys=tuple(config.keys),
        )
        resource = getattr(context.resources, resource_key)
        guarded = _deployment_guard(name, resource, project)
        if guarded and not options.dry_run:
            context.log.warning(f"activations.{name}: {guarded}")
            options = replace(options, dry_run=True)
        guard_metadata = {"dry_run_reason": guarded} if guarded else {}
        segment_key = AssetKey(["segments", activation.segment])
        lineage = {field: [(segment_key, column)] for field, column in job.plan.columns.items()}
        lineage["id"] = [(segment_key, job.plan.identifier)]
        if activation.scope is None:
            if config.scopes:
                raise Failure(f"activations.{name}: run config scopes {config.scopes} given, but the activation has no scope")
            partition_key = context.partition_key if partitioned else None
            report = _sync_partition(name, job, resource, warehouse, options, context, partition_key, project)
            return MaterializeResult(
                metadata={**activation_metadata(report, job), **guard_metadata, "dagster/column_lineage": column_lineage(lineage)},
                check_results=_check_results(context, name, {partition_key: report}, False, warehouse),
            )
        # a scoped activation: each scope (store view) is its own partition of the snapshot and ledger,
        # synced in turn; one scope's failure does not stop the others, and fails the run at the end
        unknown = sorted(set(config.scopes) - set(activation.scope.values))
        if unknown:
            raise Failure(f"activations.{name}: run config scopes {unknown} are not among its scopes {activation.scope.values}")
        reports: dict[str, SyncReport] = {}
        failures: dict[str, str] = {}
        for scope in config.scopes or activation.scope.values:
            try:
                reports[scope] = _sync_partition(name, job, resource, warehouse, options, context, scope, project)
            except Failure as exc:
                failures[scope] = exc.description or str(exc)
                context.log.error(f"{name} [{activation.scope.column} = {scope}]: {failures[scope]}")
        if failures:
            raise Failure(
                description=f"activations.{name}: {len(failures)} of {len(failures) + len(reports)} scopes failed: "
                + "; ".join(f"{scope}: {why}" for scope, why in failures.items()),
                metadata=scoped_metadata(reports, job) if reports else None,
            )
        return MaterializeResult(
            metadata={**scoped_metadata(reports, job), **guard_metadata, "dagster/column_lineage": column_lineage(lineage)},
            check_results=_check_results(context, name, by_scope(reports), True, warehouse),
        )

    project = config
    return _activation


def by_scope(reports: dict[str, SyncReport]) -> dict[str | None, SyncReport]:
    """A scoped activation's reports, keyed as the check keys the ledger's partitions (None: unscoped)."""
    return {scope: report for scope, report in reports.items()}


def _check_results(
    context: AssetExecutionContext, name: str, reports: dict[str | None, SyncReport], scoped: bool, warehouse: Any
) -> list[AssetCheckResult]:
    """``all_records_confirmed`` when the run selected it (a subset run may leave it out)."""
    if record_check_key(name) not in context.selected_asset_check_keys:
        return []
    return [record_check_result(name, reports, scoped, warehouse.get_connection)]


def _sync_partition(
    name: str,
    job: SyncJob,
    resource: Any,
    warehouse: Any,
    options: SyncOptions,
    context: AssetExecutionContext,
    partition_key: str | None,
    project: ProjectConfig,
) -> SyncReport:
    """One run of the engine for the activation, or one partition (day or scope) of it."""
    try:
        client = resource.client()
    except PlatformError as exc:
        raise Failure(f"activations.{name}: {exc}") from None
    try:
        report = run_sync(job, client, warehouse.get_connection, options, run_id=context.run_id, partition_key=partition_key, log=context.log)
    except CredentialsRefused as refused:
        raise Failure(description=f"activations.{name}: {credentials_hint(job, project, refused)}") from None
    except (SafeguardTripped, ActivationBusy, PlanError, PlatformError) as exc:
        raise Failure(description=str(exc)) from None
    finally:
        client.close()
    if report.counts.invalid and not report.dry_run:  # the records and their reasons, as the ledger holds them
        with warehouse.get_connection() as conn:
            report.invalid_sample = invalid_records(conn, report.run_id, name, partition_key)
    return report


def _deployment_guard(name: str, resource: Any, config: ProjectConfig) -> str | None:
    """Why this deployment may not push this activation (deployment.py), or None."""
    try:
        endpoint = resource.endpoint()
    except PlatformError as exc:
        raise Failure(f"activations.{name}: {exc}") from None
    return push_refusal(config.deployments, endpoint)


def credentials_hint(job: SyncJob, config: ProjectConfig, refused: CredentialsRefused) -> str:
    """What a 401/403 means and where to look: the platform, the destination entry and its secrets' env vars."""
    declared = config.destinations[job.destination].secrets  # destinations.<d>.secrets, else the resource's default names
    variables = [
        f"{variable} (secrets.{secret}, {'set' if os.environ.get(variable) else 'not set'})"
        for secret, variable in PLATFORMS[job.platform].resource.secret_variables(declared).items()
    ]
    why = "wrong credentials, or a key without a permission this sync needs" if refused.status == 403 else "wrong credentials"
    return (
        f"{job.platform} refused the credentials of destinations.{job.destination} (HTTP {refused.status}: {why}); "
        f"check the environment variable(s) {', '.join(variables)}. The platform said: {refused}"
    )


def scoped_metadata(reports: dict[str, SyncReport], job: SyncJob) -> dict[str, Any]:
    """The scopes' reports added up, plus one table row per scope."""
    total = SyncReport(run_id=next(iter(reports.values())).run_id, activation=job.target.activation)
    for report in reports.values():
        total.counts += report.counts
        total.failed_sample.extend(report.failed_sample)
        total.invalid_sample.extend(report.invalid_sample)
        total.requests += report.requests
        total.retries += report.retries
        total.duration_seconds = round(total.duration_seconds + report.duration_seconds, 3)
        total.snapshot_size += report.snapshot_size
        total.recovered += report.recovered
        total.dry_run = report.dry_run
        total.type_changes += report.type_changes
    total.retargeted = "; ".join(f"{scope}: {r.retargeted}" for scope, r in reports.items() if r.retargeted)
    # a key is not found when no scope has it
    total.keys_not_found = [k for k in next(iter(reports.values())).keys_not_found if all(k in r.keys_not_found for r in reports.values())]
    statuses = {r.status for r in reports.values()}
    total.status = statuses.pop() if len(statuses) == 1 else "partial"  # a failed scope raises: it is never here
    del total.failed_sample[FAILED_SAMPLE_SIZE:]
    del total.invalid_sample[RECORD_SAMPLE:]
    return {**activation_metadata(total, job, partitions=list(reports)), "scopes": scopes_table(reports)}


def activation_metadata(report: SyncReport, job: SyncJob, partitions: list[str] | None = None) -> dict[str, Any]:
    """The summary table first; then the numeric keys Dagster plots over materializations; then the records' tables."""
    counts = report.counts
    metadata: dict[str, Any] = {"summary": summary_table(report), "status": report.status}
    for change in ("added", "changed", "removed"):
        metadata[f"{change}_planned"] = counts.of(change).planned
        metadata[f"{change}_succeeded"] = counts.of(change).succeeded
        metadata[f"{change}_failed"] = counts.of(change).failed
    metadata.update(
        {
            "unchanged_resent": counts.unchanged_resent,
            "unchanged_skipped": counts.unchanged_skipped,
            "removed_left_in_platform": counts.removed_left_in_platform,
            "invalid": counts.invalid,
            "skipped": counts.skipped,
            "requests": report.requests,
            "retries": report.retries,
            "duration_seconds": report.duration_seconds,
            "rows_per_second": report.rows_per_second,
            "dagster/row_count": report.snapshot_size,  # the records the platform holds per the snapshot, after the run
        }
    )
    if not report.dry_run:  # a dry run records nothing in the ledger
        partitions = partitions if partitions is not None else [report.partition_key] if report.partition_key else []
        metadata["ledger_run_id"] = report.run_id
        metadata["ledger_query"] = MetadataValue.md(f"```sql\n{run_records_query(report.run_id, report.activation, partitions)}\n```")
    if report.recovered:
        metadata["recovered_from_interrupted_run"] = report.recovered
    if report.retargeted:  # a first sync of a new target; the old one keeps what it holds
        metadata["retargeted"] = report.retargeted
    if report.type_changes:
        metadata["column_type_changes"] = list(report.type_changes)
    if report.keys_not_found:
        metadata["keys_not_found"] = MetadataValue.json(report.keys_not_found)
    if report.failed_sample:
        metadata["failed_records"] = records_table(report.failed_sample)
    if report.invalid_sample:
        metadata["invalid_records"] = records_table(report.invalid_sample)
    return metadata
