"""The platform contract: the sync semantics every entry of the platform registry must honour,
run through real materializations against its emulator.

First run sends all; a later run sends only what changed; mirror removes leavers (where the
platform declares mirror); a rejected record is isolated and retried next run; an invalid
identifier never reaches the platform; a 429 is waited out; a record the platform never
confirmed is sent again next run. What the platform holds and received is read from the
sandbox's own state and stats (``/_sandbox/...``), never from the engine's report.

Each platform supplies only its `PlatformCase` (platform_cases.py): rows, and a reader of its
emulator's state. A registered platform without a case fails here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from activation_pipeline.platforms import PLATFORMS
from activation_pipeline_tests.conftest import Project
from activation_pipeline_tests.platform_cases import CASES

ROWS = 5


@pytest.fixture(params=sorted(PLATFORMS))
def platform(request: pytest.FixtureRequest, project_for: Callable[[str], Project]) -> Project:
    """A project on each registered platform's emulator, with its case's default activation (upsert)."""
    name = request.param
    if name not in CASES:
        pytest.fail(
            f"platform {name!r} is registered in activation_pipeline.platforms.PLATFORMS but has no PlatformCase "
            "in activation_pipeline_tests/platform_cases.py: add one so the contract suite runs it"
        )
    project = project_for(name)
    project.add_activation(mode="full_then_delta", operation="upsert")
    return project


def rows(project: Project, count: int = ROWS, version: int = 0) -> list[dict[str, Any]]:
    return [project.case.row(i, version) for i in range(1, count + 1)]


def key(project: Project, row: dict[str, Any]) -> str:
    return str(row[project.case.primary_key])


def received(project: Project) -> int:
    """Records the emulator received in edit requests since its stats were last reset."""
    return project.stats()["items_received"]


def test_every_registered_platform_has_a_contract_case() -> None:
    assert sorted(PLATFORMS) == sorted(CASES), "each platform of the registry needs a PlatformCase, and only those"


def test_the_first_run_sends_every_record_and_a_later_run_only_the_changed_and_added(platform: Project) -> None:
    first = rows(platform)
    platform.reset_stats()
    platform.run(first)
    assert platform.held() == platform.case.expected(first)
    assert received(platform) == len(first)  # each record reached the platform once

    # row 2 changes, row 6 arrives, the others are unchanged
    second = [platform.case.row(i, 1 if i == 2 else 0) for i in range(1, ROWS + 2)]
    platform.reset_stats()
    platform.run(second)
    assert platform.held() == platform.case.expected(second)
    assert received(platform) == 2

    platform.reset_stats()
    platform.run(second)
    assert received(platform) == 0  # nothing changed: nothing sent


def test_mirror_removes_the_records_that_left_the_segment(platform: Project) -> None:
    operations = PLATFORMS[platform.case.platform].operations
    if "mirror" not in operations:
        pytest.skip(f"{platform.case.platform} declares no mirror (its operations: {', '.join(sorted(operations))})")
    platform.add_activation(mode="full_then_delta", operation="mirror", max_delete_fraction=1.0)
    everyone = rows(platform)
    platform.run(everyone)
    assert platform.held() == platform.case.expected(everyone)

    stay = everyone[:-2]
    platform.run(stay)
    assert platform.held() == platform.case.expected(stay)
    assert platform.snapshot_keys() == {key(platform, r) for r in stay}


def test_a_rejected_record_is_isolated_and_sent_again_once_the_platform_accepts_it(platform: Project) -> None:
    everyone = rows(platform)
    refused = everyone[2]
    platform.fault(kind="reject_ids", ids=[platform.case.sent_id(refused)])
    platform.run(everyone)
    others = [r for r in everyone if r is not refused]
    assert platform.held() == platform.case.expected(others)  # the others landed
    assert platform.snapshot_keys() == {key(platform, r) for r in others}
    assert platform.last_run_records()[key(platform, refused)][0] == "rejected"

    platform.clear_faults()
    platform.reset_stats()
    platform.run(everyone)
    assert platform.held() == platform.case.expected(everyone)
    assert received(platform) == 1  # only the record that was refused


def test_an_invalid_identifier_is_never_sent(platform: Project) -> None:
    valid = rows(platform)
    invalid = platform.case.invalid_row(ROWS + 1)
    platform.reset_stats()
    platform.run([*valid, invalid])
    assert platform.held() == platform.case.expected(valid)
    assert received(platform) == len(valid)  # the platform never saw the invalid one
    assert platform.last_run_records()[key(platform, invalid)][0] == "invalid"


def test_a_429_is_waited_out_and_every_record_lands(platform: Project) -> None:
    everyone = rows(platform)
    platform.fault(kind="status", status=429, retry_after=1, count=2, path_contains=platform.case.edit_path)
    platform.reset_stats()
    platform.run(everyone)
    assert platform.stats()["statuses"].get("429") == 2  # the platform did refuse twice
    assert platform.held() == platform.case.expected(everyone)
    assert platform.snapshot_keys() == {key(platform, r) for r in everyone}


def test_a_record_the_platform_never_confirmed_is_sent_again_next_run(platform: Project) -> None:
    everyone = rows(platform)
    platform.settings["max_retries"] = 0
    platform.write_config()
    # the platform stores the first request carrying records, but its answer never arrives
    platform.fault(kind="drop_after", count=1, path_contains=platform.case.edit_path)
    platform.write(platform.case.main_table, everyone)
    platform.materialize(raise_on_error=False)
    confirmed = platform.snapshot_keys()
    unconfirmed = {key(platform, r) for r in everyone} - confirmed
    assert unconfirmed, "the dropped answer left every record confirmed"
    assert confirmed <= {key(platform, r) for r in everyone}

    platform.reset_stats()
    platform.run(everyone)
    assert received(platform) == len(unconfirmed)  # exactly those resent, not taken for granted
    assert platform.held() == platform.case.expected(everyone)
    assert platform.snapshot_keys() == {key(platform, r) for r in everyone}
