"""Rejections, rate limits and dropped connections: nothing is lost, nothing is confirmed
that the platform did not store, and what failed is sent again on the next run."""

from __future__ import annotations

import pytest
import requests

from activation_pipeline_tests.conftest import expected_items, product
from activation_pipeline_tests.test_sync_modes import metadata

ROWS = [product(i) for i in range(1, 31)]


def ledger(project, run_id: str) -> dict[str, tuple[str, str | None]]:
    rows = project.sql("SELECT key, status, message FROM activation_state.sync_records WHERE run_id = ?", [run_id])
    return {key: (status, message) for key, status, message in rows}


@pytest.mark.on_both_backends
def test_a_rejected_item_is_isolated_recorded_and_retried_next_run(project):
    project.add_activation(mode="full_then_delta", operation="upsert")
    project.write_products(ROWS)
    project.fault(kind="reject_ids", ids=["SKU-0007"])
    first = metadata(project.materialize())

    assert first["status"] == "partial"
    assert (first["added_succeeded"], first["added_failed"]) == (29, 1)
    assert project.catalog() == expected_items([r for r in ROWS if r["sku"] != "SKU-0007"])
    status, message = ledger(project, first["ledger_run_id"])["SKU-0007"]
    assert status == "rejected" and "SKU-0007" in message
    assert [(r.data["key"], r.data["status"], r.data["message"]) for r in first["failed_records"].records] == [("SKU-0007", "rejected", message)]
    assert "SKU-0007" not in project.snapshot_keys()

    requests.delete(f"{project.sandbox.url}/_sandbox/faults", timeout=5)
    second = metadata(project.materialize())
    assert (second["added_planned"], second["added_succeeded"], second["changed_planned"]) == (1, 1, 0)
    assert project.catalog() == expected_items(ROWS)


@pytest.mark.on_both_backends
def test_a_429_with_retry_after_is_waited_out(project):
    project.add_activation(mode="full_then_delta", operation="upsert", concurrency=1)
    project.write_products(ROWS)
    project.fault(kind="status", status=429, retry_after=1, count=2, path_contains="items/edit")
    result = metadata(project.materialize())
    assert result["status"] == "succeeded"
    assert result["retries"] == 2
    assert project.stats()["statuses"].get("429") == 2  # Batch did refuse twice
    assert result["duration_seconds"] >= 2.0  # two Retry-After: 1 honoured
    assert project.catalog() == expected_items(ROWS)


@pytest.mark.on_both_backends
def test_a_503_burst_is_retried_with_backoff(project):
    project.add_activation(mode="full_then_delta", operation="upsert")
    project.write_products(ROWS)
    project.fault(kind="status", status=503, count=3, path_contains="items/edit")
    result = metadata(project.materialize())
    assert (result["status"], result["retries"]) == ("succeeded", 3)
    assert project.stats()["statuses"].get("503") == 3  # Batch did answer 503 three times
    assert project.catalog() == expected_items(ROWS)


@pytest.mark.on_both_backends
def test_a_connection_dropped_after_applying_is_not_confirmed_and_resent(project, sandbox):
    project.add_activation(mode="full_then_delta", operation="upsert", max_items_per_request=10, concurrency=1)
    project.write_products(ROWS)
    # every attempt at one request is dropped after the sandbox stored it: the client never learns
    project.fault(kind="drop_after", count=7, path_contains="items/edit")
    result = metadata(project.materialize())
    stored = set(project.catalog())
    confirmed = project.snapshot_keys()
    assert confirmed <= stored  # nothing confirmed that the platform did not store
    assert result["added_failed"] == 10 and len(confirmed) == 20
    requests.delete(f"{sandbox.url}/_sandbox/faults", timeout=5)
    second = metadata(project.materialize())
    assert second["added_planned"] == 10
    assert project.catalog() == expected_items(ROWS)
    assert project.snapshot_keys() == {r["sku"] for r in ROWS}


@pytest.mark.on_both_backends
def test_a_connection_dropped_before_applying_leaves_nothing_confirmed(project, sandbox):
    project.add_activation(mode="full_then_delta", operation="upsert", concurrency=1)
    project.write_products(ROWS)
    project.fault(kind="drop_before", count=7, path_contains="items/edit")
    metadata(project.materialize())
    assert project.snapshot_keys() == set(project.catalog())
    requests.delete(f"{sandbox.url}/_sandbox/faults", timeout=5)
    project.materialize()
    assert project.catalog() == expected_items(ROWS)


def test_a_sync_against_a_stopped_sandbox_fails_at_once_saying_how_to_start_it(project, monkeypatch):
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("BATCH_BASE_URL", f"http://127.0.0.1:{port}/batch/2.11")
    project.add_activation()
    project.write_products(ROWS)
    result = project.materialize(raise_on_error=False)
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    message = failure.step_failure_data.error.message
    assert "the sandbox is not running" in message and "python -m activation_pipeline.sandbox" in message
    assert project.sql("SELECT status FROM activation_state.sync_runs") == [("failed",)]
