"""A sync killed mid-run (SIGKILL, through the real Dagster CLI) loses nothing: the rerun
recovers what the platform confirmed, sends only what was unconfirmed, and ends exact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import requests

from activation_pipeline_tests.conftest import expected_items, product

ROWS = [product(i) for i in range(1, 201)]
BATCH = 10


def edit_requests(sandbox) -> int:
    stats = requests.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()
    return sum(n for path, n in stats["batch"]["requests"].items() if path.endswith("items/edit"))


def cli_materialize(project, tmp_path) -> subprocess.Popen:
    env = {
        **os.environ,
        "ACTIVATION_CONFIG": str(project.config_path),
        "ACTIVATION_WAREHOUSE": str(project.warehouse),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "activation_pipeline.definitions", "--select", "activations/sync_products"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_a_sync_killed_after_some_batches_resumes_exactly(project, sandbox, tmp_path):
    project.add_activation(mode="full_then_delta", operation="mirror", max_items_per_request=BATCH, concurrency=2)
    project.write_products(ROWS)
    project.materialize("sync_products", run_config={"dry_run": True})  # builds sources and segment
    project.fault(kind="slow", seconds=0.15, count=1000, path_contains="items/edit")

    process = cli_materialize(project, tmp_path)
    deadline = time.monotonic() + 120
    while edit_requests(sandbox) < 6 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    stored_at_kill = set(project.catalog())
    assert 0 < len(stored_at_kill) < len(ROWS), "the kill must land mid-sync"

    requests.delete(f"{sandbox.url}/_sandbox/faults", timeout=5)
    requests.post(f"{sandbox.url}/_sandbox/stats/reset", timeout=5)
    rerun = cli_materialize(project, tmp_path)
    output = rerun.communicate(timeout=180)[0].decode()
    assert rerun.returncode == 0, output[-3000:]

    assert project.catalog() == expected_items(ROWS)
    assert project.snapshot_keys() == {r["sku"] for r in ROWS}
    # the rerun sent the unconfirmed remainder only: at most the batches in flight at the kill again
    resent = requests.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()["batch"]["items_received"]
    assert resent <= len(ROWS) - len(stored_at_kill) + 2 * 2 * BATCH
    # every record confirmed exactly once across both runs, and the killed run is marked
    confirmed = project.sql("SELECT key, count(*) FROM activation_state.sync_records WHERE status = 'confirmed' GROUP BY key")
    assert len(confirmed) == len(ROWS) and all(n == 1 for _, n in confirmed)
    statuses = sorted(s for (s,) in project.sql("SELECT status FROM activation_state.sync_runs"))
    assert statuses == ["interrupted", "succeeded"]
