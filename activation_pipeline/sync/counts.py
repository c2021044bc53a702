"""A run's counters: for each class of record the diff found, how many were planned, confirmed and
failed, and the records not sent (unchanged, left in the platform, invalid, skipped). The engine fills
them; the ledger's run row, the asset's metadata and the record check read them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

CHANGES = ("added", "changed", "removed", "unchanged")
OPERATIONS = ("upsert", "update", "delete")


@dataclass
class ChangeCounts:
    planned: int = 0  # to send this run (unchanged: resent by full_only or a full resync)
    succeeded: int = 0  # confirmed by the platform: in the snapshot now
    failed: int = 0  # rejected, or no answer: not in the snapshot, resent next run

    def __add__(self, other: ChangeCounts) -> ChangeCounts:
        return ChangeCounts(self.planned + other.planned, self.succeeded + other.succeeded, self.failed + other.failed)


@dataclass
class RunCounts:
    added: ChangeCounts = field(default_factory=ChangeCounts)
    changed: ChangeCounts = field(default_factory=ChangeCounts)
    removed: ChangeCounts = field(default_factory=ChangeCounts)
    unchanged: ChangeCounts = field(default_factory=ChangeCounts)
    unchanged_skipped: int = 0  # identical to the snapshot: not sent
    removed_left_in_platform: int = 0  # left the segment, not deleted (upsert, update_only)
    invalid: int = 0  # caught before sending (by the diff, or the client's invalid_reason): never sent
    skipped: int = 0  # update_only: not in the platform, so not created

    @classmethod
    def planned_from(cls, plan_counts: dict[str, int]) -> RunCounts:
        """The planned side, from the diff's counts (``<change>`` and ``<change>_<operation>``, sync/diff.py)."""
        planned = {change: sum(plan_counts.get(f"{change}_{op}", 0) for op in OPERATIONS) for change in CHANGES}
        return cls(
            added=ChangeCounts(planned=planned["added"]),
            changed=ChangeCounts(planned=planned["changed"]),
            removed=ChangeCounts(planned=planned["removed"]),
            unchanged=ChangeCounts(planned=planned["unchanged"]),
            unchanged_skipped=plan_counts.get("unchanged", 0) - planned["unchanged"],
            removed_left_in_platform=plan_counts.get("removed", 0) - planned["removed"],
            invalid=plan_counts.get("invalid", 0),
        )

    def of(self, change: str) -> ChangeCounts:
        """The counts of one class of record (a ledger ``change``: added, changed, removed or unchanged)."""
        if change not in CHANGES:
            raise ValueError(f"not a class of record that is sent: {change!r}")
        return getattr(self, change)

    def count_outcome(self, change: str, status: str, n: int = 1) -> None:
        """``n`` platform answers: confirmed, skipped (update_only) or anything else (rejected, no answer)."""
        if status == "skipped":
            self.skipped += n
        elif status == "confirmed":
            self.of(change).succeeded += n
        else:
            self.of(change).failed += n

    @property
    def succeeded(self) -> int:
        return sum(self.of(change).succeeded for change in CHANGES)

    @property
    def failed(self) -> int:
        """Records the platform rejected or never answered for (resent next run)."""
        return sum(self.of(change).failed for change in CHANGES)

    @property
    def unchanged_resent(self) -> int:
        """Unchanged records sent again (full_only, or a full resync)."""
        return self.unchanged.planned

    def __add__(self, other: RunCounts) -> RunCounts:
        return RunCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def as_dict(self) -> dict[str, int]:
        """Flat names (``planned_added``, ``succeeded_changed``, …, ``invalid``), as benchmarks/ record them."""
        flat = {f"{side}_{change}": getattr(self.of(change), side) for change in CHANGES for side in ("planned", "succeeded", "failed")}
        return {
            **flat,
            "unchanged_skipped": self.unchanged_skipped,
            "removed_left_in_platform": self.removed_left_in_platform,
            "invalid": self.invalid,
            "skipped": self.skipped,
        }
