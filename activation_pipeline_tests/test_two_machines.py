"""Two "machines" — two Dagster CLI processes, each in its own empty folder with its own state folder, temporary
folder and Dagster instance — share nothing but a PostgreSQL warehouse. They sync overlapping activations at
once; the second run of an activation one of them is already running is refused; one is SIGKILLed mid-push and
its folder deleted; a run of that activation on the other then recovers what the platform had confirmed from the
warehouse alone, sends only the rest, and ends exact (issue #12, items 2 and 5)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from activation_pipeline_tests.conftest import Project, expected_items, product

ROWS = [product(i) for i in range(1, 2001)]
BATCH, CONCURRENCY = 10, 2


class Machine:
    """A process environment that shares only the warehouse (and the platform) with the others."""

    def __init__(self, project: Project, root: Path):
        self.root = root
        for folder in ("state", "tmp", "dagster_home"):
            (root / folder).mkdir(parents=True)
        self.env = project.env(
            ACTIVATION_STATE_DIR=str(root / "state"), TMPDIR=str(root / "tmp"), DAGSTER_HOME=str(root / "dagster_home"), HOME=str(root)
        )

    def materialize(self, activation: str) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "activation_pipeline.definitions"]
        command += ["--select", f"activations/{activation}"]
        return subprocess.Popen(command, env=self.env, cwd=self.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def finish(process: subprocess.Popen[bytes], seconds: float = 180) -> tuple[int, str]:
    output = process.communicate(timeout=seconds)[0].decode()
    return process.returncode, output


@pytest.mark.parametrize("warehouse_kind", ["postgres"], indirect=True)
def test_a_run_killed_on_one_machine_is_recovered_on_another_that_shares_only_the_warehouse(project: Project, tmp_path: Path) -> None:
    for name in ("sync_a", "sync_b"):
        project.add_activation(
            name, object=f"catalog_{name}", mode="full_then_delta", operation="mirror", max_items_per_request=BATCH, concurrency=CONCURRENCY
        )
    project.write_products(ROWS)
    project.materialize("sync_a", run_config={"dry_run": True})  # sources and segment, into the warehouse both machines share
    project.fault(kind="slow", seconds=0.2, count=100_000, path_contains="items/edit")  # pushes of 20 s: a CLI starts meanwhile
    one, other = Machine(project, tmp_path / "machine-1"), Machine(project, tmp_path / "machine-2")

    killed, alongside = one.materialize("sync_a"), other.materialize("sync_b")  # overlapping activations, at once
    deadline = time.monotonic() + 120
    while len(project.catalog("catalog_sync_a")) < 60 and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.05)
    assert killed.poll() is None, finish(killed)[1][-3000:]

    code, output = finish(other.materialize("sync_a"))  # the same activation, on the other machine, while it runs on the first
    assert code != 0 and "another run of this activation is in progress; this one did nothing" in output, output[-3000:]
    running = project.sql("SELECT status FROM activation_state.sync_runs WHERE activation = 'sync_a'")
    assert running == [("running",)], "the refused run must leave no trace in the ledger"

    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    shutil.rmtree(one.root)  # the machine is gone, with everything it kept locally
    held_at_kill = set(project.catalog("catalog_sync_a"))
    assert 0 < len(held_at_kill) < len(ROWS), "the kill must land mid-push"

    code, output = finish(alongside)  # the other machine's own sync was not disturbed
    assert code == 0, output[-3000:]
    assert project.catalog("catalog_sync_b") == expected_items(ROWS)

    project.clear_faults()
    project.reset_stats()
    code, output = finish(other.materialize("sync_a"))
    assert code == 0, output[-3000:]
    assert project.catalog("catalog_sync_a") == expected_items(ROWS)
    assert project.snapshot_keys("sync_a") == {r["sku"] for r in ROWS}
    # what the first machine had confirmed came back from the warehouse: only the rest, and the requests
    # in flight at the kill, were sent again
    resent = project.stats()["items_received"]
    assert resent <= len(ROWS) - len(held_at_kill) + 2 * CONCURRENCY * BATCH, (resent, len(held_at_kill))
    ledger = project.sql(
        "SELECT r.key, s.status FROM activation_state.sync_records r JOIN activation_state.sync_runs s USING (run_id, activation) "
        "WHERE r.activation = 'sync_a' AND r.status = 'confirmed'"
    )
    confirmed_by_killed = {key for key, run_status in ledger if run_status == "interrupted"}
    assert confirmed_by_killed and confirmed_by_killed <= held_at_kill, "no record is confirmed that the platform lacked"
    assert sorted(key for key, _ in ledger) == sorted(r["sku"] for r in ROWS), "every record confirmed exactly once over both runs"
    statuses = project.sql("SELECT status FROM activation_state.sync_runs WHERE activation = 'sync_a'")
    assert sorted(s for (s,) in statuses) == ["interrupted", "succeeded"]
    assert project.sql("SELECT count(*) FROM activation_state.sync_journal") == [(0,)], "recovered and folded journals are emptied"


@pytest.mark.parametrize("warehouse_kind", ["postgres"], indirect=True)
def test_a_run_whose_lock_connection_is_closed_stops_and_the_next_run_loses_nothing(project: Project, tmp_path: Path) -> None:
    """The server ends the connection that holds a run's lock (an administrator's pg_terminate_backend, a pooler, a
    failover): the lock is gone, so another run could start; the run must stop before it folds beside it."""
    project.add_activation("sync_a", mode="full_then_delta", operation="mirror", max_items_per_request=BATCH, concurrency=CONCURRENCY)
    project.write_products(ROWS[:600])
    project.materialize("sync_a", run_config={"dry_run": True})
    project.fault(kind="slow", seconds=0.2, count=100_000, path_contains="items/edit")
    machine = Machine(project, tmp_path / "machine")
    running = machine.materialize("sync_a")
    deadline = time.monotonic() + 120
    while len(project.catalog()) < 60 and time.monotonic() < deadline and running.poll() is None:
        time.sleep(0.05)
    # the only session-level advisory lock a run holds is its run lock (DDL takes transaction-level ones)
    ended = project.sql(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    assert ended == [(True,)], ended
    code, output = finish(running)
    assert code != 0 and "the warehouse connection holding this run's lock was closed" in output, output[-3000:]
    held_after = set(project.catalog())
    assert len(held_after) < 600, "the run must stop mid-push"

    project.clear_faults()
    project.reset_stats()
    code, output = finish(machine.materialize("sync_a"))
    assert code == 0, output[-3000:]
    assert project.catalog() == expected_items(ROWS[:600])
    ledger = project.sql("SELECT key FROM activation_state.sync_records WHERE activation = 'sync_a' AND status = 'confirmed'")
    assert sorted(k for (k,) in ledger) == sorted(r["sku"] for r in ROWS[:600]), "every record confirmed exactly once over both runs"
    assert project.stats()["items_received"] <= 600 - len(held_after) + 4 * CONCURRENCY * BATCH
    assert project.sql("SELECT count(*) FROM activation_state.sync_journal") == [(0,)]
