"""Run-time fault injection for the sandbox.

Faults are registered through ``POST /_sandbox/faults`` with a JSON object and
apply to platform routes only (never to ``/_sandbox/...``). Kinds:

* ``status``      -- answer ``status`` (plus ``Retry-After`` if ``retry_after``)
  without applying the request.
* ``drop_before`` -- close the connection without answering, without applying.
* ``drop_after``  -- apply the request, then close without answering.
* ``slow``        -- sleep ``seconds`` then handle normally.
* ``reject_ids``  -- persistent until cleared: any item-edit request containing
  one of ``ids`` is rejected whole with 400 (the platform module enforces it).

Every kind but ``reject_ids`` is consumed by the next ``count`` (default 1)
matching requests. A fault matches a request when its ``platform`` (optional;
absent means every platform) equals the request's platform and, if given,
``path_contains`` is a substring of the request path. When several count-based
faults match, the oldest one is used and only that one is consumed.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable

KINDS = ("status", "drop_before", "drop_after", "slow", "reject_ids")


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

    def matches(self, platform: str, path: str) -> bool:
        if self.platform is not None and self.platform != platform:
            return False
        return self.path_contains is None or self.path_contains in path

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "platform": self.platform}
        if self.kind != "reject_ids":
            out["count"] = self.count
        if self.path_contains is not None:
            out["path_contains"] = self.path_contains
        if self.kind == "status":
            out["status"] = self.status
            if self.retry_after is not None:
                out["retry_after"] = self.retry_after
        if self.kind == "slow":
            out["seconds"] = self.seconds
        if self.kind == "reject_ids":
            out["ids"] = sorted(self.ids)
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
            raise FaultSpecError(f'unknown platform {platform!r}; known: {sorted(self._platforms)}')
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
        elif kind == "slow":
            seconds = spec.get("seconds", 1)
            if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 600:
                raise FaultSpecError('"seconds" must be a number between 0 and 600')
            fault.seconds = float(seconds)
        elif kind == "reject_ids":
            ids = spec.get("ids")
            if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
                raise FaultSpecError('"ids" must be a non-empty list of strings')
            fault.ids = frozenset(ids)
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
                if fault.kind != "reject_ids" and fault.matches(platform, path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def rejected_ids(self, platform: str, path: str) -> frozenset[str]:
        """Union of the ids of every ``reject_ids`` fault matching the request."""
        with self._lock:
            out: set[str] = set()
            for fault in self._faults:
                if fault.kind == "reject_ids" and fault.matches(platform, path):
                    out |= fault.ids
            return frozenset(out)
