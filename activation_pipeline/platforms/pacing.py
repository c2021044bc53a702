"""Pacing per platform account: a requests/s and items/s budget shared by every client of the account
in a process, held by the platform's ``Retry-After`` and rate-limit headers.

- ``Pacing``: what a platform declares (its rate-limit headers, whether its limit is shared with
  other processes so a 429 should slow it down, and the documented rate a 429 paces it from);
- ``Pacer``: the budget itself. A request starts no sooner than ``1 / requests_per_second`` after the
  previous one and ``items / items_per_second`` after the previous request's items (a token bucket's
  sustained rate without its burst, so a platform's own bucket never empties); a 429 holds every
  thread for its ``Retry-After`` (or the reset its rate-limit headers name) and reserves the slot of
  the retry the session sends after it; a request still answered 429 after the session's retries is
  queued again (a bounded number of rounds);
- ``account_pacer``: one ``Pacer`` per account (platform, endpoint and a digest of the credentials,
  never the credentials themselves), alive while a client of that account is open.

Across processes, a paced account's next free slots are shared, so several run processes syncing
activations of one account at once stay within its budget in aggregate:
- on one machine (a DuckDB warehouse), in a small file under ``$ACTIVATION_PACING_DIR`` (default: the
  system's temporary folder), taken under a file lock, on the machine's monotonic clock;
- across machines (``ACTIVATION_WAREHOUSE`` is a ``postgresql://`` URL), in a row of the warehouse's
  ``activation_state.pacing_slots``, taken under a row lock, on the database server's clock (the one
  clock every machine reads), so workers on different hosts share the account's budget too.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import filelock
import requests

from activation_pipeline.platforms.base import NoAnswer

Send = Callable[..., requests.Response]
EPOCH_AFTER = 1_000_000_000  # a reset above this is an epoch time, below it seconds from now
PACING_DIR_ENV = "ACTIVATION_PACING_DIR"
STALE_AFTER = 300.0  # a shared slot further ahead than this was left by another boot: start afresh


class Slots:
    """When the account's next request may start, and when its items budget is next free (monotonic
    seconds); ``update(change)`` applies ``change(next_request, next_items) -> (slot, next_request,
    next_items)`` atomically and returns the slot. This one lives in the process."""

    def __init__(self) -> None:
        self._next = (0.0, 0.0)

    def update(self, change: Callable[[float, float], tuple[float, float, float]]) -> float:
        slot, *following = change(*self._next)
        self._next = (following[0], following[1])
        return slot

    def close(self) -> None:
        """Give up what the slots hold open (a database connection); the next update reopens it."""


class SharedSlots(Slots):
    """The slots in a file, taken under a file lock: every process pacing the account shares them
    (the monotonic clock is the machine's, the same in every process)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path, self._lock = path, filelock.FileLock(str(path) + ".lock")

    def update(self, change: Callable[[float, float], tuple[float, float, float]]) -> float:
        with self._lock:
            try:
                stored = struct.unpack("<dd", self._path.read_bytes())
            except (OSError, struct.error):
                stored = (0.0, 0.0)
            if max(stored) > time.monotonic() + STALE_AFTER:
                stored = (0.0, 0.0)
            slot, *following = change(*stored)
            self._path.write_bytes(struct.pack("<dd", following[0], following[1]))
        return slot


class WarehouseSlots(Slots):
    """The slots in a row of a Postgres warehouse (``activation_state.pacing_slots``), taken under a row lock
    in one short transaction: every process on every machine pacing the account shares them.

    The row holds times on the database server's clock (``clock_timestamp()``, seconds since the epoch); each
    update reads that clock in the same round trip as the row and converts to and from this process's
    monotonic clock, so machines whose clocks disagree still share one timeline (to within the round trip)."""

    DDL = (
        "CREATE SCHEMA IF NOT EXISTS activation_state",
        """CREATE TABLE IF NOT EXISTS activation_state.pacing_slots (
             account TEXT PRIMARY KEY, next_request DOUBLE PRECISION NOT NULL, next_items DOUBLE PRECISION NOT NULL)""",
    )

    def __init__(self, conninfo: str, account: str) -> None:
        super().__init__()
        self._conninfo, self._account = conninfo, account
        self._conn: Any = None

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            import psycopg  # the postgres extra; only a Postgres warehouse paces through it

            conn = psycopg.connect(self._conninfo, connect_timeout=10, application_name="activation_pipeline pacing")
            for attempt in range(3):  # the schema created at the same moment by another process: done, go on
                try:
                    with conn.transaction():  # two processes creating the table at once: one waits for the other
                        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('activation_state.pacing_slots', 0))")
                        for statement in self.DDL:
                            conn.execute(statement)
                        conn.execute(  # the account's row, once per connection: each request then only locks and updates it
                            "INSERT INTO activation_state.pacing_slots VALUES (%s, 0, 0) ON CONFLICT (account) DO NOTHING", [self._account]
                        )
                    break
                except (psycopg.errors.UniqueViolation, psycopg.errors.DuplicateSchema, psycopg.errors.DuplicateTable):
                    if attempt == 2:
                        raise
            self._conn = conn
        return self._conn

    def update(self, change: Callable[[float, float], tuple[float, float, float]]) -> float:
        conn = self._connection()
        with conn.transaction():
            stored_request, stored_items, server_now = conn.execute(
                """SELECT next_request, next_items, extract(epoch FROM clock_timestamp())::double precision
                   FROM activation_state.pacing_slots WHERE account = %s FOR UPDATE""",
                [self._account],
            ).fetchone()
            offset = server_now - time.monotonic()  # server time = monotonic time + offset
            if max(stored_request, stored_items) > server_now + STALE_AFTER:
                stored_request = stored_items = 0.0
            slot, next_request, next_items = change(stored_request - offset, stored_items - offset)
            conn.execute(
                "UPDATE activation_state.pacing_slots SET next_request = %s, next_items = %s WHERE account = %s",
                [next_request + offset, next_items + offset, self._account],
            )
        return slot

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def warehouse_url() -> str | None:
    """The Postgres warehouse's URL when ``ACTIVATION_WAREHOUSE`` names one (libpq conventions: the password may
    come from ``PGPASSWORD`` or ``.pgpass`` instead)."""
    value = os.environ.get("ACTIVATION_WAREHOUSE", "")
    return value if value.startswith(("postgresql://", "postgres://")) else None


def shared_slots(key: str) -> Slots:
    """The account's shared slots: a row of the Postgres warehouse when there is one (every machine), else a
    file under ``$ACTIVATION_PACING_DIR`` (default: the temporary folder; every process on this machine)."""
    url = warehouse_url()
    if url is not None:
        return WarehouseSlots(url, key)
    folder = Path(os.environ.get(PACING_DIR_ENV) or Path(tempfile.gettempdir()) / "activation_pipeline_pacing")
    return SharedSlots(folder / f"{key.replace(':', '-')}.slots")


@dataclass(frozen=True)
class RateHeaders:
    """Where a platform says how much of its limit is left: ``remaining`` 0 holds every thread until ``reset``."""

    remaining: str
    reset: str
    reset_is_epoch: bool | None = False  # None: a large value is an epoch time, a small one seconds
    default_wait: float = 1.0  # when the answer names no reset
    max_wait: float = 60.0


@dataclass(frozen=True)
class Pacing:
    """A platform's pacing rules, declared on its resource (``PlatformResource.PACING``)."""

    headers: RateHeaders | None = None
    adaptive: bool = False  # the limit is shared with other clients: a 429 halves the pace, answers recover it
    floor_per_second: float | None = None  # the documented request rate a 429 paces from, even when unpaced
    max_interval: float = 2.0  # the slowest a 429 makes it, seconds between requests


class Pacer:
    """Paces an account's requests, shared by the threads (and clients) that send to it.

    ``requests_per_second`` and ``items_per_second`` (0: unpaced) space request starts; ``observe``
    is called with every answer the session retries (a 429 and its headers) the moment it arrives.
    """

    def __init__(
        self,
        requests_per_second: float = 0.0,
        items_per_second: float = 0.0,
        *,
        adaptive: bool = False,
        max_interval: float = 2.0,
        headers: RateHeaders | None = None,
        requeue_rounds: int = 3,
        floor_per_second: float | None = None,
        slots: Callable[[], Slots] = Slots,
    ):
        self.adaptive, self.max_interval, self.headers, self.requeue_rounds = adaptive, max_interval, headers, requeue_rounds
        self._floor_per_second = floor_per_second
        self._lock = threading.Lock()
        self._thread = threading.local()  # the items of the request this thread is sending
        self._make_slots = slots
        self._slots: Slots = Slots()
        self._base = self._floor = (-1.0, -1.0)
        self._interval = self._item_interval = 0.0
        self.budget(requests_per_second, items_per_second)

    def budget(self, requests_per_second: float | None, items_per_second: float | None) -> None:
        """Set the budget (None or 0: unpaced); a changed budget starts again from it."""
        base = (1.0 / requests_per_second if requests_per_second else 0.0, 1.0 / items_per_second if items_per_second else 0.0)
        with self._lock:
            if self._base == base:
                return
            self._base = base
            self._floor = (max(base[0], 1.0 / self._floor_per_second if self._floor_per_second else 0.0), base[1])
            self._interval, self._item_interval = base
            # a paced account shares its slots with the other processes pacing it; an unpaced one keeps its holds here
            self._slots.close()
            self._slots = self._make_slots() if base != (0.0, 0.0) else Slots()

    def close(self) -> None:
        """The account's last client closed: give up the shared slots' connection, if any."""
        with self._lock:
            self._slots.close()

    def request(self, send: Send, method: str, path: str, *, items: int = 0, **kwargs: Any) -> requests.Response:
        """``send(method, path, **kwargs)`` in its turn; a request of ``items`` records spends that many of the items budget."""
        self._thread.items = items
        for round_ in range(self.requeue_rounds + 1):
            self._wait_for_slot(items)
            try:
                response = send(method, path, **kwargs)
            except NoAnswer as silence:
                if silence.status != 429 or round_ == self.requeue_rounds:
                    raise  # a transport failure or a 5xx says nothing about the rate limit
                self.hold(1.0 + random.uniform(0.0, 1.0))  # the limit is shared: queue again behind this account's pacing
                continue
            self._adapt(throttled=False)  # the session raises on a 429 it could not retry away: this is an answer
            self._honour_headers(response.headers)
            return response
        raise AssertionError("unreachable")

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """An answer the session is about to retry: a 429 holds every thread for the wait it names."""
        if status != 429:
            return  # a 5xx says nothing about the rate limit
        self._adapt(throttled=True)
        wait = retry_after(headers)
        if wait is None:
            wait = self._reset_wait(headers)
        items = getattr(self._thread, "items", 0)
        until = time.monotonic() + (wait if wait is not None else 1.0)
        with self._lock:
            interval, cost = self._interval, items * self._item_interval

            def reserve(next_request: float, next_items: float) -> tuple[float, float, float]:
                # the session resends this request when the wait is over, outside the queue: its slot is taken
                resume = max(next_request, until)
                return resume, resume + interval, max(next_items, resume) + cost

            self._slots.update(reserve)

    def hold(self, seconds: float) -> None:
        """No request of this account starts for ``seconds``."""
        until = time.monotonic() + seconds
        with self._lock:
            self._slots.update(lambda next_request, next_items: (until, max(next_request, until), next_items))

    def _wait_for_slot(self, items: int) -> None:
        with self._lock:
            now = time.monotonic()
            interval, cost = self._interval, items * self._item_interval

            def take(next_request: float, next_items: float) -> tuple[float, float, float]:
                slot = max(now, next_request, next_items)
                return slot, slot + interval, slot + cost

            slot = self._slots.update(take)
        if slot > now:
            time.sleep(slot - now)

    def _adapt(self, *, throttled: bool) -> None:
        if not self.adaptive:
            return
        with self._lock:
            if throttled:
                self._interval = min(max(self._interval * 2, self._floor[0]), self.max_interval)
                if self._floor[1]:
                    self._item_interval = min(max(self._item_interval * 2, self._floor[1]), self._floor[1] * 16)
                return
            if self._interval > self._base[0]:
                self._interval *= 0.98  # slow recovery: fewer 429s when sharing the limit
                if self._interval < max(self._base[0], 0.01):
                    self._interval = self._base[0]
            if self._item_interval > self._base[1]:
                self._item_interval *= 0.98
                if self._item_interval < max(self._base[1], 1e-5):
                    self._item_interval = self._base[1]

    def _reset_wait(self, headers: Mapping[str, str]) -> float | None:
        """Seconds until the reset the rate-limit headers name (their default when they name none)."""
        if self.headers is None:
            return None
        reset = headers.get(self.headers.reset)
        if reset is None:
            return self.headers.default_wait
        try:
            value = float(reset)
        except ValueError:
            return self.headers.default_wait
        epoch = value > EPOCH_AFTER if self.headers.reset_is_epoch is None else self.headers.reset_is_epoch
        return min(max(value - time.time() if epoch else value, 0.0), self.headers.max_wait)

    def _honour_headers(self, headers: Mapping[str, str]) -> None:
        if self.headers is None:
            return
        remaining = headers.get(self.headers.remaining)
        try:
            if remaining is None or int(float(remaining)) > 0:
                return
        except ValueError:
            return
        wait = self._reset_wait(headers) or 0.0
        self.hold(wait + random.uniform(0.0, 0.25))  # do not resume in step with the account's other clients


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), None when absent or unreadable."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


# --- one pacer per account ---------------------------------------------------------------------
_accounts: dict[str, tuple[Pacer, int]] = {}
_accounts_lock = threading.Lock()


def account_key(platform: str, endpoint: str, credentials: Iterable[str]) -> str:
    """The account's identity: platform, endpoint and a digest of its credentials (never the credentials)."""
    digest = hashlib.sha256("\0".join((platform, endpoint.rstrip("/"), *credentials)).encode()).hexdigest()
    return f"{platform}:{digest[:16]}"


def account_pacer(key: str, pacing: Pacing, requests_per_second: float | None, items_per_second: float | None) -> Pacer:
    """The account's pacer, made on first use; ``release_pacer(key)`` once per call gives it up."""
    with _accounts_lock:
        found = _accounts.get(key)
        if found is None:
            pacer = Pacer(
                requests_per_second or 0.0,
                items_per_second or 0.0,
                adaptive=pacing.adaptive,
                max_interval=pacing.max_interval,
                headers=pacing.headers,
                floor_per_second=pacing.floor_per_second,
                slots=lambda: shared_slots(key),
            )
            _accounts[key] = (pacer, 1)
            return pacer
        pacer, users = found
        _accounts[key] = (pacer, users + 1)
    pacer.budget(requests_per_second, items_per_second)  # one account, one budget: the latest destination settings
    return pacer


def release_pacer(key: str) -> None:
    """A client of the account closed; the last one forgets the pacer (the next run starts from its budget)."""
    with _accounts_lock:
        pacer, users = _accounts.get(key, (None, 0))
        if pacer is None:
            return
        if users <= 1:
            del _accounts[key]
            pacer.close()
        else:
            _accounts[key] = (pacer, users - 1)
