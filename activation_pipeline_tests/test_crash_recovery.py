"""A sync killed mid-run (SIGKILL, through the real Dagster CLI) loses nothing: the rerun
recovers what the platform confirmed, sends only what was unconfirmed, and ends exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import duckdb
import pytest
import requests
from filelock import FileLock

from activation_pipeline.sync import state
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


@pytest.mark.on_both_backends
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


def test_the_push_goes_on_while_another_process_holds_the_warehouse_and_a_kill_then_resends_nothing_answered(project, sandbox, tmp_path):
    """Another process holds the warehouse (a long ledger query, another run's diff) while a sync pushes: the
    push goes on, each answer is journaled as it arrives, and a kill before anything was folded loses none of them."""
    rows = [product(i) for i in range(1, 601)]
    project.add_activation(mode="full_then_delta", operation="mirror", max_items_per_request=BATCH, concurrency=2)
    project.write_products(rows)
    project.materialize("sync_products", run_config={"dry_run": True})
    project.fault(kind="slow", seconds=0.15, count=1000, path_contains="items/edit")  # a push of several seconds: folds fall inside it
    journal = state.Journal(project.warehouse.parent / "activation_state" / "journal", "sync_products")

    process = cli_materialize(project, tmp_path)
    deadline = time.monotonic() + 120
    while edit_requests(sandbox) < 1 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    with FileLock(f"{project.warehouse}.lock", timeout=120):  # from now on no fold of the run can commit
        while len(journal.read()) < len(rows) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        answered = len(journal.read())
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert answered == len(rows), "the push must go on, journaling every answer, while another process holds the warehouse"
    assert project.catalog() == expected_items(rows)

    requests.delete(f"{sandbox.url}/_sandbox/faults", timeout=5)
    requests.post(f"{sandbox.url}/_sandbox/stats/reset", timeout=5)
    rerun = cli_materialize(project, tmp_path)
    output = rerun.communicate(timeout=180)[0].decode()
    assert rerun.returncode == 0, output[-3000:]
    assert requests.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()["batch"]["items_received"] == 0  # nothing resent
    assert project.snapshot_keys() == {r["sku"] for r in rows}
    confirmed = project.sql("SELECT key, count(*) FROM activation_state.sync_records WHERE status = 'confirmed' GROUP BY key")
    assert len(confirmed) == len(rows) and all(n == 1 for _, n in confirmed)


def test_the_journals_of_two_scopes_whose_names_extend_each_other_stay_apart(tmp_path):
    """A scope value may hold dots: the journal of scope ``de`` rotated aside is never taken for the live journal
    of scope ``de.1`` (recovering one would fold, then delete, the other's confirmations)."""
    de, de_1 = state.Journal(tmp_path, "act", "de"), state.Journal(tmp_path, "act", "de.1")
    first = state.LedgerEntry(1, "k-de", "added", "upsert", "confirmed", "", 1, 11, None, "k-de")
    other = state.LedgerEntry(1, "k-de.1", "added", "upsert", "confirmed", "", 1, 22, None, "k-de.1")
    de.append("run", [first])
    de.rotate()  # a fold in progress
    de_1.append("run", [other])
    assert de.read() == [("run", first)]
    assert de_1.read() == [("run", other)]
    de.clear()
    assert de_1.read() == [("run", other)]


def test_a_journal_holds_a_line_per_request_reads_lines_left_by_older_versions_and_drops_a_torn_last_line(tmp_path):
    """A line per answered request (its entries numbered from the first); a line in the older one-entry format, which a
    run killed before an upgrade left, still reads; a line torn by a kill mid-write is dropped whole (none of it was kept)."""
    journal = state.Journal(tmp_path, "act")
    older = ["run-0", 7, "k-old", "added", "upsert", "confirmed", "", 1, 5, None, "k-old"]
    journal.path.write_text(json.dumps(older) + "\n")
    rows = [("k-1", "added", "upsert", "confirmed", "", 1, 11, '{"a": 1}', "k-1"), ("k-2", "added", "upsert", "rejected", "bad", 2, 22, None, "k-2")]
    journal.write("run-1", 8, len(rows), json.dumps(rows))
    with open(journal.path, "a") as handle:
        handle.write('["run-1", 10, [["k-3", "added"')  # the kill came mid-write
    assert journal.read() == [
        ("run-0", state.LedgerEntry(7, "k-old", "added", "upsert", "confirmed", "", 1, 5, None, "k-old")),
        ("run-1", state.LedgerEntry(8, *rows[0])),
        ("run-1", state.LedgerEntry(9, *rows[1])),
    ]
    assert len(journal.path.read_text().splitlines()) == 3  # one line per request, whatever its size


@pytest.mark.parametrize("little_memory, tries", [("64MB", 1), ("4MB", 2)])
def test_a_fold_in_little_memory_lands_whole_and_gives_the_session_its_settings_back(tmp_path, monkeypatch, little_memory, tries):
    """The push folds its answers in little memory (one thread, a small limit, the rest spilled to disk), so a fold
    does not set the peak of a first sync. A fold that needs more than that limit is rolled back and run again
    with the session's own limit: it lands whole, once. Afterwards the session has its own settings again."""

    from activation_pipeline.warehouse import duckdb_backend

    monkeypatch.setattr(duckdb_backend, "LITTLE_MEMORY", little_memory)
    warehouse = duckdb_backend.DuckDBBackend(tmp_path / "warehouse.duckdb", settings={"memory_limit": "1GB", "threads": 2})
    answers = 200_000
    entries = [
        (i + 1, f"k-{i:07d}", "added", "upsert", "confirmed", "", 1, i * 7919, json.dumps({"name": f"product {i} " * 4}), f"k-{i:07d}")
        for i in range(answers)
    ]
    with warehouse.session() as conn:
        state.ensure_state(conn, "act")
        state.start_run(conn, {"run_id": "run-1", "activation": "act", "status": "running", "started_at": state.now()})
    limits: list[tuple] = []

    def reads_as(limit: str) -> str:  # how DuckDB shows a memory limit (in MiB/GiB, rounded)
        with duckdb.connect(config={"memory_limit": limit}) as other:
            return other.sql("SELECT current_setting('memory_limit')").fetchall()[0][0]

    def fold() -> int:
        limits.append(conn.fetch_one("SELECT current_setting('memory_limit'), current_setting('threads')"))
        return state.fold(conn, "act", "run-1", None, entries)

    with warehouse.session() as conn:
        assert conn.in_little_memory(fold) == answers
        assert len(limits) == tries  # a second try only past the limit
        assert limits[0] == (reads_as(little_memory), 1)  # the first in little memory, on one thread
        assert conn.fetch_one("SELECT current_setting('memory_limit'), current_setting('threads')") == (reads_as("1GB"), 2)
    with warehouse.session(read_only=True) as conn:
        assert conn.fetch_one(f"SELECT count(*), count(DISTINCT key) FROM {state.snapshot_table('act')}") == (answers, answers)
        assert conn.fetch_one("SELECT count(*), max(seq) FROM activation_state.sync_records WHERE run_id = 'run-1'") == (answers, answers)
        assert conn.fetch_one("SELECT folded_seq FROM activation_state.sync_runs WHERE run_id = 'run-1'") == (answers,)
