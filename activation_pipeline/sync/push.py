"""The push: the plan streamed into requests, outcomes journaled the moment they are collected and
folded into snapshot and ledger (sync/state/journal.py). A request rejected whole is split until the
offending record stands alone; a SIGTERM/SIGINT stops submission and keeps what already arrived."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import (
    ALL_COMPLETED,
    FIRST_COMPLETED,
    Future,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from activation_pipeline.platforms.base import (
    BatchRejected,
    DestinationClient,
    ItemOutcome,
    NoAnswer,
    Op,
    Record,
)
from activation_pipeline.sync import state
from activation_pipeline.sync.diff import PAYLOAD_PREFIX, Plan
from activation_pipeline.sync.stopping import StopRequest, drain, is_stop

if TYPE_CHECKING:
    from activation_pipeline.sync.engine import Connect, SyncJob, SyncReport

FOLD_EVERY_SECONDS = 2.0
PROGRESS_EVERY_SECONDS = 5.0
MAX_CONSECUTIVE_NO_ANSWER = 3
FAILED_SAMPLE_SIZE = 20
STOP_POLL_SECONDS = 0.2  # how often the pusher looks for a stop request (SIGTERM/SIGINT) while it waits


@dataclass
class _Batch:
    op: Op
    records: list[Record]
    meta: dict[str, tuple[str, int | None, str | None, str | None]]  # key -> (change, row_hash, payload JSON, identifier)


class Pusher:
    """Streams the plan into requests, collects outcomes, journals and folds them."""

    def __init__(
        self,
        job: SyncJob,
        client: DestinationClient,
        connect: Connect,
        report: SyncReport,
        journal: state.Journal,
        run_id: str,
        partition_key: str | None,
        log: Any,
    ):
        self.job, self.client, self.connect, self.report = job, client, connect, report
        self.journal, self.run_id, self.partition_key, self.log = journal, run_id, partition_key, log
        self.seq = 0
        self.pending: list[state.LedgerEntry] = []
        self.last_fold = self.last_progress = self.started = time.monotonic()
        self.sent = 0
        self.consecutive_no_answer = 0

    def push(self, plan: Plan, stop: StopRequest) -> None:
        total = plan.to_send
        pool = ThreadPoolExecutor(max_workers=self.job.concurrency, thread_name_prefix="sync")
        in_flight: set[Future] = set()
        stopping = False
        try:
            for batch in self._batches(plan):
                if self.consecutive_no_answer >= MAX_CONSECUTIVE_NO_ANSWER or stop.requested:
                    break
                future = pool.submit(self._deliver, batch)
                future.batch = batch  # type: ignore[attr-defined]
                in_flight.add(future)
                while len(in_flight) >= self.job.concurrency * 2 and not stop.requested:
                    self._collect(in_flight, FIRST_COMPLETED, total, STOP_POLL_SECONDS)
            while in_flight and not stop.requested:
                self._collect(in_flight, ALL_COMPLETED, total, STOP_POLL_SECONDS)
        except BaseException as exc:
            stopping = is_stop(exc)  # interrupted by an exception (KeyboardInterrupt, Dagster's) rather than our handler
            raise
        finally:
            stopping = stopping or stop.requested
            unanswered = drain(in_flight, partial(self._collect, in_flight, ALL_COMPLETED, total), self.log) if stopping else 0
            pool.shutdown(wait=not stopping, cancel_futures=stopping)
            self._fold()
        if stop.requested:
            raise stop.interrupted(self.job.target.activation, self.report.succeeded, total, unanswered)
        if self.consecutive_no_answer >= MAX_CONSECUTIVE_NO_ANSWER:
            raise NoAnswer(
                f"{self.job.target.activation}: the platform did not answer {MAX_CONSECUTIVE_NO_ANSWER} requests in a row; "
                "the run stopped, everything unconfirmed is resent next run"
            )

    def _batches(self, plan: Plan) -> Iterator[_Batch]:
        size = self.job.max_items_per_request
        buffers: dict[str, _Batch] = {}
        omit_nulls = self.job.nulls == "omit"
        # ParquetFile.iter_batches reads as we go; a dataset scan reads ahead of the pusher and
        # would hold most of a large plan in memory (measured: 981 MB at 3M rows vs ~160 MB)
        plan_file = pq.ParquetFile(plan.path)
        for unfiltered in plan_file.iter_batches(batch_size=max(size * self.job.concurrency, 4096)):
            wanted = pc.or_(pc.is_valid(unfiltered.column("__op")), pc.equal(unfiltered.column("__change"), "invalid"))
            arrow_batch = unfiltered.filter(wanted)
            # platform field of each payload column, found once per batch rather than per record
            payload_fields = [(column, column[len(PAYLOAD_PREFIX) :]) for column in arrow_batch.schema.names if column.startswith(PAYLOAD_PREFIX)]
            invalid: list[state.LedgerEntry] = []
            for row in arrow_batch.to_pylist():
                change, op, key = row["__change"], row["__op"], row["__key"]
                if op == "delete":
                    fields = {}
                elif omit_nulls:
                    fields = {name: value for column, name in payload_fields if (value := row[column]) is not None}
                else:
                    fields = {name: row[column] for column, name in payload_fields}
                payload = row["__payload"]
                if change == "invalid":
                    invalid.append(self._entry(key, change, "none", "invalid", row["__reason"], row["__hash"], payload=payload))
                    continue
                identifier = row["__identifier"]
                if identifier is None and change == "removed" and self.job.plan.identifier == self.job.plan.primary_key:
                    identifier = key  # confirmed before snapshots kept identifiers: the key is the identifier
                record = Record(key=key, identifier=identifier, fields=fields)
                reason = (
                    f"the identifier ({self.job.plan.identifier}) is null or unknown"
                    if identifier is None
                    else self.client.invalid_reason(self.job.target, record, op)
                )
                if reason:
                    self.report.counts.invalid += 1
                    invalid.append(self._entry(key, change, "none", "invalid", reason, row["__hash"], payload=payload))
                    continue
                batch = buffers.setdefault(op, _Batch(op, [], {}))
                batch.records.append(record)
                batch.meta[key] = (change, row["__hash"], payload, identifier)
                if len(batch.records) >= size:
                    yield buffers.pop(op)
            if invalid:
                self._record(invalid)
        yield from (b for b in buffers.values() if b.records)

    def _deliver(self, batch: _Batch) -> list[tuple[ItemOutcome, int]]:
        """Send one batch; split it while the platform rejects it whole. Runs in a worker thread."""

        def attempt(records: list[Record], depth: int) -> list[tuple[ItemOutcome, int]]:
            try:
                return [(o, depth) for o in self.client.send(self.job.target, batch.op, records)]
            except BatchRejected as rejection:
                if len(records) == 1:
                    return [(ItemOutcome(records[0].key, "rejected", str(rejection)), depth)]
                middle = len(records) // 2
                return attempt(records[:middle], depth + 1) + attempt(records[middle:], depth + 1)
            except NoAnswer as silence:
                return [(ItemOutcome(r.key, "no_answer", str(silence)), depth) for r in records]

        return attempt(batch.records, 1)

    def _collect(self, futures: set[Future], return_when: str, total: int, timeout: float | None = None) -> None:
        """Journal the outcomes of the finished requests, removing them from ``futures``."""
        done, _ = wait(futures, timeout=timeout, return_when=return_when)
        for future in done:
            batch: _Batch = future.batch  # type: ignore[attr-defined]
            entries = []
            outcomes = future.result()  # a PlatformError (bad credentials, …) aborts the run here
            answered = any(o.status != "no_answer" for o, _ in outcomes)
            self.consecutive_no_answer = 0 if answered else self.consecutive_no_answer + 1
            for outcome, attempt in outcomes:
                change, row_hash, payload, identifier = batch.meta[outcome.key]
                entries.append(self._entry(outcome.key, change, batch.op, outcome.status, outcome.message, row_hash, attempt, payload, identifier))
                self.report.counts.count_outcome(change, outcome.status)
                failed = outcome.status not in ("confirmed", "skipped")
                if failed and len(self.report.failed_sample) < FAILED_SAMPLE_SIZE:
                    self.report.failed_sample.append((outcome.key, change, outcome.status, outcome.message))
            self.sent += len(batch.records)
            self._record(entries)
            futures.discard(future)  # journaled: an interruption from here on cannot journal it twice
        self._maybe_report_progress(total)

    def _entry(
        self,
        key: str | None,
        change: str,
        op: str,
        status: str,
        message: str | None,
        row_hash: int | None,
        attempt: int = 1,
        payload: str | None = None,
        identifier: str | None = None,
    ) -> state.LedgerEntry:
        self.seq += 1
        return state.LedgerEntry(self.seq, key, change, op, status, message or "", attempt, row_hash, payload, identifier)

    def _record(self, entries: list[state.LedgerEntry]) -> None:
        self.journal.append(self.run_id, entries)
        self.pending.extend(entries)
        if time.monotonic() - self.last_fold >= FOLD_EVERY_SECONDS or len(self.pending) >= 50_000:
            self._fold()

    def _fold(self) -> None:
        if not self.pending:
            return
        with self.connect() as conn:
            state.fold(conn, self.job.target.activation, self.run_id, self.partition_key, self.pending)
        self.journal.clear()
        self.pending = []
        self.last_fold = time.monotonic()

    def _maybe_report_progress(self, total: int) -> None:
        now = time.monotonic()
        if now - self.last_progress < PROGRESS_EVERY_SECONDS:
            return
        self.last_progress = now
        rate = self.sent / max(now - self.started, 1e-9)
        eta = (total - self.sent) / rate if rate else float("inf")
        self.log.info(f"{self.job.target.activation}: sent {self.sent}/{total} records, {rate:.0f}/s, ETA {eta:.0f}s")
