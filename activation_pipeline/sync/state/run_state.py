"""Where a run keeps what makes it safe: its lock (one run per activation, or partition, at a time) and its
confirmation journal (answers made durable as they arrive, until folded into snapshot and ledger).

- Beside a DuckDB file (``LocalRunState``): a lock file and a journal file per scope, under the folder beside
  the warehouse. The file allows one writer process, so that is all one machine can share.
- In a PostgreSQL warehouse (``WarehouseRunState``): a session-level advisory lock held by the run's own
  connection (released by the server when that connection ends: a SIGKILLed process, a dead machine once its
  TCP keepalives fail), and the journal as rows of ``activation_state.sync_journal``, each write committed. Nothing
  on local disk is then needed for correctness: a run killed on one machine is recovered by the next run of
  that activation on any other. Plan files stay local and temporary (losing one costs a resend).

``run_state_for(backend)`` picks by what the backend can do (``Backend.shares_state``), not by its name.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path

import filelock

from activation_pipeline.sync.state.journal import Journal, JournalStore, LedgerEntry, run_scope
from activation_pipeline.sync.state.schema import SCHEMA
from activation_pipeline.warehouse import Backend, Session

JOURNAL_TABLE = f"{SCHEMA}.sync_journal"
LOCK_NAMESPACE = "activation_pipeline run "  # advisory lock keys: hashtextextended(namespace || scope); DDL locks use other names


class RunBusy(RuntimeError):
    """Another run holds this scope's lock."""


class LockLost(RuntimeError):
    """The connection that held this run's lock is gone, so another run may now hold it: this one stops
    before it folds anything more (what it journaled stays, for the next run to recover)."""


class RunState(ABC):
    """A run's lock and journal, for one warehouse."""

    @abstractmethod
    def lock(self, activation: str, partition_key: str | None) -> AbstractContextManager[None]:
        """Held for the whole run; raises ``RunBusy`` at once if another run holds it (never waits)."""

    @abstractmethod
    def journal(self, activation: str, partition_key: str | None) -> JournalStore: ...


class LocalRunState(RunState):
    """Lock and journal files under ``state_dir`` (``locks/<scope>.lock``, ``journal/<scope>.jsonl``)."""

    def __init__(self, state_dir: Path):
        self.state_dir = state_dir

    @contextmanager
    def lock(self, activation: str, partition_key: str | None) -> Iterator[None]:
        path = self.state_dir / "locks" / f"{run_scope(activation, partition_key)}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            held = filelock.FileLock(str(path), timeout=0)
            held.acquire()
        except filelock.Timeout:
            raise RunBusy(run_scope(activation, partition_key)) from None
        try:
            yield
        finally:
            held.release()

    def journal(self, activation: str, partition_key: str | None) -> Journal:
        return Journal(self.state_dir / "journal", activation, partition_key)


class WarehouseRunState(RunState):
    """Lock and journal in a warehouse that many processes and machines write at once (PostgreSQL)."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self._ready = False
        self._held: dict[str, Session] = {}  # scope -> the session holding its lock, while held

    def _ensure_table(self) -> None:
        if self._ready:
            return
        with self.backend.session() as session, session.exclusive(f"{SCHEMA} schema"):
            session.execute(
                f"""CREATE SCHEMA IF NOT EXISTS {SCHEMA};
                CREATE TABLE IF NOT EXISTS {JOURNAL_TABLE} (
                    scope VARCHAR NOT NULL, run_id VARCHAR NOT NULL, seq BIGINT NOT NULL, entry VARCHAR NOT NULL,
                    written_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (scope, run_id, seq))"""
            )
        self._ready = True

    @contextmanager
    def lock(self, activation: str, partition_key: str | None) -> Iterator[None]:
        scope = run_scope(activation, partition_key)
        with self.backend.session() as session:  # the lock lives as long as this connection
            (held,) = session.fetch_one("SELECT pg_try_advisory_lock(hashtextextended(?, 0))", [LOCK_NAMESPACE + scope]) or (False,)
            if not held:
                raise RunBusy(scope)
            # the lock's connection idles for the whole run: a server's idle_session_timeout (PostgreSQL 14+) must not end it
            session.execute("SELECT set_config('idle_session_timeout', '0', false) WHERE current_setting('server_version_num')::int >= 140000")
            self._held[scope] = session
            try:
                yield
            finally:
                self._held.pop(scope, None)
                try:
                    session.execute("SELECT pg_advisory_unlock(hashtextextended(?, 0))", [LOCK_NAMESPACE + scope])
                except Exception:  # noqa: BLE001 - the connection is closed next, which releases the lock anyway
                    pass

    def journal(self, activation: str, partition_key: str | None) -> WarehouseJournal:
        self._ensure_table()
        scope = run_scope(activation, partition_key)
        return WarehouseJournal(self.backend, scope, lease=self._held.get(scope))


class WarehouseJournal:
    """A scope's journal as rows of ``activation_state.sync_journal``. ``write`` is one statement, committed
    before it returns, on a connection kept for the run's writes; folds and recovery use short sessions.
    ``lease``: the session holding the run's lock, looked at before each fold (``rotate``): if its connection
    is gone, so is the lock, and ``LockLost`` stops the run before it folds beside another."""

    def __init__(self, backend: Backend, scope: str, lease: Session | None = None):
        self.backend, self.scope, self.lease = backend, scope, lease
        self._writer: Session | None = None
        self._held = ExitStack()
        self._written: tuple[str, int] | None = None  # (run id, last seq) written since the last rotate

    def write(self, run_id: str, first_seq: int, count: int, entries_json: str) -> None:
        if not count:
            return
        if self._writer is None:
            self._writer = self._held.enter_context(self.backend.session())
        self._writer.execute(  # a row per entry, from the request's one JSON array
            f"""INSERT INTO {JOURNAL_TABLE} (scope, run_id, seq, entry)
                SELECT ?, ?, ? + ordinal - 1, CAST(entry AS VARCHAR)
                FROM json_array_elements(CAST(? AS JSON)) WITH ORDINALITY AS written(entry, ordinal)""",
            [self.scope, run_id, first_seq, entries_json],
        )
        self._written = (run_id, first_seq + count - 1)

    def sync(self) -> None:
        """Each write is committed (and, with PostgreSQL's default synchronous_commit, on disk)."""

    def rotate(self) -> tuple[str, int] | None:
        self._check_lease()
        written, self._written = self._written, None
        return written

    def _check_lease(self) -> None:
        if self.lease is None:
            return
        try:
            self.lease.fetch_one("SELECT 1")
        except Exception as exc:  # noqa: BLE001 - whatever the driver raises for a closed connection
            first_line = next(iter(str(exc).splitlines()), "")
            raise LockLost(
                f"{self.scope}: the warehouse connection holding this run's lock was closed ({type(exc).__name__}: {first_line}), so "
                "another run may hold it now; this run stopped before folding more. The answers it journaled are kept and the next run folds them"
            ) from None

    def discard(self, segment: tuple[str, int]) -> None:
        run_id, last = segment
        with self.backend.session() as session:
            session.execute(f"DELETE FROM {JOURNAL_TABLE} WHERE scope = ? AND run_id = ? AND seq <= ?", [self.scope, run_id, last])

    def read(self) -> list[tuple[str, LedgerEntry]]:
        with self.backend.session() as session:
            rows = session.fetch_all(f"SELECT run_id, seq, entry FROM {JOURNAL_TABLE} WHERE scope = ? ORDER BY written_at, run_id, seq", [self.scope])
        return [(run_id, LedgerEntry(seq, *json.loads(entry))) for run_id, seq, entry in rows]

    def clear(self) -> None:
        with self.backend.session() as session:
            session.execute(f"DELETE FROM {JOURNAL_TABLE} WHERE scope = ?", [self.scope])

    def close(self) -> None:
        self._writer = None
        self._held.close()


def run_state_for(backend: Backend) -> RunState:
    """The warehouse's own tables and locks where several processes may write it at once, else local files."""
    return WarehouseRunState(backend) if backend.shares_state else LocalRunState(backend.state_dir)


__all__ = ["JOURNAL_TABLE", "LocalRunState", "LockLost", "RunBusy", "RunState", "WarehouseJournal", "WarehouseRunState", "run_state_for"]
