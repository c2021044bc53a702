"""Run-time fault injection for the sandbox.

Faults are registered through ``POST /_sandbox/faults`` with a JSON object and
apply to platform routes only (never to ``/_sandbox/...``). Kinds:

* ``status``      -- answer ``status`` (plus ``Retry-After`` if ``retry_after``)
  without applying the request.
* ``drop_before`` -- close the connection without answering, without applying.
* ``drop_after``  -- apply the request, then close without answering.
* ``slow``        -- sleep ``seconds`` then handle normally.
* ``timeout``     -- hold the request ``seconds`` (default 35, longer than a
  client's usual read timeout) without applying it, then answer 504; if the
  client hangs up first (its timeout fired), close without answering.
* ``reject_ids``  -- persistent until cleared: any item-edit request containing
  one of ``ids`` is rejected whole with 400 (the platform module enforces it).
* ``reject_rate`` -- persistent until cleared: each item id is rejected with
  probability ``rate`` (0..1), drawn deterministically from a hash of the id and
  ``seed`` (default 0), so the same ids are rejected on every attempt; a request
  containing one is rejected whole, like ``reject_ids``. E.g.
  ``{"kind": "reject_rate", "rate": 0.01, "seed": 1}``.

Every kind but ``reject_ids`` and ``reject_rate`` is consumed by the next
``count`` (default 1) matching requests. A fault matches a request when its ``platform`` (optional;
absent means every platform) equals the request's platform and, if given,
``path_contains`` is a substring of the request path. When several count-based
faults match, the oldest one is used and only that one is consumed.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

KINDS = ("status", "drop_before", "drop_after", "slow", "timeout", "reject_ids", "reject_rate")
PERSISTENT = ("reject_ids", "reject_rate")
DEFAULT_SECONDS = {"slow": 1.0, "timeout": 35.0}


def rejected_by_rate(item_id: str, rate: float, seed: int) -> bool:
    """Whether a ``reject_rate`` fault of this rate and seed rejects ``item_id`` (deterministic)."""
    digest = hashlib.blake2b(f"{seed}\x00{item_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64


class Rejections(frozenset):
    """The item ids a request may not contain: the ids of ``reject_ids`` faults, plus
    (through ``in``) every id a ``reject_rate`` fault draws."""

    rates: tuple[tuple[float, int], ...]

    def __new__(cls, ids: Iterable[str] = (), rates: Iterable[tuple[float, int]] = ()) -> Rejections:
        self = super().__new__(cls, ids)
        self.rates = tuple(rates)
        return self

    def __contains__(self, item_id: object) -> bool:
        return self.kind(item_id) is not None

    def __bool__(self) -> bool:
        return len(self) > 0 or bool(self.rates)

    def kind(self, item_id: object) -> str | None:
        """The fault kind rejecting ``item_id``, or None."""
        if frozenset.__contains__(self, item_id):
            return "reject_ids"
        if isinstance(item_id, str) and any(rejected_by_rate(item_id, r, s) for r, s in self.rates):
            return "reject_rate"
        return None


class FaultSpecError(ValueError):
    """A fault specification sent to the admin endpoint is invalid."""


@dataclass
class Fault:
    """One registered fault."""

    id: int
    kind: str
    platform: str | None = None
    count: int = 1
    path_contains: str | None = None
    status: int | None = None
    retry_after: int | None = None
    seconds: float = 0.0
    ids: frozenset[str] = field(default_factory=frozenset)
    rate: float = 0.0
    seed: int = 0

    def matches(self, platform: str, path: str) -> bool:
        if self.platform is not None and self.platform != platform:
            return False
        return self.path_contains is None or self.path_contains in path

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "platform": self.platform}
        if self.kind not in PERSISTENT:
            out["count"] = self.count
        if self.path_contains is not None:
            out["path_contains"] = self.path_contains
        if self.kind == "status":
            out["status"] = self.status
            if self.retry_after is not None:
                out["retry_after"] = self.retry_after
        if self.kind in DEFAULT_SECONDS:
            out["seconds"] = self.seconds
        if self.kind == "reject_ids":
            out["ids"] = sorted(self.ids)
        if self.kind == "reject_rate":
            out["rate"], out["seed"] = self.rate, self.seed
        return out


def _int(spec: dict[str, Any], key: str, default: int | None, lo: int, hi: int) -> int | None:
    value = spec.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise FaultSpecError(f'"{key}" must be an integer between {lo} and {hi}')
    return value


class FaultRegistry:
    """Thread-safe list of active faults."""

    def __init__(self, platforms: Iterable[str]) -> None:
        self._platforms = frozenset(platforms)
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def add(self, spec: Any) -> Fault:
        """Validate ``spec`` (a decoded JSON object) and register it."""
        if not isinstance(spec, dict):
            raise FaultSpecError("fault must be a JSON object")
        kind = spec.get("kind")
        if kind not in KINDS:
            raise FaultSpecError(f'"kind" must be one of {", ".join(KINDS)}')
        platform = spec.get("platform")
        if platform is not None and platform not in self._platforms:
            raise FaultSpecError(f"unknown platform {platform!r}; known: {sorted(self._platforms)}")
        path_contains = spec.get("path_contains")
        if path_contains is not None and not isinstance(path_contains, str):
            raise FaultSpecError('"path_contains" must be a string')
        count = _int(spec, "count", 1, 1, 1_000_000)
        fault = Fault(id=0, kind=kind, platform=platform, count=count or 1, path_contains=path_contains)
        if kind == "status":
            fault.status = _int(spec, "status", None, 100, 599)
            if fault.status is None:
                raise FaultSpecError('"status" is required for kind "status"')
            fault.retry_after = _int(spec, "retry_after", None, 0, 86_400)
        elif kind in DEFAULT_SECONDS:
            seconds = spec.get("seconds", DEFAULT_SECONDS[kind])
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 600:
                raise FaultSpecError('"seconds" must be a number between 0 and 600')
            fault.seconds = float(seconds)
        elif kind == "reject_ids":
            ids = spec.get("ids")
            if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
                raise FaultSpecError('"ids" must be a non-empty list of strings')
            fault.ids = frozenset(ids)
        elif kind == "reject_rate":
            rate = spec.get("rate")
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
                raise FaultSpecError('"rate" must be a number between 0 and 1')
            fault.rate = float(rate)
            fault.seed = _int(spec, "seed", 0, -(2**63), 2**63 - 1) or 0
        with self._lock:
            fault.id = next(self._ids)
            self._faults.append(fault)
        return fault

    def add_json(self, spec: Any) -> list[dict[str, Any]]:
        """Register one fault object or a list of them; return their JSON forms."""
        return [self.add(one).to_json() for one in (spec if isinstance(spec, list) else [spec])]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def to_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    def take(self, platform: str, path: str) -> Fault | None:
        """Consume and return the oldest count-based fault matching the request."""
        with self._lock:
            for fault in self._faults:
                if fault.kind not in PERSISTENT and fault.matches(platform, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def rejected_ids(self, platform: str, path: str) -> Rejections:
        """What every ``reject_ids`` and ``reject_rate`` fault matching the request rejects."""
        with self._lock:
            ids: set[str] = set()
            rates: list[tuple[float, int]] = []
            for fault in self._faults:
                if fault.kind == "reject_ids" and fault.matches(platform, path):
                    ids |= fault.ids
                elif fault.kind == "reject_rate" and fault.matches(platform, path):
                    rates.append((fault.rate, fault.seed))
            return Rejections(ids, rates)
