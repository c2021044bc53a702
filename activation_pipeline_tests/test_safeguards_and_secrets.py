"""Dry runs, safeguards with their overrides, full resync, and secrets kept out of everything."""

from __future__ import annotations

import pytest
from dagster import DagsterInstance

from activation_pipeline.sandbox import start_sandbox
from activation_pipeline_tests.conftest import Project, expected_items, product
from activation_pipeline_tests.test_sync_modes import metadata

ROWS = [product(i) for i in range(1, 21)]


def failure_message(result) -> str:
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    return failures[0].step_failure_data.error.message if failures else ""


def test_dry_run_reports_the_plan_and_changes_nothing(project):
    project.add_activation()
    project.write_products(ROWS)
    result = metadata(project.materialize(run_config={"dry_run": True}))
    assert (result["status"], result["added_planned"], result["added_succeeded"]) == ("dry_run", 20, 0)
    assert project.catalog() == {}
    assert project.snapshot_keys() == set()
    assert project.sql("SELECT count(*) FROM activation_state.sync_records") == [(0,)]
    assert project.sql("SELECT count(*) FROM activation_state.sync_runs") == [(0,)]


def test_a_mass_deletion_is_refused_with_its_numbers_until_overridden(project):
    project.add_activation(mode="full_then_delta", operation="mirror", max_delete_fraction=0.2)
    project.write_products(ROWS)
    project.materialize()
    project.write_products(ROWS[:10])

    refused = project.materialize(raise_on_error=False)
    message = failure_message(refused)
    assert "refusing to delete 10 of 20" in message and "50.0%" in message and "allow_mass_delete: true" in message
    assert project.catalog() == expected_items(ROWS)
    assert project.sql("SELECT status FROM activation_state.sync_runs ORDER BY started_at DESC LIMIT 1") == [("refused",)]

    allowed = metadata(project.materialize(run_config={"allow_mass_delete": True}))
    assert allowed["removed_succeeded"] == 10
    assert project.catalog() == expected_items(ROWS[:10])


def test_full_resync_resends_everything_and_deletes_nothing(project):
    project.add_activation(mode="full_then_delta", operation="mirror", max_delete_fraction=1.0)
    project.write_products(ROWS)
    project.materialize()
    project.write_products(ROWS[:15])
    project.reset_stats()
    result = metadata(project.materialize(run_config={"full_resync": True}))
    assert (result["unchanged_resent"], result["removed_planned"]) == (15, 0)
    assert project.stats()["items_received"] == 15  # Batch received the fifteen again, and no deletion
    assert project.catalog() == expected_items(ROWS)


def test_a_changed_segment_locks_an_auto_synced_activation_until_overridden(project):
    project.add_activation(schedule="daily")
    project.write_products(ROWS)
    project.materialize()
    project.segment_sql = "SELECT sku, name, price, brand FROM sources.products WHERE price > 20"
    project.write_config()

    refused = project.materialize(raise_on_error=False)
    assert "segment's SQL changed" in failure_message(refused)
    assert "allow_segment_change: true" in failure_message(refused)
    accepted = metadata(project.materialize(run_config={"allow_segment_change": True}))
    assert accepted["status"] == "succeeded"
    project.materialize()  # the new SQL is now the synced one: no override needed


SECRET_KEY = "sk-live-7f3a9c2e51d84b6f"
SECRET_PROJECT = "project_secret_4242"


@pytest.fixture
def private_sandbox(tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_BATCH_REST_API_KEY", SECRET_KEY)
    monkeypatch.setenv("SANDBOX_BATCH_PROJECT_KEY", SECRET_PROJECT)
    server = start_sandbox(port=0, state_path=tmp_path / "private.sqlite", rate_limit=False)
    yield server
    server.stop()


def everything_written(project: Project, instance: DagsterInstance) -> str:
    logs = []
    for run in instance.get_runs():
        for record in instance.all_logs(run.run_id):
            logs.append(str(record.user_message))
            logs.append(str(record.dagster_event))
    ledger = project.sql("SELECT * FROM activation_state.sync_records") + project.sql("SELECT * FROM activation_state.sync_runs")
    return "\n".join(logs) + str(ledger)


def test_secrets_never_reach_logs_metadata_or_the_ledger(tmp_path, private_sandbox, monkeypatch, instance):
    monkeypatch.setenv("BATCH_BASE_URL", f"{private_sandbox.url}/batch/2.11")
    monkeypatch.setenv("BATCH_REST_API_KEY", SECRET_KEY)
    monkeypatch.setenv("BATCH_PROJECT_KEY", SECRET_PROJECT)
    project = Project(tmp_path, private_sandbox, instance)
    project.add_activation()
    project.write_products(ROWS + [{"sku": "SKU-BAD", "name": "x" * 20_000, "price": 1.0, "brand": "x"}])
    project.fault(kind="reject_ids", ids=["SKU-0003"])
    result = project.materialize()
    assert (metadata(result)["added_succeeded"], metadata(result)["invalid"]) == (19, 1)
    # and with a wrong key, the 401 error message must not echo what was sent either
    monkeypatch.setenv("BATCH_REST_API_KEY", SECRET_KEY + "-wrong")
    project.write_products(ROWS + [product(99)])
    failed = project.materialize(raise_on_error=False)
    assert "401" in failure_message(failed) or "AUTHENTICATION_INVALID" in failure_message(failed)

    written = everything_written(project, instance)
    assert SECRET_KEY not in written and SECRET_PROJECT not in written
    assert "SKU-0003" in written  # the scan did read the ledger and logs


def test_a_second_run_of_the_same_activation_waits_its_turn_instead_of_interfering(project):
    import filelock

    project.add_activation()
    project.write_products(ROWS)
    lock = project.warehouse.parent / "activation_state" / "locks" / "sync_products.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(lock)):  # as if another process were syncing it right now
        busy = project.materialize(raise_on_error=False)
    assert "another run of this activation is in progress" in failure_message(busy)
    assert project.catalog() == {}
    assert metadata(project.materialize())["added_succeeded"] == len(ROWS)
