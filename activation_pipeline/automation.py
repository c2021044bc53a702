"""Jobs and schedules built from the config: one job per activation, one for everything."""

from __future__ import annotations

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from activation_pipeline.config import ProjectConfig


def build_jobs(config: ProjectConfig) -> dict[str, UnresolvedAssetJobDefinition]:
    jobs = {
        "sync_everything": define_asset_job(
            "sync_everything", selection=AssetSelection.all(), description="Every source, segment and activation"
        )
    }
    for name in config.activations:
        selection = AssetSelection.assets(["activations", name]).upstream()
        jobs[name] = define_asset_job(f"sync_{name}", selection=selection, description=f"{name} and everything upstream of it")
    return jobs


def build_schedules(config: ProjectConfig, jobs: dict[str, UnresolvedAssetJobDefinition]) -> list[ScheduleDefinition]:
    schedules = []
    for name, activation in config.activations.items():
        if activation.cron is None:
            continue
        cron, timezone = activation.cron
        schedules.append(ScheduleDefinition(
            name=f"sync_{name}_schedule",
            job=jobs[name],
            cron_schedule=cron,
            execution_timezone=timezone,
            default_status=DefaultScheduleStatus.RUNNING if activation.enabled else DefaultScheduleStatus.STOPPED,
            description=f"{activation.schedule} sync of {name}",
        ))
    return schedules
