"""Stopping a sync cleanly on SIGTERM or SIGINT (a pod being stopped, Ctrl-C, a Dagster run termination).

While a run pushes, the engine holds both signals itself: a signal only asks the pusher to stop
submitting, so the answers already on their way are journaled and folded and the run is recorded
as ``interrupted``. Then the previous handler is put back and the signal is raised again, so the
process stops exactly as it would have (Dagster's handler raises its interruption, Python's default
SIGINT raises KeyboardInterrupt, SIGTERM's default ends the process).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
STOP_WAIT_SECONDS = 10.0  # how long requests already sent get to answer once a stop is asked


class SyncInterrupted(RuntimeError):
    """The run stopped on request; what the platform confirmed is kept, the rest is sent next run."""


class StopRequest:
    """Context manager: while inside, SIGTERM/SIGINT set ``signum`` instead of acting.

    Signal handlers can only be set on the main thread; elsewhere this does nothing and an
    interruption arrives as an exception (KeyboardInterrupt, Dagster's interruption), which the
    pusher handles the same way. A signal the process ignores stays ignored.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "interruption"

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:  # Dagster forwards a stop as a second SIGINT: the first one names it
            self.signum = signum

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                previous = signal.getsignal(signum)
                if previous in (signal.SIG_IGN, None):
                    continue
                self._previous[signum] = previous
                signal.signal(signum, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def interrupted(self, activation: str, succeeded: int, to_send: int, unanswered: int) -> SyncInterrupted:
        waited = f" ({unanswered} requests still unanswered after {STOP_WAIT_SECONDS:.0f}s)" if unanswered else ""
        return SyncInterrupted(
            f"{activation}: stopped by {self.signal_name} after {succeeded} of {to_send} records were confirmed{waited}; the rest is sent next run"
        )

    def replay(self) -> None:
        """Hand the signal to the handler it was taken from (call after leaving the context)."""
        if self.signum is not None:
            signal.raise_signal(self.signum)


def is_stop(error: BaseException | None) -> bool:
    """A stop, not a failure: ours, or a BaseException that is no Exception (KeyboardInterrupt, Dagster's interruption)."""
    return isinstance(error, SyncInterrupted) or (error is not None and not isinstance(error, Exception))


def describe_error(error: BaseException, succeeded: int, to_send: int) -> str:
    """The run row's error text; an interruption raised as an exception has no message of its own."""
    if isinstance(error, Exception):
        return str(error)
    return f"the run was interrupted ({type(error).__name__}) after {succeeded} of {to_send} records were confirmed; the rest is sent next run"


def drain(in_flight: set[Future], collect: Callable[[float], None], log: Any, seconds: float = STOP_WAIT_SECONDS) -> int:
    """Stopping: cancel the requests not yet started, give those on the wire ``seconds`` to answer
    while ``collect(timeout)`` journals them (and removes them from ``in_flight``); return how many
    never answered (their records are resent next run)."""
    for future in list(in_flight):
        if future.cancel():
            in_flight.discard(future)
    deadline = time.monotonic() + seconds
    try:
        while in_flight and time.monotonic() < deadline:
            collect(max(deadline - time.monotonic(), 0.0))
    except Exception as exc:  # a request that failed outright while stopping: unconfirmed, resent next run
        log.warning(f"while stopping: {exc}")
    return len(in_flight)
