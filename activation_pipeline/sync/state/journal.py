"""The confirmation journal, and the plan file, a run keeps beside a DuckDB warehouse (on PostgreSQL the
journal is a table of the warehouse: state/run_state.py).

Durability without holding the warehouse: the DuckDB file allows one writer process, so a
sync never keeps a connection open while it talks to a platform. Each batch's outcomes are
appended (and fsynced) to a per-activation journal file the moment the platform answers;
every few seconds, and at the end, the journal is folded into the snapshot and ledger in
one transaction that also records the last folded sequence number. A run killed at any
point is recovered at the start of the next: unfolded journal lines are folded, so what
the platform confirmed is never sent again and what it did not confirm always is.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import pyarrow as pa

from activation_pipeline.sync.state.schema import (
    SCHEMA,
    scalar,
    snapshot_table,
    transaction,
)
from activation_pipeline.warehouse import Session


class LedgerEntry(NamedTuple):
    """One journal/ledger line (a tuple: a million of them must be cheap to make and write)."""

    seq: int
    key: str | None
    change: str
    operation: str
    status: str
    message: str
    attempt: int
    row_hash: int | None
    payload: str | None = None  # the fields sent, as JSON
    identifier: str | None = None  # the platform id sent (kept in the snapshot: a removed record is deleted by it)


# LedgerEntry's fields as Arrow types (row_hash: the backend's, Dialect.hash_arrow_type)
JOURNAL_TYPES = (pa.int64(), pa.string(), pa.string(), pa.string(), pa.string(), pa.string(), pa.int32(), pa.uint64(), pa.string(), pa.string())


def run_scope(activation: str, partition_key: str | None) -> str:
    """What one run owns exclusively: the activation, or one partition of it."""
    return activation if partition_key is None else f"{activation}.{partition_key}"


def plan_path(state_dir: Path, activation: str, partition_key: str | None, run_id: str) -> Path:
    """Where a run writes its plan: a folder per activation (partition), so its next run can clean it."""
    return state_dir / "plans" / run_scope(activation, partition_key) / f"{run_id}.parquet"


def remove_stale_plans(state_dir: Path, activation: str, partition_key: str | None) -> None:
    """Delete plans a killed run of this activation (partition) left; call under the run's lock (none is in use)."""
    stale = list(plan_path(state_dir, activation, partition_key, "_").parent.glob("*.parquet"))
    stale += (state_dir / "plans").glob(f"{activation}-*.parquet")  # named so before plans had a folder each
    for path in stale:
        path.unlink(missing_ok=True)


def line(run_id: str, first_seq: int, entries_json: str) -> str:
    """One journal line, ``[run_id, first_seq, [[key, change, …], …]]``: the answers to one request, numbered from
    ``first_seq``. ``entries_json`` (each entry's fields after its number) is made outside any lock, in one
    ``json.dumps`` for the whole request; only the first number is known under it."""
    return f"[{json.dumps(run_id)}, {first_seq}, {entries_json}]\n"


def entries_of(fields: list) -> list[tuple[str, LedgerEntry]]:
    """The (run id, entry) pairs of one parsed journal line: a request's answers, or one entry in the line format
    of versions before 2026-12 (``[run_id, seq, key, change, …]``), which a run killed then may have left."""
    if len(fields) == 3 and isinstance(fields[2], list):
        run_id, first, rows = fields
        return [(run_id, LedgerEntry(first + i, *row)) for i, row in enumerate(rows)]
    run_id, *entry = fields
    return [(run_id, LedgerEntry(*entry))]


class JournalStore(Protocol):
    """Where a run's answers are made durable the moment they arrive, until a fold moves them into the
    snapshot and ledger: a file beside a DuckDB warehouse (``Journal``), a table of a PostgreSQL one
    (``run_state.WarehouseJournal``). One writer at a time; ``rotate`` and ``discard`` bracket a fold."""

    def write(self, run_id: str, first_seq: int, count: int, entries_json: str) -> None:
        """Keep ``count`` entries numbered from ``first_seq``, given as one JSON array of each entry's fields after
        ``seq``; on return a killed process loses none of them."""

    def sync(self) -> None:
        """Make everything written so far survive the machine too (a no-op where writes commit)."""

    def rotate(self) -> Any:
        """Set aside what was written so far for a fold (appends go on meanwhile); None if nothing was."""

    def discard(self, segment: Any) -> None:
        """Forget a set-aside part, now folded."""

    def read(self) -> list[tuple[str, LedgerEntry]]:
        """(run id, entry) pairs not yet discarded, oldest first."""

    def clear(self) -> None:
        """Forget everything (after recovery folded it)."""

    def close(self) -> None:
        """Release what the journal holds open."""


class Journal:
    """Append-only, fsynced record of platform answers not yet folded into DuckDB.

    Appends go to ``<scope>.jsonl``. A fold in progress works on a rotated segment
    (``<scope>.jsonl.<n>``, oldest first) while new answers keep landing in the current file, and
    deletes only that segment once it is committed; ``read`` and recovery see every segment."""

    def __init__(self, directory: Path, activation: str, partition_key: str | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{run_scope(activation, partition_key)}.jsonl"

    def append(self, run_id: str, entries: Iterable[LedgerEntry]) -> None:
        """Write and fsync ``entries`` (one writer at a time)."""
        self._write_lines(line(run_id, entry.seq, json.dumps([entry[1:]])) for entry in entries)
        self.sync()

    def write(self, run_id: str, first_seq: int, count: int, entries_json: str) -> None:
        """Append one line: ``count`` entries numbered from ``first_seq`` (one writer at a time). It survives the
        process being killed at once (the kernel holds it); ``sync`` makes it survive the machine too. A line
        torn by a kill mid-write is dropped whole by ``read``: none of its answers had been kept yet."""
        self._write_lines((line(run_id, first_seq, entries_json),))

    def _write_lines(self, lines: Iterable[str]) -> None:
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, "".join(lines).encode("utf-8"))
        finally:
            os.close(descriptor)

    def sync(self) -> None:
        """fsync the current file: every line written to it so far is on disk."""
        try:
            descriptor = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:  # rotated away, and folded or being folded
            return
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def segments(self) -> list[Path]:
        """Rotated segments (``<scope>.jsonl.<n>``: no scope's live file has that shape, even with dots in a
        scope value), oldest first, then the current file (those that exist)."""
        rotated = []
        for path in self.path.parent.glob(f"{glob.escape(self.path.name)}.*"):
            number = path.name[len(self.path.name) + 1 :]
            if number.isdigit():
                rotated.append((int(number), path))
        return [path for _, path in sorted(rotated)] + ([self.path] if self.path.exists() else [])

    def rotate(self) -> Path | None:
        """Move the current file aside as the newest segment (appends then start a new file); None if empty."""
        if not self.path.exists():
            return None
        rotated = self.segments()[:-1]
        number = int(rotated[-1].name[len(self.path.name) + 1 :]) + 1 if rotated else 1
        segment = self.path.with_name(f"{self.path.name}.{number}")
        os.replace(self.path, segment)
        return segment

    def discard(self, segment: Path) -> None:
        """Delete a rotated segment once its entries are folded."""
        segment.unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing to release: every write opens and closes the file."""

    def read(self) -> list[tuple[str, LedgerEntry]]:
        """(run id, entry) pairs, oldest first, over every segment."""
        rows = []
        for path in self.segments():
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    try:
                        fields = json.loads(line)
                    except (json.JSONDecodeError, ValueError):
                        break  # a torn last line from a kill mid-write: that batch was never confirmed
                    rows.extend(entries_of(fields))
        return rows

    def clear(self) -> None:
        for path in self.segments():
            path.unlink(missing_ok=True)


def fold(
    conn: Session,
    activation: str,
    run_id: str,
    partition_key: str | None,
    entries: Sequence[tuple[Any, ...]],
) -> int:
    """Apply journal entries (``LedgerEntry``s, or plain tuples of its fields) to snapshot and ledger in one
    transaction; return the new folded seq.

    Entries at or below the run's recorded ``folded_seq`` are skipped, so folding the same
    journal twice (a crash between commit and journal removal) changes nothing.
    """
    folded = scalar(
        conn,
        f"""SELECT coalesce(max(folded_seq), -1) FROM {SCHEMA}.sync_runs
                  WHERE run_id = ? AND activation = ? AND partition_key IS NOT DISTINCT FROM ?""",
        [run_id, activation, partition_key],
    )
    fresh = [e for e in entries if e[0] > folded]  # e[0]: the seq
    if not fresh:
        return folded
    columns = list(zip(*fresh, strict=True))  # Arrow, not Polars: a sync imports only what it needs (test_sync_imports.py)
    types = (*JOURNAL_TYPES[:7], conn.dialect.hash_arrow_type, *JOURNAL_TYPES[8:])  # row_hash: the backend's hash type
    frame = pa.table([pa.array(values, type=kind) for values, kind in zip(columns, types, strict=True)], names=list(LedgerEntry._fields))
    last = max(entry[0] for entry in fresh)
    snap = snapshot_table(activation)
    # ``IS NULL`` / ``=`` rather than ``IS NOT DISTINCT FROM ?``: PostgreSQL cannot estimate the latter, takes the
    # snapshot for one row and deletes by nested loop (measured: a fold of 50,000 answers ran for minutes)
    in_partition, partition_params = ("partition_key IS NULL", []) if partition_key is None else ("partition_key = ?", [partition_key])
    with transaction(conn, journal_batch=frame):
        conn.execute(
            f"""DELETE FROM {snap} WHERE {in_partition} AND key IN (
                SELECT key FROM journal_batch WHERE status = 'confirmed' AND operation IN ('upsert', 'update', 'delete'))""",
            partition_params,
        )
        conn.execute(
            f"""INSERT INTO {snap} (key, row_hash, run_id, confirmed_at, partition_key, identifier)
                SELECT key, row_hash, ?, now(), ?, identifier FROM (
                  SELECT key, row_hash, identifier, row_number() OVER (PARTITION BY key ORDER BY seq DESC) AS version
                  FROM journal_batch
                  WHERE status = 'confirmed' AND operation IN ('upsert', 'update')  -- update: update_only's confirmed updates
                    AND key NOT IN (SELECT key FROM journal_batch WHERE status = 'confirmed' AND operation = 'delete')
                ) AS confirmed WHERE version = 1  -- each key's last confirmation""",
            [run_id, partition_key],
        )
        conn.execute(
            f"""INSERT INTO {SCHEMA}.sync_records
                SELECT ?, ?, ?, key, change, operation, status, nullif(message, ''), attempt, row_hash,
                       CAST(payload AS {conn.dialect.json_type}), seq, now()
                FROM journal_batch ORDER BY seq""",
            [run_id, partition_key, activation],
        )
        conn.execute(
            f"UPDATE {SCHEMA}.sync_runs SET folded_seq = ? WHERE run_id = ? AND activation = ? AND partition_key IS NOT DISTINCT FROM ?",
            [last, run_id, activation, partition_key],
        )
    return last


def recover(conn: Session, journal: JournalStore, activation: str, partition_key: str | None = None) -> int:
    """Fold what a killed run of this activation (partition) left in its journal; mark such
    runs 'interrupted'. Returns the lines recovered."""
    entries = journal.read()
    by_run: dict[str, list[LedgerEntry]] = {}
    for run_id, entry in entries:
        by_run.setdefault(run_id, []).append(entry)
    for run_id, run_entries in by_run.items():  # the journal belongs to this (activation, partition)
        fold(conn, activation, run_id, partition_key, run_entries)
    conn.execute(
        f"""UPDATE {SCHEMA}.sync_runs SET status = 'interrupted', finished_at = coalesce(finished_at, now()),
            error = coalesce(error, 'the run stopped before it finished; its confirmed records were recovered')
            WHERE activation = ? AND partition_key IS NOT DISTINCT FROM ? AND status = 'running'""",
        [activation, partition_key],
    )
    journal.clear()
    return len(entries)
