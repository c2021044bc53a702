"""What a snapshot describes, and the two ways it can stop describing it.

A snapshot lists what one *target* confirmed: a destination, its platform, an object (after
``{scope}``), the identifier column and the options that change which platform record a row
addresses (``PlatformSpec.target_options``). If any of them changes, the snapshot says nothing
of the new target: the run is a first sync of it (state.record_target retires the old rows).

The types of the mapped columns are recorded with the target: a platform field created as a
number must not silently start receiving text. A change is refused unless it is a safe widening
(a wider integer, integer to floating point or decimal, FLOAT to DOUBLE, a decimal that keeps
every digit), which every platform field that held the old values can hold.

Pure functions: they return the refusal's text; the engine raises it (engine._check_safeguards).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from activation_pipeline.sync.engine import SyncJob

# integer types in order of range; the unsigned ones fit in any wider signed or unsigned type
_SIGNED = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")
_UNSIGNED = ("UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT")
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")


@dataclass(frozen=True)
class Target:
    """Where an (activation, partition)'s records live in the platform."""

    destination: str
    platform: str
    object: str
    identifier: str
    options: dict[str, Any]

    @property
    def label(self) -> str:
        """``destination/object (identifier col[, option=value])``: how metadata, ledger and errors name it."""
        details = [f"identifier {self.identifier}", *(f"{k}={json.dumps(v)}" for k, v in sorted(self.options.items()))]
        return f"{self.destination}/{self.object} ({', '.join(details)})"

    def as_row(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "platform": self.platform,
            "object": self.object,
            "identifier": self.identifier,
            "options": self.options,
            "target": self.label,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Target:
        return cls(row["destination"], row["platform"], row["object"], row["identifier"], row["options"])


def target_of(job: SyncJob, partition_key: str | None) -> Target:
    """The target a run of ``job`` (one partition of it) addresses, ``{scope}`` substituted."""
    options = job.target.options
    return Target(
        job.destination or job.platform,
        job.platform,
        job.target.for_partition(partition_key).object,
        job.plan.identifier,
        {**{k: options[k] for k in job.target_options if k in options}, **dict(job.target_details)},
    )


@dataclass(frozen=True)
class TargetCheck:
    """The run's target against the snapshot's recorded one, and its mapped columns' types against theirs."""

    new: Target
    old: Target | None = None  # None: nothing recorded (a first run, or a snapshot older than this record)
    column_types: dict[str, list[str]] = field(default_factory=dict)  # platform field -> [column, DuckDB type]
    refused_types: tuple[str, ...] = ()
    widened_types: tuple[str, ...] = ()
    types_recorded: bool = False  # False: none known yet (the run's types are recorded once it ends well)

    @property
    def retargeted(self) -> str:
        return f"{self.old.label} -> {self.new.label}" if self.old is not None and self.old != self.new else ""


def check_types(target: Target, old: Target | None, recorded: dict[str, list[str]], types: dict[str, str], columns: dict[str, str]) -> TargetCheck:
    """``types``: the segment's DuckDB types; ``columns``: platform field -> segment column."""
    current = {f: [c, types[c]] for f, c in columns.items() if c in types}
    refused, widened = type_changes(recorded, current)
    # a field no longer mapped keeps its type on the platform: mapped again later, it is checked against it
    return TargetCheck(target, old, {**recorded, **current}, tuple(refused), tuple(widened), bool(recorded))


def retarget_refusal(activation: str, check: TargetCheck, snapshot_size: int, operation: str) -> str | None:
    """A mirror that changes target would stop deleting from the old one what it still holds: refuse until accepted."""
    if check.old is None or not check.retargeted or operation != "mirror" or not snapshot_size:
        return None
    return (
        f"{activation}: the target changed from {check.old.label} to {check.new.label}; this mirror activation would send all "
        f"records to the new target and leave the {snapshot_size} records it synced in the old one where they are "
        "(it no longer deletes there); if that is intended, launch the run with run config `allow_retarget: true`"
    )


def _int_rank(duckdb_type: str) -> tuple[str, int] | None:
    for family in (_SIGNED, _UNSIGNED):
        if duckdb_type in family:
            return ("signed" if family is _SIGNED else "unsigned", family.index(duckdb_type))
    return None


def is_safe_widening(old: str, new: str) -> bool:
    """True if every value of ``old`` is a value of ``new`` and the platform sees the same kind of number."""
    if old == new:
        return True
    old_int, new_int = _int_rank(old), _int_rank(new)
    if old_int and new_int:
        if old_int[0] == new_int[0]:
            return new_int[1] >= old_int[1]
        return old_int[0] == "unsigned" and new_int[0] == "signed" and new_int[1] > old_int[1]
    if old_int and (new in ("DOUBLE", "FLOAT") or _DECIMAL.match(new)):
        return True
    if old == "FLOAT" and new == "DOUBLE":
        return True
    old_dec, new_dec = _DECIMAL.match(old), _DECIMAL.match(new)
    if old_dec and new == "DOUBLE":
        return True
    if old_dec and new_dec:
        (p1, s1), (p2, s2) = (int(n) for n in old_dec.groups()), (int(n) for n in new_dec.groups())
        return s2 >= s1 and p2 - s2 >= p1 - s1  # as many fractional and as many integer digits
    return False


def type_changes(recorded: dict[str, list[str]], current: dict[str, list[str]]) -> tuple[list[str], list[str]]:
    """(refused, widened): one line per platform field whose segment column type changed since it was recorded."""
    refused: list[str] = []
    widened: list[str] = []
    for platform_field, (column, new_type) in sorted(current.items()):
        if platform_field not in recorded:
            continue  # a newly mapped field: nothing on the platform to contradict
        old_column, old_type = recorded[platform_field]
        if old_type == new_type:
            continue
        line = f"column {column!r} (platform field {platform_field!r}) {old_type} -> {new_type}"
        if old_column != column:
            line += f" (was column {old_column!r})"
        (widened if is_safe_widening(old_type, new_type) else refused).append(line)
    return refused, widened


def type_change_refusal(activation: str, target: Target, refused: list[str]) -> str:
    return (
        f"{activation}: the type of a mapped column changed since the last confirmed sync to {target.label}: "
        f"{'; '.join(refused)}; the platform field keeps the type its values were sent with, so this run sends "
        "nothing (safe widenings pass unasked: wider integers, integer to DOUBLE/DECIMAL, FLOAT to DOUBLE); "
        "fix the segment or source type, or launch the run with run config `allow_type_change: true` "
        "to send the new type"
    )
