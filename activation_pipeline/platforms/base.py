"""The narrow interface between the sync engine and a platform.

The engine plans, batches, retries, confirms and records; a platform module only knows how
to turn records into its API's requests and read back which items the platform accepted.
Adding a platform = one module implementing ``DestinationClient`` + one ``PlatformSpec``
line in ``platforms/__init__.py``. Nothing here knows Dagster.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Op = Literal["upsert", "delete", "update"]
ItemStatus = Literal["confirmed", "rejected", "skipped", "no_answer"]
NullChoice = Literal["send", "omit"]


@dataclass(frozen=True)
class Record:
    """One record to send: its snapshot key, platform identifier and platform-named fields."""

    key: str
    identifier: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class ItemOutcome:
    key: str
    status: ItemStatus
    message: str = ""


@dataclass(frozen=True)
class SyncTarget:
    """What a client needs to know of the activation it serves."""

    activation: str
    title: str
    object: str
    field_types: dict[str, str] = field(default_factory=dict)  # platform field -> logical type
    options: dict[str, Any] = field(default_factory=dict)  # the activation's `options` (PlatformSpec.activation_options)
    partition: str | None = None  # the partition (day or scope) this run syncs, if the activation is partitioned

    def for_partition(self, partition: str | None) -> "SyncTarget":
        """This target for one partition: ``{scope}`` in the object names the scope's own platform object."""
        from dataclasses import replace

        return replace(self, partition=partition, object=self.object.replace("{scope}", partition or ""))


@dataclass(frozen=True)
class Verification:
    """What a read-back found for one record: ``matches`` False names the difference (or its absence)."""

    key: str
    matches: bool
    message: str = ""
    verified: bool = True  # False: the platform could not be read (no answer); says nothing about drift


class PlatformError(RuntimeError):
    """The platform could not be used at all (bad credentials, unreachable, misconfigured)."""


class CredentialsRefused(PlatformError):
    """The platform answered 401/403: the credentials, or their permissions, are wrong (the asset names the env vars)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


AUTH_STATUSES = (401, 403)


def answer_error(status: int, message: str) -> PlatformError:
    """The run-stopping error for an unexpected answer: ``CredentialsRefused`` for a 401/403."""
    return CredentialsRefused(message, status) if status in AUTH_STATUSES else PlatformError(message)


class BatchRejected(PlatformError):
    """The platform refused a whole request because of its content (a 4xx naming no item).

    The engine splits such a batch until the offending record stands alone.
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class NoAnswer(PlatformError):
    """Transport failure or 429/5xx still failing after every retry: outcome unknown."""


class DestinationClient(Protocol):
    def prepare(self, target: SyncTarget) -> None:
        """Create what must exist before the first push (catalog, list, fields)."""

    def invalid_reason(self, record: Record, op: Op) -> str | None:
        """Why the platform would refuse this record, checked before sending; None if valid."""

    def send(self, target: SyncTarget, op: Op, records: Sequence[Record]) -> list[ItemOutcome]:
        """Apply one request's worth of records; one outcome per record.

        Raises BatchRejected when the platform refuses the request as a whole, NoAnswer
        when it never answered.
        """

    @property
    def requests_sent(self) -> int: ...

    @property
    def retries(self) -> int: ...

    def close(self) -> None: ...


class VerifyingClient(DestinationClient, Protocol):
    """A client that can read records back (``PlatformSpec.verifies``): Connectif products."""

    def verify(self, target: SyncTarget, records: Sequence[Record]) -> list[Verification]:
        """Read each record back and compare it with the fields last confirmed; one result per record."""


class TokenCache:
    """A short-lived access token shared by a client's threads (Yotpo, Synerise): fetched on first
    use, and replaced once when the platform refuses it (one login even if many threads see the 401)."""

    def __init__(self, fetch: Callable[[], str]):
        import threading

        self._fetch, self._token, self._lock = fetch, None, threading.Lock()

    def current(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = self._fetch()
            return self._token

    def refresh(self, rejected: str) -> str:
        with self._lock:
            if self._token in (None, rejected):  # another thread may have refreshed it already
                self._token = self._fetch()
            return self._token


def send_one_by_one(records: Sequence[Record], send_one: Callable[[Record], ItemOutcome], redact: Callable[[str], str]) -> list[ItemOutcome]:
    """For APIs that take one record per request: one outcome each; once the platform stops
    answering, that record and the rest of the batch are ``no_answer`` (sent again next run)."""
    outcomes: list[ItemOutcome] = []
    for position, record in enumerate(records):
        try:
            outcomes.append(send_one(record))
        except NoAnswer as silence:
            message = redact(str(silence))
            outcomes.extend(ItemOutcome(r.key, "no_answer", message) for r in records[position:])
            break
    return outcomes


class SessionClient:
    """What every HTTP client shares: the counters of its ``PlatformSession`` and closing it."""

    session: Any  # sync.http.PlatformSession (not imported: it imports this module)

    @property
    def requests_sent(self) -> int:
        return self.session.requests_sent

    @property
    def retries(self) -> int:
        return self.session.retries

    def close(self) -> None:
        self.session.close()


@dataclass(frozen=True)
class PlatformSpec:
    """What config validation and the asset factories need to know of a platform."""

    name: str
    operations: frozenset[str]
    max_items_per_request: int
    secrets: tuple[str, ...]
    field_pattern: str = r"^[A-Za-z0-9_]+$"
    field_rule: str = "letters, digits and underscores only"
    object_pattern: str = r"^.+$"
    object_rule: str = "any non-empty name"
    resource_factory: Callable[..., Any] | None = None
    settings: tuple[str, ...] | None = None  # the destination settings it takes; None: not checked
    # optional: (field, problem) when an activation (config.ActivationConfig) cannot work on this platform
    activation_problem: Callable[[Any], tuple[str, str] | None] | None = None
    activation_options: tuple[str, ...] = ()  # names an activation may set under `options`
    target_options: tuple[str, ...] = ()  # those of them that change which platform record a row addresses
    # more that names the platform object, from (object, title, options): a Dotdigital list is found by its title
    target_details: Callable[[str, str, dict[str, Any]], dict[str, str]] | None = None
    default_schedule: str | None = None  # schedule of an activation that names none (a preset or cron)
    verifies: bool = False  # the client implements VerifyingClient.verify
    # what a null mapped value does when the activation sets no `nulls:`: "send" (the client sends the
    # platform's null / clear) or "omit" (the field is left out of that record: the platform keeps its value)
    nulls_default: NullChoice = "send"
    # (choice, object pattern, why): a `nulls:` choice this platform cannot honour for those objects; the load refuses it
    nulls_refused: tuple[tuple[NullChoice, str, str], ...] = ()

    @property
    def base_url_env(self) -> str:
        """The environment variable a destination's unset base_url falls back to (each client resolves it)."""
        return f"{self.name.upper()}_BASE_URL"

    def field_name_problem(self, name: str) -> str | None:
        return None if re.fullmatch(self.field_pattern, name) else f"{self.name} field names allow {self.field_rule}"

    def object_name_problem(self, name: str) -> str | None:
        return None if re.fullmatch(self.object_pattern, name) else f"{self.name} object names allow {self.object_rule}"

    def nulls_problem(self, choice: NullChoice, object_name: str) -> str | None:
        """Why ``nulls: <choice>`` cannot work for this object of this platform; None if it can."""
        return next((why for refused, pattern, why in self.nulls_refused if refused == choice and re.fullmatch(pattern, object_name)), None)


# the address shapes platforms refuse; one definition for every client's checks before sending
def non_finite_number(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be sent as JSON, if it is or holds (at any depth) a NaN or an infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name}: {value} is not a finite number"
    if isinstance(value, dict):
        return next((p for k, v in value.items() if (p := non_finite_number(f"{name}.{k}", v))), None)
    if isinstance(value, (list, tuple)):
        return next((p for i, v in enumerate(value) if (p := non_finite_number(f"{name}[{i}]", v))), None)
    return None


EMAIL = re.compile(  # the HTML5 "valid e-mail address", with a dotted domain (what the platforms accept)
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)
E164_DIGITS = r"[1-9][0-9]{6,14}"  # E.164: at most 15 digits; the shortest numbers in use have 7


def resource_factory(resource_cls: type) -> Callable[[Any], Any]:
    """``PlatformSpec.resource_factory`` for a resource whose secrets are fields named ``<secret>_env``
    (their defaults: the usual variable names): base URL, secret variable names and settings from a
    destinations entry. Secret and setting names are checked against the spec when the config loads."""

    def build(destination: Any) -> Any:
        envs = {f"{secret}_env": variable for secret, variable in destination.secrets.items()}
        return resource_cls(base_url=destination.base_url, **envs, **destination.settings)

    return build


SANDBOX_HOST = "127.0.0.1"
SANDBOX_START_HINT = "start it with `python -m activation_pipeline.sandbox` (or run `activation-pipeline demo`)"


def sandbox_url() -> str:
    import os

    return f"http://{SANDBOX_HOST}:{os.environ.get('SANDBOX_PORT', '8765')}"


def is_loopback(url: str) -> bool:
    """True only for the loopback interface: an address in 127.0.0.0/8 or ::1, or "localhost".

    A host name that merely starts with "127." (127.0.0.1.example.com) is a public DNS name.
    """
    import ipaddress
    from urllib.parse import urlparse

    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_problem(configured: str | None, env_name: str) -> str | None:
    """Why the base URL a client resolves (the config's, else ``env_name``'s) may not carry credentials, or None.
    Checked when the config loads and again when a client is made (the variable may have changed since)."""
    import os

    url = configured or os.environ.get(env_name)
    if not url or is_loopback(url) or url.startswith("https://"):
        return None
    origin = "base_url of the destination in the config file" if configured else env_name
    return f"{origin} = {url!r}: a non-loopback base URL must use https (credentials never travel in clear)"


def resolve_base_url(env_name: str, configured: str | None, sandbox_path: str) -> str:
    """Config override, else ``<PLATFORM>_BASE_URL``, else the local sandbox.

    A base URL that leaves this machine must be https: credentials never travel in clear.
    """
    import os

    problem = base_url_problem(configured, env_name)
    if problem:
        raise PlatformError(problem)
    url = configured or os.environ.get(env_name) or f"{sandbox_url()}{sandbox_path}"
    return url.rstrip("/")


def resolve_secret(env_name: str, base_url: str, sandbox_default: str) -> str:
    """The secret held by ``env_name``; against a loopback sandbox, its demo credential."""
    import os

    value = os.environ.get(env_name)
    if value:
        return value
    if is_loopback(base_url):
        return sandbox_default
    raise PlatformError(f"environment variable {env_name} is not set (it must hold the secret for {base_url})")


def ensure_reachable(base_url: str, timeout: float = 2.0) -> None:
    """Fail at once, with the way out, when nothing listens at the base URL."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(base_url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
    except OSError as exc:
        hint = f"; the sandbox is not running: {SANDBOX_START_HINT}" if is_loopback(base_url) else ""
        raise PlatformError(f"cannot reach {parsed.scheme}://{parsed.hostname}:{port} ({exc.strerror or exc}){hint}") from None
