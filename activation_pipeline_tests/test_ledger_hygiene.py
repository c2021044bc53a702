"""Ledger and state hygiene: the run row counts unchanged rows skipped and resent under names that
cannot be misread (older ledgers migrated), plan files (personal data) never outlive their run,
and `ledger_retention_days` / `activation-pipeline ledger prune` drop old payloads, keeping counts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import requests
import yaml

from activation_pipeline.config import ConfigError, load_config
from activation_pipeline_tests.conftest import product
from activation_pipeline_tests.test_crash_recovery import cli_materialize, edit_requests
from activation_pipeline_tests.test_sync_modes import metadata

RUN_COUNTS = (
    "SELECT planned_added, planned_changed, planned_removed, unchanged_resent, unchanged_skipped, succeeded, failed "
    "FROM activation_state.sync_runs ORDER BY started_at"
)


def plan_files(project) -> list[Path]:
    return sorted((project.root / "activation_state" / "plans").rglob("*.parquet"))


def set_top_level(project, **settings) -> None:
    document = yaml.safe_load(project.config_path.read_text())
    project.config_path.write_text(yaml.safe_dump({**settings, **document}, sort_keys=False))


def age_ledger(project, days: int) -> None:
    """Time passing: every record operation so far happened ``days`` days ago."""
    with duckdb.connect(str(project.warehouse)) as conn:
        conn.execute(f"UPDATE activation_state.sync_records SET recorded_at = recorded_at - INTERVAL {days} DAY")


def cli(project, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ACTIVATION_WAREHOUSE": str(project.warehouse), "ACTIVATION_CONFIG": str(project.config_path)}
    return subprocess.run([sys.executable, "-m", "activation_pipeline.cli", "ledger", *args], env=env, capture_output=True, text=True)


# --- unchanged rows: skipped and resent ----------------------------------------------------


def test_a_delta_run_records_the_unchanged_rows_it_skipped(project):
    project.add_activation(mode="full_then_delta", operation="upsert")
    project.write_products([product(i) for i in range(1, 11)])
    project.materialize()
    project.write_products([product(i, price=50.0 if i <= 2 else None) for i in range(1, 11)])
    project.reset_stats()
    second = metadata(project.materialize())
    assert (second["changed_succeeded"], second["unchanged_skipped"], second["unchanged_resent"]) == (2, 8, 0)
    assert project.stats()["items_received"] == 2  # the skipped eight never reached Batch
    assert project.sql(RUN_COUNTS)[1] == (0, 2, 0, 0, 8, 2, 0)  # the ledger says what the metadata says


def test_a_full_only_run_records_the_unchanged_rows_it_resent(project):
    project.add_activation(mode="full_only", operation="upsert")
    project.write_products([product(i) for i in range(1, 11)])
    project.materialize()
    project.reset_stats()
    second = metadata(project.materialize())
    assert (second["unchanged_resent"], second["unchanged_skipped"]) == (10, 0)
    assert project.stats()["items_received"] == 10  # Batch really received them again
    assert project.sql(RUN_COUNTS)[1] == (0, 0, 0, 10, 0, 10, 0)


OLD_SYNC_RUNS = """
CREATE SCHEMA activation_state;
CREATE TABLE activation_state.sync_runs (
    run_id VARCHAR, activation VARCHAR, partition_key VARCHAR, platform VARCHAR,
    mode VARCHAR, operation VARCHAR, full_resync BOOLEAN, segment_sql_hash VARCHAR,
    status VARCHAR, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
    planned_added BIGINT, planned_changed BIGINT, planned_removed BIGINT, planned_unchanged BIGINT,
    succeeded BIGINT, failed BIGINT, invalid BIGINT, skipped BIGINT,
    requests BIGINT, retries BIGINT, snapshot_size BIGINT, folded_seq BIGINT, error VARCHAR
);
INSERT INTO activation_state.sync_runs (run_id, activation, status, started_at, planned_added, planned_unchanged, succeeded)
VALUES ('old-run', 'other_activation', 'succeeded', now() - INTERVAL 3 DAY, 4, 6, 10);
"""


def test_a_ledger_made_by_an_older_version_is_migrated_and_keeps_its_rows(project):
    with duckdb.connect(str(project.warehouse)) as conn:
        conn.execute(OLD_SYNC_RUNS)
    project.add_activation(mode="full_only", operation="upsert")
    project.write_products([product(i) for i in range(1, 6)])
    project.materialize()
    project.materialize()  # the migration runs again on a migrated ledger: nothing changes
    # planned_unchanged always counted unchanged rows that were resent; what was skipped was never recorded
    assert project.sql("SELECT unchanged_resent, unchanged_skipped, succeeded FROM activation_state.sync_runs WHERE run_id = 'old-run'") == [
        (6, None, 10)
    ]
    assert [row[3:5] for row in project.sql(RUN_COUNTS)] == [(6, None), (0, 0), (5, 0)]
    columns = {c for (c,) in project.sql("SELECT column_name FROM duckdb_columns() WHERE table_name = 'sync_runs'")}
    assert "planned_unchanged" not in columns and {"unchanged_resent", "unchanged_skipped"} <= columns


# --- plan files ----------------------------------------------------------------------------


def test_finished_and_failed_runs_leave_no_plan_file(project):
    project.add_activation()
    project.write_products([product(i) for i in range(1, 21)])
    project.materialize()
    assert plan_files(project) == []
    project.write_products([product(i, price=99.0) for i in range(1, 21)])
    project.fault(kind="status", status=401, count=1000)  # bad credentials: the run fails
    result = project.materialize(raise_on_error=False)
    assert not result.success
    assert plan_files(project) == []
    assert project.sql("SELECT status FROM activation_state.sync_runs ORDER BY started_at") == [("succeeded",), ("failed",)]


def test_the_plan_a_killed_run_left_behind_is_deleted_by_the_next_run(project, sandbox, tmp_path):
    project.add_activation(max_items_per_request=10, concurrency=2)
    project.write_products([product(i) for i in range(1, 201)])
    project.materialize(run_config={"dry_run": True})  # builds sources and segment
    project.fault(kind="slow", seconds=0.15, count=1000, path_contains="items/edit")
    process = cli_materialize(project, tmp_path)
    deadline = time.monotonic() + 120
    while edit_requests(sandbox) < 4 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    left = plan_files(project)
    assert len(left) == 1, "the kill must land while the plan is in use"
    legacy = left[0].parents[1] / "sync_products-an-older-run.parquet"  # named as before plans had a folder
    legacy.write_bytes(left[0].read_bytes())

    requests.delete(f"{sandbox.url}/_sandbox/faults", timeout=5)
    rerun = cli_materialize(project, tmp_path)
    output = rerun.communicate(timeout=180)[0].decode()
    assert rerun.returncode == 0, output[-3000:]
    assert plan_files(project) == []
    assert project.snapshot_keys() == {f"SKU-{i:04d}" for i in range(1, 201)}
    assert sorted(s for (s,) in project.sql("SELECT status FROM activation_state.sync_runs")) == ["interrupted", "succeeded"]


# --- retention -----------------------------------------------------------------------------


def two_runs_ten_days_ago(project) -> list[tuple]:
    """Run 1 adds 1-5; run 2 changes 2, removes 5 and has 3 rejected; then ten days pass."""
    project.add_activation(mode="full_then_delta", operation="mirror", max_delete_fraction=1.0)
    project.write_products([product(i) for i in range(1, 6)])
    project.materialize()
    project.write_products([product(1), product(2, price=77.0), product(3, price=33.0), product(4)])
    project.fault(kind="reject_ids", ids=["SKU-0003"])
    project.materialize()
    requests.delete(f"{project.sandbox.url}/_sandbox/faults", timeout=5)
    age_ledger(project, 10)
    return project.sql(f"SELECT run_id, status, {RUN_COUNTS.split('SELECT ', 1)[1]}")


LATEST = "SELECT key, last_operation, in_platform, payload FROM activation_state.latest_records ORDER BY key"


def test_prune_drops_old_payloads_and_keeps_counts_and_what_the_platform_holds(project):
    runs = two_runs_ten_days_ago(project)
    latest_before = project.sql(LATEST)
    snapshot_before = project.snapshot_keys()

    pruned = cli(project, "prune", "--days", "7")
    assert pruned.returncode == 0, pruned.stderr
    # 8 operations: run 1's 5 adds, run 2's two changes (one rejected) and a removal; each key's last
    # confirmed one stays (SKU-0003's is run 1's add): 2 and 5's adds and 3's rejection go; the four
    # upserts kept lose their payload (5's delete had none)
    assert "older than 7 day(s): 3 row(s) deleted, 4 cleared of payload and message" in pruned.stdout
    assert project.sql(f"SELECT run_id, status, {RUN_COUNTS.split('SELECT ', 1)[1]}") == runs  # counts untouched
    assert [row[:3] for row in project.sql(LATEST)] == [row[:3] for row in latest_before]
    assert all(payload is None for *_, payload in project.sql(LATEST))
    assert project.sql("SELECT count(*) FROM activation_state.sync_records WHERE payload IS NOT NULL OR message IS NOT NULL") == [(0,)]
    assert project.snapshot_keys() == snapshot_before
    history = project.sql("SELECT change, status FROM activation_state.record_history WHERE key = 'SKU-0003'")
    assert history == [("added", "confirmed")]  # the rejection and its message (may name personal data) are gone

    again = cli(project, "prune", "--days", "7")  # nothing left to drop
    assert "0 row(s) deleted, 0 cleared" in again.stdout


def test_recent_records_keep_their_payload_when_older_ones_are_pruned(project):
    two_runs_ten_days_ago(project)
    project.materialize()  # today: run 3 resends SKU-0003's change, confirmed
    assert cli(project, "prune", "--days", "7").returncode == 0
    fresh = project.sql("SELECT key, status, payload FROM activation_state.sync_records WHERE recorded_at > now() - INTERVAL 1 DAY")
    assert [(k, s, json.loads(p)["price"]) for k, s, p in fresh] == [("SKU-0003", "confirmed", 33.0)]
    assert project.sql(LATEST)[2][1:3] == ("upsert", True)


def test_a_successful_run_applies_ledger_retention_days(project):
    two_runs_ten_days_ago(project)
    set_top_level(project, ledger_retention_days=7)
    project.write_products([product(1, price=1.5), product(2, price=77.0), product(3, price=33.0), product(4)])
    result = metadata(project.materialize())
    assert result["changed_succeeded"] == 2  # 1's new price and 3's retried change
    kept = project.sql("SELECT key, payload IS NOT NULL FROM activation_state.sync_records ORDER BY key, recorded_at")
    # today's run keeps its payloads; of the old rows only 2, 4 and 5's last confirmed versions stay, bare
    assert kept == [("SKU-0001", True), ("SKU-0002", False), ("SKU-0003", True), ("SKU-0004", False), ("SKU-0005", False)]
    assert len(project.sql("SELECT * FROM activation_state.sync_runs")) == 3


def test_prune_says_what_is_missing_or_wrong(project):
    two_runs_ten_days_ago(project)
    rows_before = project.sql("SELECT count(*) FROM activation_state.sync_records")
    no_setting = cli(project, "prune")
    assert no_setting.returncode != 0
    assert f"no retention: set ledger_retention_days in {project.config_path} or pass --days N" in no_setting.stderr
    assert "--days must be 1 or more, got 0" in cli(project, "prune", "--days", "0").stderr
    assert "takes no key" in cli(project, "prune", "SKU-0001").stderr
    assert project.sql("SELECT count(*) FROM activation_state.sync_records") == rows_before
    set_top_level(project, ledger_retention_days=30)
    assert "older than 30 day(s): 0 row(s) deleted, 0 cleared" in cli(project, "prune").stdout


@pytest.mark.parametrize("days", [0, -3, "a week"])
def test_ledger_retention_days_must_be_a_whole_number_of_days_from_one(project, days):
    project.add_activation()
    set_top_level(project, ledger_retention_days=days)
    with pytest.raises(ConfigError) as error:
        load_config(project.config_path)
    assert str(error.value).startswith(f"{project.config_path}: ledger_retention_days: ")
    assert ("greater than or equal to 1" if days != "a week" else "valid integer") in str(error.value)


def test_an_activation_cannot_be_named_prune(project):
    project.add_activation(name="prune")
    with pytest.raises(ConfigError, match=r"activations\.prune: the name 'prune' is reserved \(`activation-pipeline ledger prune`\)"):
        load_config(project.config_path)
