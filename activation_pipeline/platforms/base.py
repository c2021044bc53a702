"""The narrow interface between the sync engine and a platform.

The engine plans, batches, retries, confirms and records; a platform package only knows how
to turn records into its API's requests and read back which items the platform accepted.
Adding a platform = one package implementing ``DestinationClient`` and declaring one
``PlatformSpec`` (``platforms/declaration.py``), plus its line in ``platforms/__init__.py``
(see docs/adding_a_platform.md). Nothing here knows Dagster.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from activation_pipeline.platforms.json_items import JsonItemShape

Op = Literal["upsert", "delete", "update"]
ItemStatus = Literal["confirmed", "rejected", "skipped", "no_answer"]
NullChoice = Literal["send", "omit"]


@dataclass(frozen=True)
class Record:
    """One record to send: its snapshot key, platform identifier and platform-named fields."""

    key: str
    identifier: str
    fields: dict[str, Any]
    item: str | None = None  # the item's JSON text, built in the plan statement (``JsonItemsClient``); fields then empty


@dataclass(frozen=True)
class ItemOutcome:
    key: str
    status: ItemStatus
    message: str = ""


class TargetError(ValueError):
    """An activation's ``object`` or ``options`` that the platform's target model refuses; ``field`` names which."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


T = TypeVar("T")


@dataclass(frozen=True)
class SyncTarget(Generic[T]):
    """What a client needs to know of the activation it serves; ``platform`` is the platform's typed target."""

    activation: str
    title: str
    object: str
    field_types: dict[str, str] = field(default_factory=dict)  # platform field -> logical type
    options: dict[str, Any] = field(default_factory=dict)  # the activation's `options` (PlatformSpec.activation_options)
    partition: str | None = None  # the partition (day or scope) this run syncs, if the activation is partitioned
    # the platform's target model (PlatformSpec.target): parses (object, options) into ``platform``
    model: Callable[[str, Mapping[str, Any]], T] | None = field(default=None, compare=False, repr=False)

    @cached_property
    def platform(self) -> T:
        """The typed target (Yotpo's identifier kind, Synerise's kind and catalog, Dotdigital's list or collection)."""
        if self.model is None:
            raise TargetError("object", f"{self.activation}: no target model for this platform")
        return self.model(self.object, self.options)

    def for_partition(self, partition: str | None) -> SyncTarget[T]:
        """This target for one partition: ``{scope}`` in the object names the scope's own platform object."""
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
    """Transport failure or 429/5xx still failing after every retry: outcome unknown.

    ``status`` is the last HTTP status answered (429: still rate-limited), None when nothing answered."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class DestinationClient(Protocol):
    def prepare(self, target: SyncTarget) -> None:
        """Create what must exist before the first push (catalog, list, fields)."""

    def invalid_reason(self, target: SyncTarget, record: Record, op: Op) -> str | None:
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


@runtime_checkable
class JsonItemsClient(Protocol):
    """A client whose request items are plain JSON (``platforms/json_items.py``): the engine builds each item's
    text and checks its validity in the plan statement, and hands it over as ``Record.item`` (``fields`` empty);
    ``send`` splices the texts into its body. ``invalid_reason`` still checks records built in Python."""

    def json_items(self, target: SyncTarget, op: Op, field_types: Mapping[str, str]) -> JsonItemShape | None:
        """The item ``op`` sends for these fields (platform field -> logical type); None: built in Python."""


@runtime_checkable
class BulkSizing(Protocol):
    """A client whose platform has a bulk path for large runs (Connectif's CSV imports): it sizes the requests."""

    def items_per_request(self, target: SyncTarget, op: Op, planned: int) -> int | None:
        """Records per request of ``op`` when this run sends ``planned`` of them; None: ``max_items_per_request``."""


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
MAX_EMAIL = 254  # the longest address a mail path carries (RFC 5321 §4.5.3.1.3, less the brackets)


def email_address_problem(value: str) -> str | None:
    """Why ``value`` is not an email address the platforms accept (``EMAIL``, at most ``MAX_EMAIL`` characters), or None."""
    return None if len(value) <= MAX_EMAIL and EMAIL.fullmatch(value) else f"malformed email {value!r}"
