"""Jobs and schedules built from the config.

- ``sync_everything``: every source, segment and activation;
- ``sync_<activation>``: the activation and everything upstream of it (incremental);
- ``full_resync_<activation>``: the same with run config ``full_resync: true``;
- ``sync_<activation>_schedule`` / ``full_resync_<activation>_schedule`` from ``schedule`` /
  ``full_resync_schedule``: running by default when the activation is enabled, stopped otherwise.
"""

from __future__ import annotations

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from activation_pipeline.config import ActivationConfig, ProjectConfig

Jobs = dict[str, UnresolvedAssetJobDefinition]


def activation_op(name: str) -> str:
    """The op name Dagster gives the asset ``activations/<name>`` (run config goes under it)."""
    return f"activations__{name}"


def build_jobs(config: ProjectConfig) -> Jobs:
    jobs: Jobs = {
        "sync_everything": define_asset_job(
            "sync_everything", selection=AssetSelection.all(), description="Every source, segment and activation"
        )
    }
    for name, activation in config.activations.items():
        selection = AssetSelection.assets(["activations", name]).upstream()
        tags = {"activation": name}
        jobs[f"sync_{name}"] = define_asset_job(
            f"sync_{name}", selection=selection, tags={**tags, "sync": "incremental"},
            description=f"{name} and everything upstream of it: an incremental sync",
        )
        if activation.full_resync_schedule is not None:
            jobs[f"full_resync_{name}"] = define_asset_job(
                f"full_resync_{name}", selection=selection, tags={**tags, "sync": "full_resync"},
                config={"ops": {activation_op(name): {"config": {"full_resync": True}}}},
                description=f"{name} resent in full (nothing deleted), with everything upstream of it",
            )
    return jobs


def _status(activation: ActivationConfig) -> DefaultScheduleStatus:
    return DefaultScheduleStatus.RUNNING if activation.enabled else DefaultScheduleStatus.STOPPED


def build_schedules(config: ProjectConfig, jobs: Jobs) -> list[ScheduleDefinition]:
    schedules = []
    for name, activation in config.activations.items():
        for kind, cron in (("sync", activation.cron), ("full_resync", activation.full_resync_cron)):
            if cron is None:
                continue
            expression, timezone = cron
            schedules.append(ScheduleDefinition(
                name=f"{kind}_{name}_schedule",
                job=jobs[f"{kind}_{name}"],
                cron_schedule=expression,
                execution_timezone=timezone,
                default_status=_status(activation),
                description=f"{kind.replace('_', ' ')} of {name}: {activation.schedule if kind == 'sync' else activation.full_resync_schedule}",
            ))
    return schedules
