"""Dagster's own automation, where it fits: conditions for continuous activations, the source
files' observation, and freshness policies for scheduled activations.

- ``continuous: true`` on an enabled activation: the activation, the segments it reads and
  their sources carry ``sync_when_upstream_changes()``; Dagster's automation-condition sensor
  ``continuous_syncs`` (running by default, created only when such an activation exists)
  evaluates them every 30 seconds and launches the runs. A disabled activation gets no
  condition, so nothing syncs it unattended.
- ``observe_source_files``: a sensor that reads each source file's size and mtime every 30
  seconds and, when one changed, reports the file's data version (activation_pipeline/assets/observed_files.py) as
  an observation of ``source_files/<table>``, without launching a run. (A condition on the
  observable asset itself would launch an observation run on every tick, one per partition of a
  partitioned file.) Running by default when a continuous activation exists.
- an enabled activation with a ``schedule`` gets ``FreshnessPolicy.cron`` on that cron: it is
  fresh while the sync of each tick landed before the next tick, and shows as failing (in the UI
  and over GraphQL) once a tick passed with no sync.

The conditions replace the hand-made ``continuous_<activation>`` sensors (same runs: the
activation and what it needs, when a file it reads changed; nothing on the first look at the
files). ``source_files_changed`` (activation_pipeline/automation.py) stays: an opt-in switch in the
UI for the activations that did not ask to be continuous, with run keys that never launch one
change twice and one run per changed day, where a condition would need config on every asset.

See https://docs.dagster.io/guides/automate/declarative-automation/ for the conditions.
(No ``from __future__ import annotations``: Dagster reads sensors' parameters from their annotations.)
"""

import functools
import json
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from dagster import (
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    FreshnessPolicy,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from activation_pipeline.assets.observed_files import (
    DATA_VERSION_TAG,
    UNREACHABLE,
    data_versions,
    file_key,
    source_state,
)
from activation_pipeline.automation import downstream_of_sources, upstream_sources
from activation_pipeline.config import ActivationConfig, ProjectConfig

CONTINUOUS_SENSOR = "continuous_syncs"
OBSERVER = "observe_source_files"
INTERVAL_SECONDS = 30
# round intervals tried first when reading a cron's shortest interval, longest first
ROUND_INTERVALS = tuple(timedelta(minutes=m) for m in (10080, 1440, 720, 480, 360, 240, 180, 120, 60, 30, 20, 15, 10, 5, 2, 1))
LONGEST_INTERVAL = timedelta(days=366)


def sync_when_upstream_changes(ignored: Sequence[AssetKey] = (), first_observation_counts: bool = True) -> AutomationCondition:
    """``AutomationCondition.eager()`` over every partition, not only the latest day: a day whose
    rows changed runs again, and only that day (data versions are per day).

    ``ignored`` deps neither trigger nor hold back a run (an activation's ``after:``). Without
    ``first_observation_counts``, a file's first observation is its baseline, not a change: the
    observer's first report after Dagster starts syncs nothing, whichever sensor ticks first."""
    # as eager()'s any_deps_updated (a dep updated, or requested in this same tick), but a dep counts only when its
    # data version changed: a source reloaded unchanged by another activation's job is not new data
    changed = AutomationCondition.data_version_changed() | AutomationCondition.will_be_requested()
    updated = AutomationCondition.any_deps_match(changed.with_label("data_version_changed_or_will_be_requested"))
    if not first_observation_counts:
        first_seen = (~AutomationCondition.missing()).newly_true()
        updated = AutomationCondition.any_deps_match((AutomationCondition.newly_updated() & ~first_seen).with_label("changed_since_first_seen"))
    missing = AutomationCondition.any_deps_missing()
    running = AutomationCondition.any_deps_in_progress()
    if ignored:
        selection = AssetSelection.assets(*ignored)
        updated, missing, running = updated.ignore(selection), missing.ignore(selection), running.ignore(selection)
    return (updated.since_last_handled() & ~missing & ~running & ~AutomationCondition.in_progress()).with_label("sync_when_upstream_changes")


def continuous_conditions(config: ProjectConfig) -> dict[AssetKey, AutomationCondition]:
    """The condition of each asset a continuous, enabled activation needs: its sources, segments and itself.

    An unpartitioned file's first observation is a baseline (as the hand-made sensor's first tick
    was); a partitioned file's is not, since a day first seen is a new day to sync."""
    conditions: dict[AssetKey, AutomationCondition] = {}
    for name, activation in sorted(config.activations.items()):
        if not (activation.continuous and activation.enabled):
            continue
        for key in downstream_of_sources(config, upstream_sources(config, name), {name}):
            whole_file = key.path[0] == "sources" and config.sources[key.path[1]].partition_column is None
            conditions.setdefault(key, sync_when_upstream_changes(first_observation_counts=not whole_file))
        conditions[AssetKey(["activations", name])] = sync_when_upstream_changes([AssetKey(["activations", a]) for a in activation.after])
    return conditions


@functools.lru_cache(maxsize=64)
def shortest_interval(cron: str) -> timedelta:
    """The shortest time between two ticks of ``cron``, in whole minutes, as Dagster reads the cron:
    the longest lower bound ``FreshnessPolicy.cron`` accepts (it refuses one longer than that).

    Every ``FreshnessPolicy.cron`` samples up to 1,000 ticks of the cron, and every process that loads
    the definitions (each step's, under the multiprocess executor) builds them: one refused policy, whose
    message names the interval, costs one sampling instead of a search's dozen."""
    try:
        FreshnessPolicy.cron(deadline_cron=cron, lower_bound_delta=timedelta(days=366 * 30))
    except Exception as refusal:  # noqa: BLE001 - Dagster's CheckError, which it does not export
        named = re.search(r"smallest cron interval of \(([0-9.]+) seconds", str(refusal))
        if named:
            return timedelta(minutes=int(float(named.group(1))) // 60)
    return searched_interval(cron)  # Dagster words its refusal otherwise: find the bound by trying


def searched_interval(cron: str) -> timedelta:
    """``shortest_interval`` found by bisection over the lower bounds ``FreshnessPolicy.cron`` accepts."""

    def accepted(delta: timedelta) -> bool:
        try:
            FreshnessPolicy.cron(deadline_cron=cron, lower_bound_delta=delta)
        except Exception:  # Dagster's CheckError, which it does not export
            return False
        return True

    low = next(d for d in ROUND_INTERVALS if accepted(d))  # one minute is always accepted
    longer = [d for d in ROUND_INTERVALS if d > low]
    high = longer[-1] if longer else LONGEST_INTERVAL
    if not accepted(low + timedelta(minutes=1)):
        return low
    lo, hi = int(low.total_seconds()) // 60, int(high.total_seconds()) // 60
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if accepted(timedelta(minutes=mid)) else (lo, mid)
    return timedelta(minutes=lo)


def freshness_policy(activation: ActivationConfig) -> FreshnessPolicy | None:
    """Synced within its schedule: the latest tick's window reaches back one interval, to the tick before."""
    if not activation.auto_synced or activation.cron is None:
        return None
    return _cron_policy(*activation.cron)


@functools.lru_cache(maxsize=64)
def _cron_policy(expression: str, timezone: str) -> FreshnessPolicy:  # Dagster samples a year of ticks to build one
    return FreshnessPolicy.cron(deadline_cron=expression, lower_bound_delta=shortest_interval(expression), timezone=timezone)


def with_automation(config: ProjectConfig, assets: list[Any]) -> list[Any]:
    """The assets, with the continuous activations' conditions and the scheduled activations' freshness policies."""
    conditions = continuous_conditions(config)
    policies = {AssetKey(["activations", name]): policy for name, a in config.activations.items() if (policy := freshness_policy(a))}

    def amend(spec: AssetSpec) -> AssetSpec:
        condition, policy = conditions.get(spec.key), policies.get(spec.key)
        if condition is not None:
            spec = spec.replace_attributes(automation_condition=condition)
        return spec.replace_attributes(freshness_policy=policy) if policy is not None else spec

    return [
        asset.map_asset_specs(amend) if isinstance(asset, AssetsDefinition) and set(asset.keys) & (set(conditions) | set(policies)) else asset
        for asset in assets
    ]


def build_automation_sensors(config: ProjectConfig) -> list[SensorDefinition]:
    """The file observer, and the continuous activations' automation-condition sensor when there are any."""
    continuous = build_continuous_sensor(config)
    return [build_file_observer(config), *([continuous] if continuous else [])]


def build_continuous_sensor(config: ProjectConfig) -> AutomationConditionSensorDefinition | None:
    """Dagster's automation-condition sensor for the continuous activations' assets, running by default."""
    conditions = continuous_conditions(config)
    if not conditions:
        return None
    return AutomationConditionSensorDefinition(
        CONTINUOUS_SENSOR,
        target=AssetSelection.assets(*conditions),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=INTERVAL_SECONDS,
        description="Syncs each continuous activation (and its segments and sources) when a source file it reads changed",
    )


def build_file_observer(config: ProjectConfig) -> SensorDefinition:
    """Reports each changed source file's data version as an observation of ``source_files/<table>``."""
    sources = sorted(config.sources)
    watching = any(a.continuous and a.enabled for a in config.activations.values())

    @sensor(
        name=OBSERVER,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING if watching else DefaultSensorStatus.STOPPED,
        description="Observes the source files: a changed file's data version (one per day when partitioned)",
    )
    def _observe(context: SensorEvaluationContext):
        previous = json.loads(context.cursor) if context.cursor else {}
        files = {name: source_state(config, name, previous.get(name)) for name in sources}
        changed = [name for name, state in files.items() if state != previous.get(name) and state != UNREACHABLE]
        if not changed:
            return SkipReason("no source file changed")
        events = [
            AssetObservation(file_key(name), partition=day, tags={DATA_VERSION_TAG: version})
            for name in changed
            for day, version in sorted(data_versions(config, name).items(), key=lambda item: item[0] or "")
        ]
        return SensorResult(asset_events=events, cursor=json.dumps(files))

    return _observe
