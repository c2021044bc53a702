"""Request statistics of the sandbox, served by ``GET /_sandbox/stats``.

Held in memory only (reset by ``POST /_sandbox/reset`` or
``POST /_sandbox/stats/reset``). Header values are never recorded: the log of
recent requests holds method, path, status, item counts and timings only.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from typing import Any

from .platform_interface import HandlerContext


class Stats:
    """In-memory counters per platform plus a short log of recent requests.

    Per platform: ``requests`` (path without platform and version -> count),
    ``statuses`` (HTTP status sent -> count), ``total_requests``,
    ``items_received`` (items in edit requests that reached the handler, applied
    or not), ``items_applied``, ``dropped`` (connections closed by a fault) and
    ``faults_injected``. ``recent`` lists the last requests (no header values).
    """

    def __init__(self, platforms: list[str], recent: int = 200) -> None:
        self._platforms = platforms
        self._lock = threading.Lock()
        self._recent: deque[dict[str, Any]] = deque(maxlen=recent)
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._data: dict[str, dict[str, Any]] = {
                p: {
                    "requests": Counter(),
                    "statuses": Counter(),
                    "total_requests": 0,
                    "items_received": 0,
                    "items_applied": 0,
                    "dropped": 0,
                    "faults_injected": 0,
                }
                for p in self._platforms
            }
            self._recent.clear()

    def record(
        self, platform: str, method: str, path: str, status: int | None, ctx: HandlerContext | None, fault: str | None, seconds: float
    ) -> None:
        with self._lock:
            d = self._data[platform]
            d["total_requests"] += 1
            d["requests"][path] += 1
            if status is None:
                d["dropped"] += 1
            else:
                d["statuses"][str(status)] += 1
            if fault:
                d["faults_injected"] += 1
            received = ctx.items_received if ctx else 0
            d["items_received"] += received
            d["items_applied"] += ctx.items_applied if ctx else 0
            self._recent.append(
                {
                    "ts": round(time.time(), 3),
                    "platform": platform,
                    "method": method,
                    "path": path,
                    "status": status,
                    "items": received,
                    "fault": fault,
                    "ms": round(seconds * 1e3, 2),
                }
            )

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = {p: {k: dict(v) if isinstance(v, Counter) else v for k, v in d.items()} for p, d in self._data.items()}
            out["recent"] = list(self._recent)
            return out
