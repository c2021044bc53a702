"""What the sandbox server and a platform emulator exchange.

The server decodes each HTTP request into a :class:`Request`, lends the
platform a :class:`HandlerContext` (rate limiting, injected ``reject_ids``, item
counters for stats) and sends back the :class:`Response` it returns. A platform
emulator is a class following :class:`Platform`, built with the shared
:class:`~.store.Store` and :class:`~.emulator_kit.Clock` (usually a subclass of
:class:`~.emulator_kit.Emulator`). Nothing here depends on http.server.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Protocol

from .faults import Rejections
from .ratelimit import RateLimiter


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON value")


def parse_json(body: bytes) -> Any:
    """Strict JSON decoding: UTF-8 only, NaN/Infinity rejected (ValueError)."""
    return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)


@dataclass
class Request:
    """An incoming HTTP request, decoupled from http.server."""

    method: str
    path: str
    segments: list[str]
    query: dict[str, str]
    headers: Message
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Response:
    """A JSON response (``body=None`` sends an empty body); ``bytes`` are sent as they are, typed by a
    ``Content-Type`` in ``headers`` (Connectif's CSV error reports)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"error_code": code, "error_message": message}, dict(headers or {}))


@dataclass
class HandlerContext:
    """What the server lends a platform handler for one request."""

    limiter: RateLimiter
    rejected_ids: Rejections = field(default_factory=Rejections)
    items_received: int = 0
    items_applied: int = 0

    def throttle(self, key: str, items: int = 0) -> int | None:
        """Charge one request and ``items`` item updates to ``key``: None when allowed, else the
        ``Retry-After`` seconds (at least 1) to answer the 429 with."""
        wait = self.limiter.check(key, items)
        return None if wait is None else max(1, math.ceil(wait))

    def rejection(self, item_id: object) -> str | None:
        """The fault kind (``reject_ids`` / ``reject_rate``) that makes the platform refuse ``item_id``, or None."""
        return self.rejected_ids.kind(item_id)


class Platform(Protocol):
    """Interface of a platform emulator, built as ``cls(store, clock)`` by the server.

    ``handle`` answers the platform's own routes (the path without ``/<name>``), ``admin`` the
    ``/_sandbox/<name>/...`` inspection routes (no auth), ``fault_response`` an injected status
    in the platform's error shape, ``reset`` empties its state for ``POST /_sandbox/reset``.
    """

    name: str

    def handle(self, req: Request, ctx: HandlerContext) -> Response: ...

    def admin(self, req: Request, segments: list[str]) -> Response: ...

    def fault_response(self, status: int, retry_after: int | None) -> Response: ...

    def reset(self) -> None: ...
