"""Faults at scale. A 100,000-record first sync (200 items a request, 4 in flight) runs
while the platform misbehaves: 429s, 5xx bursts, timeouts, dropped connections, rejected
items, slow answers. Whatever happens, the ledger tells the truth: what it calls confirmed
is stored with exactly the segment's values, the snapshot is exactly the confirmed keys,
rejections carry the platform's message, and once the fault clears a second run sends only
what was left unconfirmed and ends with the catalog equal to the segment.

Also: two activations syncing at once from two processes on one DuckDB file, and a
segment whose columns change between runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import requests
from dagster import DagsterInstance

from activation_pipeline.dagster_home import prepare_home
from activation_pipeline.sandbox.faults import rejected_by_rate
from activation_pipeline_tests.conftest import expected_items, product, reset_stats, sandbox_stats
from activation_pipeline_tests.test_sync_modes import metadata

N = 100_000
PER_REQUEST = 200
AT_SCALE = {"mode": "full_then_delta", "operation": "upsert", "max_items_per_request": PER_REQUEST, "concurrency": 4}


@cache
def segment_rows(n: int = N) -> list[dict[str, Any]]:
    return [product(i) for i in range(1, n + 1)]


@cache
def segment_items(n: int = N) -> dict[str, dict[str, Any]]:
    return expected_items(segment_rows(n))


def clear_faults(sandbox) -> None:
    requests.delete(f"{sandbox.url}/_sandbox/faults", timeout=10).raise_for_status()


def run_ledger(project, run_id: str, activation: str = "sync_products") -> dict[str, tuple[str, str | None, int]]:
    """key -> (status, message, attempt) for one run's records."""
    rows = project.sql(
        "SELECT key, status, message, attempt FROM activation_state.sync_records WHERE run_id = ? AND activation = ?", [run_id, activation]
    )
    return {key: (status, message, attempt) for key, status, message, attempt in rows}


def step_failure(result, activation: str = "sync_products") -> str:
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE" and e.step_key == f"activations__{activation}"]
    assert failures, "the activation did not fail"
    data = failures[0].step_failure_data
    return (data.user_failure_data.description if data.user_failure_data else None) or data.error.message


# --------------------------------------------------------------------------- one fault at a time


@dataclass(frozen=True)
class Fault:
    spec: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)  # destination settings while the fault is on
    leaves: str = "nothing"  # what the faulty run cannot confirm: nothing | unanswered_batches | rejected_items
    stored_unacknowledged: bool = False  # the platform applied requests it never answered

    def rejected(self) -> set[str]:
        if self.spec["kind"] == "reject_rate":
            return {k for k in segment_items() if rejected_by_rate(k, self.spec["rate"], self.spec["seed"])}
        return set(self.spec.get("ids", ()))


FAULTS = [
    pytest.param(Fault({"kind": "status", "status": 429, "retry_after": 1, "count": 3}), id="429s_with_retry_after_are_waited_out"),
    pytest.param(Fault({"kind": "status", "status": 500, "count": 6}), id="a_500_burst_is_retried_away"),
    pytest.param(Fault({"kind": "status", "status": 503, "count": 6}), id="a_503_burst_is_retried_away"),
    pytest.param(Fault({"kind": "timeout", "count": 2}, settings={"timeout_seconds": 2}), id="requests_held_past_the_client_timeout_are_retried"),
    pytest.param(Fault({"kind": "slow", "seconds": 0.5, "count": 8}), id="slow_answers_are_waited_for"),
    # with no retry left, each dropped request leaves its whole batch without an answer
    pytest.param(
        Fault({"kind": "drop_before", "count": 2}, settings={"max_retries": 0}, leaves="unanswered_batches"),
        id="connections_dropped_before_applying_leave_two_batches_unconfirmed",
    ),
    pytest.param(
        Fault({"kind": "drop_after", "count": 2}, settings={"max_retries": 0}, leaves="unanswered_batches", stored_unacknowledged=True),
        id="connections_dropped_after_applying_leave_two_stored_batches_unconfirmed",
    ),
    pytest.param(
        Fault({"kind": "reject_ids", "ids": ["SKU-31337"]}, leaves="rejected_items"),
        id="a_request_rejected_whole_for_one_bad_item_loses_only_that_item",
    ),
    pytest.param(
        Fault({"kind": "reject_rate", "rate": 0.01, "seed": 1}, leaves="rejected_items"),
        id="one_percent_of_items_rejected_are_recorded_and_the_rest_confirmed",
    ),
]


def assert_the_fault_left_what_it_must(fault: Fault, sandbox, first: dict[str, Any], ledger: dict, unconfirmed: set[str]) -> None:
    if "count" in fault.spec:
        assert sandbox_stats(sandbox)["faults_injected"] == fault.spec["count"]  # the whole fault fired
    if fault.leaves == "nothing":  # retried away within the run
        assert unconfirmed == set()
        if fault.spec["kind"] == "status":
            assert first["retries"] == fault.spec["count"]
        elif fault.spec["kind"] == "timeout":
            assert first["retries"] >= fault.spec["count"]  # a loaded machine may time out one more
    elif fault.leaves == "unanswered_batches":  # which batches is up to scheduling; how many is not
        assert len(unconfirmed) == fault.spec["count"] * PER_REQUEST
        assert all(ledger[k][0] == "no_answer" and "no answer" in ledger[k][1] for k in unconfirmed)
    else:  # exactly the items the platform refuses, each isolated by splitting its request, in the platform's words
        assert unconfirmed == fault.rejected() and 0 < len(unconfirmed) < 0.015 * N
        for key in unconfirmed:
            status, message, attempt = ledger[key]
            assert (status, attempt > 1) == ("rejected", True)
            assert message.startswith(f'INVALID_PARAMETER: items[0] (id "{key}")')
    assert (first["status"], first["added_succeeded"], first["added_failed"]) == (
        "partial" if unconfirmed else "succeeded",
        N - len(unconfirmed),
        len(unconfirmed),
    )


@pytest.mark.parametrize("fault", FAULTS)
def test_a_100k_sync_under_a_fault_confirms_only_what_is_stored_and_the_rerun_sends_only_the_rest(project, sandbox, fault):
    project.add_activation(**AT_SCALE)
    project.destination_settings.update(fault.settings)
    project.write_config()
    project.write_products(segment_rows())
    reset_stats(sandbox)
    project.fault(path_contains="items/edit", **fault.spec)

    first = metadata(project.materialize())

    ledger = run_ledger(project, first["ledger_run_id"])
    assert set(ledger) == set(segment_items())  # every record has its line
    confirmed = {k for k, (status, _, _) in ledger.items() if status == "confirmed"}
    unconfirmed = set(segment_items()) - confirmed
    assert_the_fault_left_what_it_must(fault, sandbox, first, ledger, unconfirmed)
    catalog = project.catalog()  # the ledger tells the truth:
    assert {k: catalog.get(k) for k in confirmed} == {k: segment_items()[k] for k in confirmed}
    assert set(catalog) - confirmed == (unconfirmed if fault.stored_unacknowledged else set())
    assert project.snapshot_keys() == confirmed

    clear_faults(sandbox)
    project.destination_settings.clear()
    project.write_config()
    reset_stats(sandbox)
    second = metadata(project.materialize())

    assert sandbox_stats(sandbox)["items_received"] == len(unconfirmed)
    assert (second["status"], second["added_planned"], second["added_succeeded"]) == ("succeeded", len(unconfirmed), len(unconfirmed))
    assert project.catalog() == segment_items()
    assert project.snapshot_keys() == set(segment_items())


# --------------------------------------------------------------------------- two processes, one DuckDB file


def dagster_home(tmp_path) -> Path:
    """One Dagster instance for both processes (the repository's dagster.yaml), its storage
    created up front as `dagster dev` would: two CLI processes racing to create a fresh
    SQLite storage fail inside Dagster, which is not what this test is about."""
    home = prepare_home(tmp_path / "dagster_home", Path(__file__).resolve().parents[1] / "dagster.yaml")
    with DagsterInstance.from_config(str(home)):
        pass
    return home


def cli_materialize(project, home: Path, activation: str) -> subprocess.Popen:
    env = {**os.environ, "ACTIVATION_CONFIG": str(project.config_path), "ACTIVATION_WAREHOUSE": str(project.warehouse), "DAGSTER_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "activation_pipeline.definitions", "--select", f"activations/{activation}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_two_activations_materialized_at_once_in_two_processes_on_one_duckdb_file_both_end_exact(project, sandbox, tmp_path):
    rows = segment_rows(30_000)
    project.add_activation("full_catalog", object="products", **AT_SCALE)
    project.add_activation("names_only", object="product_names", mapping={"name": "name"}, custom_attributes=[], **AT_SCALE)
    project.write_products(rows)
    project.materialize("full_catalog", run_config={"dry_run": True})  # sources and segment, once
    # stretch both syncs a little so they surely run side by side
    project.fault(kind="slow", seconds=0.05, count=1_000_000, path_contains="items/edit")

    home = dagster_home(tmp_path)
    processes = {name: cli_materialize(project, home, name) for name in ("full_catalog", "names_only")}
    outputs = {name: process.communicate(timeout=300)[0] for name, process in processes.items()}

    for name, process in processes.items():
        assert process.returncode == 0, outputs[name][-3000:]
        assert not re.search(r"\block", outputs[name], re.IGNORECASE), outputs[name][-3000:]  # no lock error nor wait
    clear_faults(sandbox)
    assert project.catalog("products") == expected_items(rows)
    assert project.catalog("product_names") == {r["sku"]: {"name": r["name"]} for r in rows}
    runs = project.sql("SELECT activation, status, started_at, finished_at FROM activation_state.sync_runs ORDER BY activation")
    assert [(a, s) for a, s, _, _ in runs] == [("full_catalog", "succeeded"), ("names_only", "succeeded")]
    (_, _, start_a, end_a), (_, _, start_b, end_b) = runs
    assert start_a < end_b and start_b < end_a, "the two syncs did not overlap: this test proved nothing"
    for name in ("full_catalog", "names_only"):
        assert project.snapshot_keys(name) == {r["sku"] for r in rows}
        statuses = project.sql("SELECT status, count(*) FROM activation_state.sync_records WHERE activation = ? GROUP BY ALL", [name])
        assert statuses == [("confirmed", len(rows))]


# --------------------------------------------------------------------------- the segment changes shape


SMALL = segment_rows(2_000)


def synced_once(project, sandbox) -> None:
    project.add_activation(**AT_SCALE)
    project.write_products(SMALL)
    project.materialize()
    assert project.catalog() == expected_items(SMALL)
    reset_stats(sandbox)


@pytest.mark.parametrize(
    "sql, field_, column, columns",
    [
        pytest.param("SELECT sku, name, brand FROM sources.products", "price", "price", "sku, name, brand", id="a_mapped_column_removed"),
        pytest.param(
            "SELECT sku, name AS title, price, brand FROM sources.products", "name", "name", "sku, title, price, brand", id="a_mapped_column_renamed"
        ),
    ],
)
def test_a_mapped_column_missing_from_the_segment_fails_the_activation_naming_the_field_and_sends_nothing(
    project, sandbox, sql, field_, column, columns
):
    synced_once(project, sandbox)
    project.segment_sql = sql
    project.write_config()

    result = project.materialize(raise_on_error=False)

    assert not result.success
    assert step_failure(result) == (
        f"activations.sync_products.mapping.{field_}: column '{column}' is not in segments.\"catalog\" (columns: {columns})"
    )
    assert sandbox_stats(sandbox)["total_requests"] == 0
    assert project.catalog() == expected_items(SMALL)
    assert project.snapshot_keys() == {r["sku"] for r in SMALL}
    runs = project.sql("SELECT status, error FROM activation_state.sync_runs ORDER BY started_at")
    assert runs == [("succeeded", None), ("failed", step_failure(result))]  # the ledger shows the run and why


def test_a_column_added_to_the_segment_but_not_mapped_sends_nothing(project, sandbox):
    synced_once(project, sandbox)
    project.segment_sql = "SELECT sku, name, price, brand, 'red' AS colour FROM sources.products"
    project.write_config()

    second = metadata(project.materialize())

    assert (second["status"], second["added_planned"], second["changed_planned"]) == ("succeeded", 0, 0)
    assert second["unchanged_skipped"] == len(SMALL)
    assert sandbox_stats(sandbox)["items_received"] == 0
    assert project.catalog() == expected_items(SMALL)


def test_a_column_whose_type_changes_resends_every_row_and_records_what_the_platform_stored(project, sandbox):
    """A typed platform field is never overwritten with another type unasked (issue #10 item 6): the run
    refuses first, sending nothing; accepted with `allow_type_change`, every row is resent."""
    synced_once(project, sandbox)
    project.segment_sql = "SELECT sku, name, CAST(price AS VARCHAR) AS price, brand FROM sources.products"
    project.write_config()

    refused = project.materialize(raise_on_error=False)
    assert not refused.success and sandbox_stats(sandbox)["items_received"] == 0
    status, error = project.sql("SELECT status, error FROM activation_state.sync_runs ORDER BY started_at DESC LIMIT 1")[0]
    assert status == "refused" and "DOUBLE -> VARCHAR" in error and "allow_type_change: true" in error

    second = metadata(project.materialize(run_config={"allow_type_change": True}))

    assert (second["status"], second["changed_planned"], second["changed_succeeded"]) == ("succeeded", len(SMALL), len(SMALL))
    assert sandbox_stats(sandbox)["items_received"] == len(SMALL)
    assert project.catalog() == {sku: {**item, "price": str(item["price"])} for sku, item in expected_items(SMALL).items()}
    records = project.sql(
        "SELECT change, status, count(*) FROM activation_state.sync_records WHERE run_id = ? GROUP BY ALL", [second["ledger_run_id"]]
    )
    assert records == [("changed", "confirmed", len(SMALL))]
    assert project.snapshot_keys() == {r["sku"] for r in SMALL}
