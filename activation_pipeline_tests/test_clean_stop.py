"""A sync stopped by SIGTERM (a pod being stopped) or SIGINT (Ctrl-C) mid-push, through the real
Dagster CLI: it stops sending, keeps what the platform confirmed, records the run as
`interrupted`, and the next run sends exactly what was never confirmed."""

from __future__ import annotations

import os
import signal
import time

import pytest
import requests

from activation_pipeline_tests.conftest import expected_items, product, sandbox_stats
from activation_pipeline_tests.test_crash_recovery import cli_materialize, edit_requests

ROWS = [product(i) for i in range(1, 201)]
BATCH = 10


@pytest.mark.parametrize(("signum", "to_group"), [(signal.SIGTERM, False), (signal.SIGINT, True)], ids=["sigterm", "sigint"])
def test_a_stopped_sync_keeps_what_was_confirmed_and_the_next_run_sends_the_rest(project, sandbox, tmp_path, signum, to_group):
    # SIGTERM goes to the dagster process alone, as Kubernetes stops a pod; SIGINT to the whole
    # process group, as Ctrl-C in a terminal does
    project.add_activation(mode="full_then_delta", operation="mirror", max_items_per_request=BATCH, concurrency=2)
    project.write_products(ROWS)
    project.materialize("sync_products", run_config={"dry_run": True})  # builds sources and segment
    project.fault(kind="slow", seconds=0.3, count=1000, path_contains="items/edit")
    requests.post(f"{sandbox.url}/_sandbox/stats/reset", timeout=5)

    process = cli_materialize(project, tmp_path)
    deadline = time.monotonic() + 120
    while edit_requests(sandbox) < 4 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    if to_group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode != 0, output[-3000:]

    held = set(project.catalog())
    assert 0 < len(held) < len(ROWS), "the stop must land mid-sync"
    # nothing was sent after the stop beyond what the platform answered: it holds what it received
    assert sandbox_stats(sandbox)["items_received"] == len(held)
    ((status, succeeded, error),) = project.sql("SELECT status, succeeded, error FROM activation_state.sync_runs")
    assert status == "interrupted"
    assert succeeded == len(held)
    assert (
        f"stopped by SIGINT after {len(held)} of {len(ROWS)} records were confirmed" in error
        or f"stopped by SIGTERM after {len(held)} of {len(ROWS)} records were confirmed" in error
    )
    assert "the rest is sent next run" in error
    assert project.snapshot_keys() == held  # the snapshot holds exactly what the platform confirmed
    assert project.sql("SELECT count(*) FROM activation_state.sync_records WHERE status = 'confirmed'") == [(len(held),)]

    requests.delete(f"{sandbox.url}/_sandbox/faults", timeout=5)
    requests.post(f"{sandbox.url}/_sandbox/stats/reset", timeout=5)
    rerun = cli_materialize(project, tmp_path)
    output = rerun.communicate(timeout=180)[0].decode()
    assert rerun.returncode == 0, output[-3000:]
    assert sandbox_stats(sandbox)["items_received"] == len(ROWS) - len(held)  # exactly the remainder, counted by the platform
    assert project.catalog() == expected_items(ROWS)
    assert project.snapshot_keys() == {r["sku"] for r in ROWS}
    statuses = sorted(s for (s,) in project.sql("SELECT status FROM activation_state.sync_runs"))
    assert statuses == ["interrupted", "succeeded"]
