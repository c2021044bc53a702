"""Jobs, schedules and sensors built from the config.

- ``sync_everything``: every source, segment and activation;
- ``sync_<activation>``: the activation and everything upstream of it (incremental);
- ``full_resync_<activation>``: the same with run config ``full_resync: true``;
- ``sync_<activation>_schedule`` / ``full_resync_<activation>_schedule`` from ``schedule`` /
  ``full_resync_schedule``: running by default when the activation is enabled, stopped otherwise;
- ``source_files_changed``: a sensor that launches incremental runs of only the segments and
  activations downstream of the source files that changed (file size and mtime, kept in its
  cursor: nothing is launched twice for one change), one run per changed day of a partitioned
  file; stopped by default; it leaves the continuous activations to Dagster's automation;
- continuous activations (``continuous: true``), file observation and freshness policies:
  activation_pipeline/asset_automation.py;
- ``record_failed_syncs``: a run-failure sensor that writes each failed step (activation,
  run, error) to ``activation_state.failed_runs`` and posts it to
  ``$ACTIVATION_FAILURE_WEBHOOK_URL`` when that is set.

(No ``from __future__ import annotations`` here: Dagster reads the sensors' resource
parameters from their annotations.)
"""

import hashlib
import json
import os
from typing import Any

import requests
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetSelection,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    define_asset_job,
    run_failure_sensor,
    schedule,
    sensor,
)

from activation_pipeline.assets.observed_files import day_fingerprints, source_state
from activation_pipeline.assets.partitions import daily_partitions
from activation_pipeline.assets.verification import CHECK_NAME, verifies
from activation_pipeline.config import ActivationConfig, ProjectConfig
from activation_pipeline.sync.state import record_failed_steps
from activation_pipeline.warehouse import WarehouseResource

FAILURE_WEBHOOK_ENV = "ACTIVATION_FAILURE_WEBHOOK_URL"
SOURCE_SENSOR_INTERVAL_SECONDS = 120

# what define_asset_job returns: Dagster does not export its class (UnresolvedAssetJobDefinition), so it is not named here
AssetJob = Any
Jobs = dict[str, AssetJob]


def activation_op(name: str) -> str:
    """The op name Dagster gives the asset ``activations/<name>`` (run config goes under it)."""
    return f"activations__{name}"


def build_jobs(config: ProjectConfig) -> Jobs:
    jobs: Jobs = {
        "sync_everything": define_asset_job("sync_everything", selection=AssetSelection.all(), description="Every source, segment and activation")
    }
    for name, activation in config.activations.items():
        # its sources and segments, not the activations it runs `after:` (they keep their own jobs and schedules)
        others = AssetSelection.assets(*(["activations", other] for other in config.activations if other != name))
        selection = AssetSelection.assets(["activations", name]).upstream() - others
        tags = {"activation": name}
        jobs[f"sync_{name}"] = define_asset_job(
            f"sync_{name}",
            selection=selection,
            tags={**tags, "sync": "incremental"},
            description=f"{name} and everything upstream of it: an incremental sync",
        )
        if activation.full_resync_schedule is not None:
            jobs[f"full_resync_{name}"] = define_asset_job(
                f"full_resync_{name}",
                selection=selection,
                tags={**tags, "sync": "full_resync"},
                config={"ops": {activation_op(name): {"config": {"full_resync": True}}}},
                description=f"{name} resent in full (nothing deleted), with everything upstream of it",
            )
        if verifies(config, name):  # read-back verification, without syncing: "verify now" and "massive verification"
            check = AssetSelection.checks(AssetCheckKey(AssetKey(["activations", name]), CHECK_NAME))
            jobs[f"verify_{name}"] = define_asset_job(
                f"verify_{name}",
                selection=check,
                tags={**tags, "sync": "verify"},
                description=f"Read back {name}'s records of its latest sync (run config keys: [...] verifies just those)",
            )
            jobs[f"verify_{name}_all"] = define_asset_job(
                f"verify_{name}_all",
                selection=check,
                tags={**tags, "sync": "verify_all"},
                config={"ops": {verification_op(name): {"config": {"all": True, "keys": []}}}},
                description=f"Massive verification: read back every record {name} should hold",
            )
    return jobs


def verification_op(name: str) -> str:
    """The op name Dagster gives the ``platform_matches`` check of ``activations/<name>``."""
    return f"activations__{name}_{CHECK_NAME}"


def _status(activation: ActivationConfig) -> DefaultScheduleStatus:
    return DefaultScheduleStatus.RUNNING if activation.enabled else DefaultScheduleStatus.STOPPED


def build_schedules(config: ProjectConfig, jobs: Jobs) -> list[ScheduleDefinition]:
    """One schedule per preset or cron, kept as ScheduleDefinitions rather than ``AutomationCondition.on_cron``:
    a tick must run the sources, the segment and the activation together in one run at the tick
    (on_cron waits until every upstream asset has updated since the tick, and runs the assets it
    requests as Dagster groups them), a partitioned activation syncs its last complete day, once
    (run key), a full resync needs run config (a condition carries none), and each schedule has
    its own on/off switch in the UI, which ``enabled`` sets."""
    schedules = []
    partitions = daily_partitions(config)
    for name, activation in config.activations.items():
        if f"verify_{name}_all" in jobs:
            expression, timezone = activation.verification_cron
            schedules.append(
                ScheduleDefinition(
                    name=f"verify_{name}_all_schedule",
                    job=jobs[f"verify_{name}_all"],
                    cron_schedule=expression,
                    execution_timezone=timezone,
                    default_status=_status(activation),
                    description=f"massive verification of {name}: every record read back ({expression} {timezone}, off-peak by default)",
                )
            )
        for kind, cron in (("sync", activation.cron), ("full_resync", activation.full_resync_cron)):
            if cron is None:
                continue
            expression, timezone = cron
            what = activation.schedule if kind == "sync" else activation.full_resync_schedule
            arguments: dict[str, Any] = dict(
                name=f"{kind}_{name}_schedule",
                job=jobs[f"{kind}_{name}"],
                cron_schedule=expression,
                execution_timezone=timezone,
                default_status=_status(activation),
            )
            if config.activation_partition_column(name) is None:
                schedules.append(ScheduleDefinition(**arguments, description=f"{kind.replace('_', ' ')} of {name}: {what}"))
            else:
                schedules.append(_latest_day_schedule(partitions, arguments, f"{kind.replace('_', ' ')} of {name}'s latest complete day: {what}"))
    return schedules


def _latest_day_schedule(partitions: Any, arguments: dict[str, Any], description: str) -> ScheduleDefinition:
    """A partitioned activation's tick syncs the last complete day: an incremental run of that partition."""

    @schedule(**arguments, description=description)
    def _tick(context: ScheduleEvaluationContext):
        day = partitions.get_last_partition_key(current_time=context.scheduled_execution_time)
        if day is None:
            return SkipReason("no complete day yet")
        return RunRequest(run_key=f"{arguments['name']}:{day}", partition_key=day)

    return _tick


def downstream_of_sources(config: ProjectConfig, sources: set[str], activations: set[str] | None = None) -> list[AssetKey]:
    """The changed sources and every segment and activation that reads them, directly or not."""
    segments: set[str] = set()
    grew = True
    while grew:
        grew = False
        for name, segment in config.segments.items():
            if name not in segments and (segment.referenced_tables("sources") & sources or segment.referenced_tables("segments") & segments):
                segments.add(name)
                grew = True
    chosen = {name for name, a in config.activations.items() if a.segment in segments and (activations is None or name in activations)}
    if activations is not None:  # only what the chosen activations need
        needed = {config.activations[name].segment for name in chosen}
        segments &= _with_upstream_segments(config, needed)
    return (
        [AssetKey(["sources", s]) for s in sorted(sources)]
        + [AssetKey(["segments", s]) for s in sorted(segments)]
        + [AssetKey(["activations", a]) for a in sorted(chosen)]
    )


def _with_upstream_segments(config: ProjectConfig, segments: set[str]) -> set[str]:
    result, frontier = set(segments), set(segments)
    while frontier:
        frontier = {t for s in frontier for t in config.segments[s].referenced_tables("segments")} - result
        result |= frontier
    return result


def upstream_sources(config: ProjectConfig, activation: str) -> set[str]:
    segments = _with_upstream_segments(config, {config.activations[activation].segment})
    return {t for s in segments for t in config.segments[s].referenced_tables("sources")}


def source_fingerprints(config: ProjectConfig, sources: set[str]) -> dict[str, str]:
    return {name: source_state(config, name) for name in sorted(sources)}


def build_source_sensor(
    config: ProjectConfig,
    name: str,
    job: AssetJob,
    sources: set[str],
    activations: set[str] | None,
    interval: int,
    status: DefaultSensorStatus,
) -> SensorDefinition:
    partitioned = {s for s in sources if config.sources[s].partition_column}

    @sensor(
        name=name,
        job=job,
        minimum_interval_seconds=interval,
        default_status=status,
        description=f"Incremental runs when these source files change: {', '.join(sorted(sources))}",
    )
    def _sensor(context: SensorEvaluationContext):
        files = source_fingerprints(config, sources)
        previous = json.loads(context.cursor) if context.cursor else None
        changed = {s for s in sources if previous is not None and files[s] != previous["files"].get(s)}
        days = dict(previous["days"]) if previous else {}
        for source in partitioned:  # day hashes are recomputed only when the file itself changed
            if previous is None or source in changed:
                days[source] = day_fingerprints(config, source)
        context.update_cursor(json.dumps({"files": files, "days": days}))
        if previous is None:
            return SkipReason("first evaluation: recorded the source files' state; changes from now on launch runs")
        if not changed:
            return SkipReason("no source file changed")
        requests = []
        whole = changed - partitioned
        if whole:
            state = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
            requests.append(
                RunRequest(
                    run_key=f"{name}:{state}",
                    asset_selection=downstream_of_sources(config, whole, activations),
                    tags={"trigger": "source_change", "changed_sources": ",".join(sorted(whole))},
                )
            )
        for source in sorted(changed & partitioned):  # one run per new or changed day: only those partitions
            before = previous["days"].get(source, {})
            for day, fingerprint in sorted(days[source].items()):
                if before.get(day) != fingerprint:
                    requests.append(
                        RunRequest(
                            run_key=f"{name}:{source}:{day}:{fingerprint}",
                            partition_key=day,
                            asset_selection=downstream_of_sources(config, {source}, activations),
                            tags={"trigger": "source_change", "changed_sources": source},
                        )
                    )
        return requests or SkipReason("the changed files hold the same rows")

    return _sensor


def build_sensors(config: ProjectConfig, jobs: Jobs) -> list[SensorDefinition]:
    continuous = {name for name, a in config.activations.items() if a.continuous and a.enabled}  # Dagster's automation syncs those
    sensors = [
        build_source_sensor(
            config,
            "source_files_changed",
            jobs["sync_everything"],
            set(config.sources),
            set(config.activations) - continuous,
            SOURCE_SENSOR_INTERVAL_SECONDS,
            DefaultSensorStatus.STOPPED,
        )
    ]
    sensors.append(record_failed_syncs)
    return sensors


def _step_failure(event: Any) -> dict[str, str | None]:
    """One failed step: its key, the activation it ran (``activations__<name>``) and the error's message."""
    step = event.step_key or ""
    error = getattr(event.event_specific_data, "error", None)  # a step failure's data carries the error
    text = (error.message if error is not None else event.message or "").strip()[:2000]
    return {"step": step or None, "activation": step.removeprefix("activations__") if step.startswith("activations__") else None, "error": text}


@run_failure_sensor(
    name="record_failed_syncs",
    default_status=DefaultSensorStatus.RUNNING,
    description="Each failed step of a run in activation_state.failed_runs, and to $ACTIVATION_FAILURE_WEBHOOK_URL",
)
def record_failed_syncs(context: RunFailureSensorContext, warehouse: WarehouseResource):
    run = context.dagster_run
    failures = [_step_failure(event) for event in context.get_step_failure_events()] or [
        {"step": None, "activation": run.tags.get("activation"), "error": (context.failure_event.message or "run failed")[:2000]}
    ]
    with warehouse.get_connection() as conn:
        record_failed_steps(conn, run.run_id, run.job_name, [(f["step"], f["activation"], f["error"] or "") for f in failures])
    url = os.environ.get(FAILURE_WEBHOOK_ENV)
    if url:
        try:
            requests.post(url, json={"run_id": run.run_id, "job": run.job_name, "failures": failures}, timeout=10).raise_for_status()
        except requests.RequestException as exc:
            context.log.warning(f"could not post the failure to ${FAILURE_WEBHOOK_ENV}: {type(exc).__name__}")
