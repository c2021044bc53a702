"""Token-bucket rate limiting for the sandbox.

Each key (for Batch: the project key; for Yotpo: ``yotpo:<store_id>``) owns two buckets refilled continuously:
one counting requests, one counting item updates. A bucket holds at most one
second's worth of tokens (``capacity == rate``), i.e. a burst of ``rate`` is
allowed after an idle second. A request passes only if *both* buckets can pay
for it; a rejected request consumes nothing. A single request costing more than
a bucket's capacity (e.g. 200 items with ``items_per_second=100``) is admitted
once the bucket is full and leaves it in debt, so it can never be starved.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DEFAULT_REQUESTS_PER_SECOND = 5.0
DEFAULT_ITEMS_PER_SECOND = 1000.0


@dataclass
class TokenBucket:
    """A continuously refilled bucket of ``rate`` tokens per second."""

    rate: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_for(self, cost: float) -> float:
        """Seconds until ``cost`` tokens can be paid (0.0 if payable now)."""
        if cost <= 0:
            return 0.0
        needed = min(cost, self.rate)
        if self.tokens >= needed:
            return 0.0
        return (needed - self.tokens) / self.rate


class RateLimiter:
    """Per-key pair of token buckets (requests, items), switchable at run time."""

    def __init__(
        self,
        enabled: bool = True,
        requests_per_second: float = DEFAULT_REQUESTS_PER_SECOND,
        items_per_second: float = DEFAULT_ITEMS_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock  # the sandbox's clock: advancing it refills the buckets
        self.enabled = enabled
        self.requests_per_second = requests_per_second
        self.items_per_second = items_per_second
        self._buckets: dict[str, tuple[TokenBucket, TokenBucket]] = {}

    def configure(
        self,
        enabled: bool | None = None,
        requests_per_second: float | None = None,
        items_per_second: float | None = None,
    ) -> None:
        """Change settings; buckets restart full."""
        for value in (requests_per_second, items_per_second):
            if value is not None and not value > 0:
                raise ValueError("rates must be positive numbers")
        with self._lock:
            if enabled is not None:
                self.enabled = enabled
            if requests_per_second is not None:
                self.requests_per_second = float(requests_per_second)
            if items_per_second is not None:
                self.items_per_second = float(items_per_second)
            self._buckets.clear()

    def configure_json(self, spec: Any) -> None:
        """Apply ``{"enabled": bool, "requests_per_second": n, "items_per_second": n}`` (all optional)."""
        if not isinstance(spec, dict):
            raise ValueError("body must be a JSON object")
        enabled = spec.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise ValueError('"enabled" must be a boolean')
        rates = [spec.get("requests_per_second"), spec.get("items_per_second")]
        if any(r is not None and (isinstance(r, bool) or not isinstance(r, (int, float))) for r in rates):
            raise ValueError("rates must be positive numbers")
        self.configure(enabled, rates[0], rates[1])

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()

    def check(self, key: str, items: int = 0) -> float | None:
        """Charge one request and ``items`` item updates to ``key``.

        Returns ``None`` when allowed, else the seconds to wait before retrying.
        """
        now = self._clock()
        with self._lock:
            if not self.enabled:
                return None
            pair = self._buckets.get(key)
            if pair is None:
                pair = (
                    TokenBucket(self.requests_per_second, self.requests_per_second, now),
                    TokenBucket(self.items_per_second, self.items_per_second, now),
                )
                self._buckets[key] = pair
            req_bucket, item_bucket = pair
            req_bucket.refill(now)
            item_bucket.refill(now)
            wait = max(req_bucket.wait_for(1), item_bucket.wait_for(items))
            if wait > 0:
                return wait
            req_bucket.tokens -= 1
            item_bucket.tokens -= items
            return None

    def remaining(self, key: str) -> int | None:
        """Whole requests ``key`` may still send right now (None when disabled or never charged)."""
        now = self._clock()
        with self._lock:
            pair = self._buckets.get(key) if self.enabled else None
            if pair is None:
                return None
            pair[0].refill(now)
            return max(0, int(pair[0].tokens))

    def to_json(self) -> dict[str, Any]:
        with self._lock:
            return {
                "enabled": self.enabled,
                "requests_per_second": self.requests_per_second,
                "items_per_second": self.items_per_second,
            }
