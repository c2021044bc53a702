"""What the platform emulators share: their base class, clock, credentials, issued tokens, JSON bodies.

Each emulator keeps its own contract (routes, error bodies, limits); this module holds only the
mechanics that are the same everywhere, so that a fix to, say, token expiry lands once:

* :class:`Emulator` -- the base class: the shared store and clock, its tables (created at start,
  emptied by ``POST /_sandbox/reset``);
* :class:`Clock` -- the time every emulator reads (token expiry, import windows, rate buckets,
  timestamps), advanced by ``POST /_sandbox/clock`` so tests need not sleep;
* :func:`authorization`, :func:`basic_credentials`, :func:`same_secret` -- reading credentials;
* :class:`IssuedTokens` -- access tokens handed out by a login endpoint, kept hashed, expiring;
* :func:`json_body`, :func:`optional_json`, :func:`compact_json` -- request and stored JSON;
* :func:`retry_after_headers`, :func:`settings_from_env` -- answers and run-time settings.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar, Protocol, TypeVar

from .platform_interface import Request, parse_json
from .store import Store

_TABLE_RE = re.compile(r"CREATE TABLE IF NOT EXISTS (\w+)")


class Clock:
    """The sandbox's time: the system clock plus an offset that tests move forward.

    ``Clock(frozen=True)`` stands still at its creation instant and moves only by :meth:`advance`,
    so a test of token expiry or rate limiting depends on no machine's speed.
    """

    def __init__(self, frozen: bool = False) -> None:
        self._frozen_at = (time.time(), time.monotonic()) if frozen else None
        self._offset = 0.0
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        return self._offset

    def time(self) -> float:
        """Seconds since the epoch (token expiry, import windows, ``X-RateLimit-Reset``)."""
        return (self._frozen_at[0] if self._frozen_at else time.time()) + self._offset

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back while the offset is not reset (rate buckets)."""
        return (self._frozen_at[1] if self._frozen_at else time.monotonic()) + self._offset

    def iso(self, timespec: str = "milliseconds") -> str:
        """Now in UTC as ISO 8601 with ``Z`` (``2026-01-31T09:30:00.123Z``; ``timespec="seconds"`` drops ms)."""
        now = dt.datetime.fromtimestamp(self.time(), dt.timezone.utc)
        return now.isoformat(timespec=timespec).replace("+00:00", "Z")

    def advance(self, seconds: float) -> None:
        if not seconds >= 0:
            raise ValueError("the clock only moves forward: seconds must be >= 0")
        with self._lock:
            self._offset += seconds

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0


class Emulator:
    """Base of a platform emulator: ``name``, ``schema`` and the store and clock the server lends it.

    A subclass adds ``handle``, ``admin`` and ``fault_response`` (see
    :class:`~.platform_interface.Platform`) and extends ``reset`` when it holds more than its tables.
    """

    name: ClassVar[str]
    #: ``CREATE TABLE IF NOT EXISTS`` / ``CREATE INDEX`` statements run at start; the tables are emptied by reset.
    schema: ClassVar[tuple[str, ...]] = ()

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store, self.clock = store, clock
        with store.transaction() as db:
            for statement in self.schema:
                db.execute(statement)

    def reset(self) -> None:
        with self.store.transaction() as db:
            for statement in self.schema:
                table = _TABLE_RE.match(statement)
                if table:
                    db.execute(f"DELETE FROM {table.group(1)}")


# --------------------------------------------------------------------------- credentials


def authorization(req: Request) -> tuple[str, str]:
    """The ``Authorization`` header as ``(scheme in lower case, credential)``; ``("", "")`` when absent."""
    scheme, _, credential = (req.header("Authorization") or "").strip().partition(" ")
    return scheme.lower(), credential.strip()


def basic_credentials(req: Request) -> tuple[str, str] | None:
    """``(user, password)`` of an HTTP Basic ``Authorization`` header, or None (absent, not Basic, not base64)."""
    scheme, credential = authorization(req)
    if scheme != "basic":
        return None
    try:
        user, _, password = base64.b64decode(credential, validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison, so a wrong credential's timing says nothing about the right one."""
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclasses.dataclass(frozen=True)
class IssuedToken:
    owner: str
    expired: bool


class IssuedTokens:
    """Access tokens an emulator's login endpoint hands out: stored as hashes, bound to an owner, expiring.

    All emulators share one table, one row per token, told apart by the emulator's name.
    """

    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS sandbox_tokens (token_hash TEXT PRIMARY KEY, platform TEXT NOT NULL, "
        "owner TEXT NOT NULL, expires_at REAL NOT NULL)"
    )

    def __init__(self, store: Store, platform: str, clock: Clock) -> None:
        self.store, self.platform, self.clock = store, platform, clock
        with store.transaction() as db:
            db.execute(self._SCHEMA)

    def issue(self, ttl_seconds: float, owner: str = "") -> str:
        token, now = secrets.token_urlsafe(32), self.clock.time()
        with self.store.transaction() as db:
            db.execute("DELETE FROM sandbox_tokens WHERE platform=? AND expires_at <= ?", (self.platform, now))
            db.execute("INSERT INTO sandbox_tokens VALUES (?,?,?,?)", (_hash(token), self.platform, owner, now + ttl_seconds))
        return token

    def find(self, token: str) -> IssuedToken | None:
        """The token's owner and whether it has expired; None for a token never issued (or forgotten)."""
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT owner, expires_at FROM sandbox_tokens WHERE token_hash=? AND platform=?", (_hash(token), self.platform)
            ).fetchone()
        return None if row is None else IssuedToken(row[0], row[1] <= self.clock.time())

    def expire_all(self) -> int:
        """Expire every token still carrying an expiry; the number expired now."""
        with self.store.transaction() as db:
            return db.execute("UPDATE sandbox_tokens SET expires_at=0 WHERE platform=? AND expires_at>0", (self.platform,)).rowcount

    def forget_all(self) -> None:
        with self.store.transaction() as db:
            db.execute("DELETE FROM sandbox_tokens WHERE platform=?", (self.platform,))


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# --------------------------------------------------------------------------- JSON


def json_body(req: Request, bad_json: Callable[[str], Exception], not_json: Callable[[], Exception] | None = None) -> Any:
    """The request's decoded JSON body, refused in the platform's own words.

    ``bad_json(reason)`` is raised for a body that is not strict JSON; ``not_json()``, when given,
    for a ``Content-Type`` other than ``application/json``.
    """
    if not_json is not None and (req.header("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
        raise not_json()
    try:
        return parse_json(req.body)
    except ValueError as exc:
        raise bad_json(str(exc)) from None


def optional_json(req: Request) -> Any:
    """An admin request's JSON body, ``{}`` when empty (ValueError when unreadable)."""
    return parse_json(req.body) if req.body else {}


def compact_json(value: Any) -> str:
    """JSON without spaces, non-ASCII kept: how emulators store documents and quote ids in messages."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --------------------------------------------------------------------------- answers and settings


def retry_after_headers(retry_after: int | None) -> dict[str, str]:
    return {} if retry_after is None else {"Retry-After": str(retry_after)}


class _Settings(Protocol):
    """A dataclass of run-time settings whose ``update`` validates and applies a JSON object."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def update(self, spec: Any) -> None: ...


S = TypeVar("S", bound=_Settings)


def settings_from_env(cls: type[S], platform: str) -> S:
    """Default settings of dataclass ``cls`` updated from env ``SANDBOX_<PLATFORM>_<FIELD>`` through its ``update``.

    A value is read as its default's type: booleans from 1/true/yes/on, lists comma-separated.
    """
    settings = cls()
    spec: dict[str, Any] = {}
    for field in dataclasses.fields(settings):
        raw = os.environ.get(f"SANDBOX_{platform.upper()}_{field.name.upper()}")
        if raw is None or not raw.strip():
            continue
        raw, default = raw.strip(), getattr(settings, field.name)
        if isinstance(default, bool):
            spec[field.name] = raw.lower() in ("1", "true", "yes", "on")
        elif isinstance(default, list):
            spec[field.name] = [part.strip() for part in raw.split(",") if part.strip()]
        else:
            spec[field.name] = type(default)(raw)
    settings.update(spec)
    return settings
