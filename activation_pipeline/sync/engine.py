"""Plan → batches → platform → confirm → snapshot + ledger. Platform-agnostic.

Rules kept here (README.md "Sync modes"):
1. the snapshot advances only for records the platform confirmed (journal + fold, sync/state/journal.py);
2. a per-record rejection is recorded and never fatal; a request rejected whole is split
   until the offending record stands alone; retries/backoff live in platforms/http.py;
3. invalid rows (null/duplicate key, a value the platform cannot take) are never sent;
4. safeguards: mass deletion, a changed segment on an auto-synced activation, a mirror whose
   target changed and a mapped column whose type changed refuse to run, naming the numbers
   and the run-config override (target and types: sync/target_guard.py);
5. a full resync resends everything and deletes nothing;
6. at most ``max_items_per_request`` per request (or what a ``BulkSizing`` client asks for a large run),
   ``concurrency`` requests in flight.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from activation_pipeline.platforms.base import DestinationClient, JsonItemsClient, SyncTarget
from activation_pipeline.sync import state, target_guard
from activation_pipeline.sync.counts import RunCounts
from activation_pipeline.sync.diff import Plan, PlanError, PlanRequest, plan_operations
from activation_pipeline.sync.memory import release_freed_memory
from activation_pipeline.sync.push import FAILED_SAMPLE_SIZE, Pusher
from activation_pipeline.sync.stopping import StopRequest, describe_error, is_stop
from activation_pipeline.warehouse import WAREHOUSE_ERRORS, Session

__all__ = ["FAILED_SAMPLE_SIZE", "ActivationBusy", "SafeguardTripped", "SyncJob", "SyncOptions", "SyncReport", "run_sync"]

Connect = Callable[[], AbstractContextManager[Session]]  # a short warehouse session: WarehouseResource.get_connection

LOG = logging.getLogger(__name__)


class SafeguardTripped(RuntimeError):
    """A safeguard refused the run; the message names the numbers and the override."""


class ActivationBusy(RuntimeError):
    """Another run of the same activation is in progress (its journal must not be touched)."""


@dataclass(frozen=True)
class SyncOptions:
    full_resync: bool = False
    dry_run: bool = False
    allow_mass_delete: bool = False
    allow_segment_change: bool = False
    allow_retarget: bool = False
    allow_type_change: bool = False
    only_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class SyncJob:
    """Everything one run of one activation needs, resolved from the config."""

    plan: PlanRequest
    target: SyncTarget
    platform: str
    max_items_per_request: int
    concurrency: int
    max_delete_fraction: float
    auto_synced: bool
    segment_sql_hash: str
    state_dir: Path  # where plan files go (and, without ``run_state``, the lock and journal files)
    destination: str = ""  # the destinations entry (named in errors a user acts on, part of the target)
    target_options: tuple[str, ...] = ()  # PlatformSpec.target_options: options that choose the platform record
    target_details: tuple[tuple[str, str], ...] = ()  # PlatformSpec.target_details: e.g. the title a Dotdigital list is named by
    ledger_retention_days: int | None = None  # applied to this activation's records after each successful run
    nulls: str = "send"  # "omit": a null field is left out of its record, so the platform keeps its value
    run_state: state.RunState | None = None  # the warehouse's (run_state_for(backend)); None: files under state_dir


@dataclass
class SyncReport:
    run_id: str
    activation: str
    partition_key: str | None = None  # the day or scope this report covers
    status: str = "planned"
    counts: RunCounts = field(default_factory=RunCounts)
    failed_sample: list[tuple[str, str, str, str]] = field(default_factory=list)  # key, change, status, message
    invalid_sample: list[tuple[str | None, str, str, str]] = field(default_factory=list)  # the same, read from the ledger by the asset
    requests: int = 0
    retries: int = 0
    duration_seconds: float = 0.0
    snapshot_size: int = 0
    recovered: int = 0
    dry_run: bool = False
    retargeted: str = ""  # "old target -> new target" when this run is a first sync of a new target
    type_changes: tuple[str, ...] = ()  # mapped columns whose type changed (safe widenings, or accepted)
    keys_not_found: list[str] = field(default_factory=list)  # run config keys that match no segment row

    @property
    def succeeded(self) -> int:
        return self.counts.succeeded

    @property
    def failed(self) -> int:
        """Records the platform rejected or never answered for (resent next run)."""
        return self.counts.failed

    @property
    def rows_per_second(self) -> float:
        return round((self.succeeded + self.failed) / self.duration_seconds, 1) if self.duration_seconds else 0.0


def run_sync(job: SyncJob, client: DestinationClient, connect: Connect, options: SyncOptions = SyncOptions(), **kwargs: Any) -> SyncReport:
    """Run one sync of one activation; at most one run per activation (partition) at a time, on any machine
    that shares the warehouse's run state (sync/state/run_state.py)."""
    run_state = job.run_state if job.run_state is not None else state.LocalRunState(job.state_dir)
    activation, partition_key = job.target.activation, kwargs.get("partition_key")
    try:
        with run_state.lock(activation, partition_key):  # RunBusy: only from taking it
            journal = run_state.journal(activation, partition_key)
            try:
                return _run_sync(job, client, connect, journal, options, **kwargs)
            finally:
                journal.close()
    except state.RunBusy:
        raise ActivationBusy(
            f"{job.target.activation}: another run of this activation is in progress; this one did nothing (wait for it to finish, then run again)"
        ) from None


def _run_sync(
    job: SyncJob,
    client: DestinationClient,
    connect: Connect,
    journal: state.JournalStore,
    options: SyncOptions = SyncOptions(),
    *,
    run_id: str | None = None,
    partition_key: str | None = None,
    log: logging.Logger | Any = None,
) -> SyncReport:
    log = log or LOG
    run_id = run_id or uuid.uuid4().hex
    activation = job.target.activation
    report = SyncReport(run_id=run_id, activation=activation, partition_key=partition_key, dry_run=options.dry_run)
    started = time.monotonic()
    plan_path = state.plan_path(job.state_dir, activation, partition_key, run_id)
    request = _plan_request(job, options, partition_key)
    target = target_guard.target_of(job, partition_key)
    with connect() as conn:
        state.ensure_state(conn, activation)
        report.recovered = state.recover(conn, journal, activation, partition_key)
        state.remove_stale_plans(job.state_dir, activation, partition_key)  # a killed run's: they hold personal data
        previous_sql_hash = state.last_synced_sql_hash(conn, activation)
        snapshot_before = state.snapshot_size(conn, activation, partition_key)
        recorded = state.recorded_target(conn, activation, partition_key)
        old_target = target_guard.Target.from_row(recorded) if recorded else None
        # a changed target: the snapshot says nothing of the new one, so this is its first sync
        request = replace(request, ignore_snapshot=old_target is not None and old_target != target)
        try:
            plan = plan_operations(conn, request, plan_path, _item_shapes(job, client, partition_key))
            check = target_guard.check_types(
                target, old_target, state.recorded_column_types(conn, activation, partition_key), plan.segment_types, request.columns
            )
        except PlanError as unfit:  # e.g. a mapped column left the segment: the ledger shows the run and why
            if not options.dry_run:
                state.start_run(conn, {**_run_row(job, options, run_id, partition_key, "failed", str(unfit)), "finished_at": state.now()})
            plan_path.unlink(missing_ok=True)
            raise
        report.keys_not_found = _keys_not_found(plan, request.only_keys)
    release_freed_memory()  # the diff's memory, its session closed: the push need not carry it
    if report.keys_not_found:
        where = f" (partition {partition_key})" if partition_key else ""
        log.warning(f"{activation}: run config keys not in the segment{where}, not synced: {', '.join(report.keys_not_found)}")
    if report.recovered:
        log.info(f"{activation}: recovered {report.recovered} confirmations left by an interrupted run")
    if plan.items_fallback:
        log.info(f"{activation}: request items built in Python ({plan.items_fallback})")
    report.counts = RunCounts.planned_from(plan.counts)
    report.retargeted, report.type_changes = check.retargeted, check.refused_types + check.widened_types
    if report.retargeted:
        log.warning(
            f"{activation}: target changed ({report.retargeted}), a first sync of the new one; the {snapshot_before} records "
            f"synced to the old one stay there{' (dry run: nothing changed)' if options.dry_run else ''}"
        )
    try:
        _check_safeguards(job, options, plan, snapshot_before, previous_sql_hash, check)
    except SafeguardTripped as refusal:
        if not options.dry_run:
            with connect() as conn:
                state.start_run(conn, _run_row(job, options, run_id, partition_key, "refused", str(refusal)))
        plan_path.unlink(missing_ok=True)
        raise
    if options.dry_run:
        report.status = "dry_run"
        report.snapshot_size = snapshot_before
        report.duration_seconds = time.monotonic() - started
        plan_path.unlink(missing_ok=True)
        return report

    # the platform may create fields from the segment's column types (Batch catalogs do)
    job = replace(job, target=replace(job.target.for_partition(partition_key), field_types=plan.field_types))
    with connect() as conn:
        if old_target is None or report.retargeted:  # adopt (first run, or a snapshot from before targets were kept)
            state.record_target(
                conn,
                activation,
                partition_key,
                target.as_row(),
                run_id,
                retire_from=old_target.label if old_target is not None and report.retargeted else None,
            )
        state.start_run(conn, _run_row(job, options, run_id, partition_key, "running", None))
    error: BaseException | None = None
    with StopRequest() as stop:  # SIGTERM/SIGINT from here on: stop sending, keep what arrived, record the run
        try:
            if plan.to_send:
                client.prepare(job.target)
            Pusher(job, client, connect, report, journal, run_id, partition_key, log).push(plan, stop)
        except BaseException as exc:  # recorded in the ledger, then re-raised
            error = exc
        finally:
            plan_path.unlink(missing_ok=True)
        _finish(job, report, connect, client, run_id, partition_key, started, plan.to_send, error, check, log)
    if stop.requested:
        log.warning(str(error))
        stop.replay()  # the process now stops as the signal meant (the handler we took it from acts)
    if error:
        raise error
    return report


def _finish(
    job: SyncJob,
    report: SyncReport,
    connect: Connect,
    client: DestinationClient,
    run_id: str,
    partition_key: str | None,
    started: float,
    to_send: int,
    error: BaseException | None,
    check: target_guard.TargetCheck,
    log: Any,
) -> None:
    """Record the run's outcome in its ledger row (and apply the ledger's retention after a successful run)."""
    activation = job.target.activation
    report.requests, report.retries = client.requests_sent, client.retries
    report.duration_seconds = round(time.monotonic() - started, 3)
    counts, failed, succeeded = report.counts, report.failed, report.succeeded
    report.status = "interrupted" if is_stop(error) else "failed" if error else ("partial" if failed else "succeeded")
    with connect() as conn:
        if check.retargeted and check.old is not None and not succeeded:  # nothing moved: the old target still holds it all
            state.undo_retarget(conn, activation, partition_key, check.old.as_row(), run_id)
        report.snapshot_size = state.snapshot_size(conn, activation, partition_key)
        if report.snapshot_size and not error and (not check.types_recorded or succeeded):
            state.record_column_types(conn, activation, partition_key, check.column_types, run_id)  # what the platform holds now
        state.finish_run(
            conn,
            run_id,
            activation,
            {
                "status": report.status,
                "finished_at": state.now(),
                "planned_added": counts.added.planned,
                "planned_changed": counts.changed.planned,
                "planned_removed": counts.removed.planned,
                "unchanged_resent": counts.unchanged_resent,
                "unchanged_skipped": counts.unchanged_skipped,
                "succeeded": succeeded,
                "failed": failed,
                "invalid": counts.invalid,
                "skipped": counts.skipped,
                "requests": report.requests,
                "retries": report.retries,
                "snapshot_size": report.snapshot_size,
                "error": describe_error(error, succeeded, to_send)[:2000] if error else None,
            },
            partition_key,
        )
        if job.ledger_retention_days and report.status in ("succeeded", "partial"):
            try:
                state.prune_ledger(conn, job.ledger_retention_days, activation, when_due=True)
            except WAREHOUSE_ERRORS as exc:  # the run is recorded already: a failed clean-up is retried by the next run
                log.warning(f"{activation}: the ledger retention could not be applied this time ({exc})")


def _item_shapes(job: SyncJob, client: DestinationClient, partition_key: str | None) -> Any:
    """The client's declared JSON items, for the plan statement to build (a null left out is built in Python)."""
    if not isinstance(client, JsonItemsClient) or job.nulls != "send":
        return None
    target = job.target.for_partition(partition_key)
    return lambda op, field_types: client.json_items(target, op, field_types)


def _plan_request(job: SyncJob, options: SyncOptions, partition_key: str | None) -> PlanRequest:
    return replace(job.plan, full_resync=options.full_resync, only_keys=options.only_keys, partition_key=partition_key)


def _keys_not_found(plan: Plan, only_keys: tuple[str, ...]) -> list[str]:
    if not only_keys:
        return []
    found = set(pq.read_table(plan.path, columns=["__key"]).column("__key").to_pylist())
    return [key for key in dict.fromkeys(only_keys) if key not in found]


def _check_safeguards(
    job: SyncJob, options: SyncOptions, plan: Plan, snapshot_before: int, previous_sql_hash: str | None, check: target_guard.TargetCheck
) -> None:
    name = job.target.activation
    if job.auto_synced and previous_sql_hash and previous_sql_hash != job.segment_sql_hash and not options.allow_segment_change:
        raise SafeguardTripped(
            f"{name}: the segment's SQL changed since the last sync (hash {previous_sql_hash} -> {job.segment_sql_hash}) "
            "and this activation is auto-synced; check the segment, then launch the run with run config "
            "`allow_segment_change: true` to accept the change"
        )
    retarget = target_guard.retarget_refusal(name, check, snapshot_before, job.plan.operation)
    if retarget and not options.allow_retarget:
        raise SafeguardTripped(retarget)
    if check.refused_types and not options.allow_type_change:
        raise SafeguardTripped(target_guard.type_change_refusal(name, check.new, list(check.refused_types)))
    deletes = plan.counts.get("removed_delete", 0)
    if deletes and snapshot_before and deletes / snapshot_before > job.max_delete_fraction and not options.allow_mass_delete:
        raise SafeguardTripped(
            f"{name}: refusing to delete {deletes} of {snapshot_before} synced records "
            f"({deletes / snapshot_before:.1%} > max_delete_fraction {job.max_delete_fraction:.0%}); "
            "if that is intended, launch the run with run config `allow_mass_delete: true`"
        )


def _run_row(job: SyncJob, options: SyncOptions, run_id: str, partition_key: str | None, status: str, error: str | None) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "activation": job.target.activation,
        "partition_key": partition_key,
        "platform": job.platform,
        "target": target_guard.target_of(job, partition_key).label,
        "mode": job.plan.mode,
        "operation": job.plan.operation,
        "full_resync": options.full_resync,
        "segment_sql_hash": job.segment_sql_hash,
        "status": status,
        "started_at": state.now(),
        "folded_seq": -1,
        "error": error,
    }
