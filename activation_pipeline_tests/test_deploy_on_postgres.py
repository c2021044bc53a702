"""The team deployment's Dagster instance, as shipped in deploy/dagster.yaml.example, against a real
PostgreSQL server: copied verbatim into a DAGSTER_HOME with only its environment variables set, it
loads (`dagster instance info`), queues runs that `dagster-daemon run` starts, and its `duckdb` pool
keeps warehouse writers one at a time across concurrent runs."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from activation_pipeline_tests.conftest import Project, background_process, dagster_cli, expected_items, product
from activation_pipeline_tests.postgres_server import PostgresServer, shipped_home

POOLED_STEP_PREFIXES = ("sources__", "segments__")  # the assets declared with pool="duckdb"
FINISHED = (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)


def two_activations(project: Project) -> None:
    """Two activations to two Batch catalogs, each segment reading two sources: every run has two
    independent warehouse writers that the multiprocess executor would otherwise run side by side."""
    project.tables["extra"] = project.tables["products"]
    project.sources["extra"] = {"path": "extra.csv"}
    union = "SELECT sku, name, price, brand FROM sources.products UNION ALL SELECT sku, name, price, brand FROM sources.extra"
    project.segments["catalog"]["sql"] = union
    project.segments["gift_catalog"] = {"primary_key": "sku", "sql": f"SELECT * FROM ({union}) WHERE brand = 'Gift'"}
    project.write("products", [product(i) for i in range(6)])
    project.write("extra", [product(i, brand="Gift") for i in range(100, 104)])
    project.add_activation("products")
    project.add_activation("gifts", segment="gift_catalog", object="gifts")


def wait_for_runs(instance: DagsterInstance, count: int, seconds: float, log: Path) -> list[Any]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        runs = instance.get_runs(RunsFilter(statuses=list(FINISHED)))
        if len(runs) >= count:
            return runs
        time.sleep(1)
    raise AssertionError(f"{count} runs did not finish in {seconds:.0f}s; daemon log:\n{log.read_text()[-3000:]}")


def pooled_step_intervals(instance: DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """(start, end) of each pooled step of a run, from its event log."""
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for entry in instance.all_logs(run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}):
        if entry.step_key and entry.step_key.startswith(POOLED_STEP_PREFIXES):
            (starts if entry.dagster_event_type == DagsterEventType.STEP_START else ends)[entry.step_key] = entry.timestamp
    return {key: (starts[key], ends[key]) for key in starts}


@pytest.fixture
def postgres_database(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    return postgres_server.create_database(f"dagster_{request.node.name[:40].lower()}")


def test_the_shipped_instance_loads_on_postgres(project: Project, tmp_path: Path, postgres_server: PostgresServer, postgres_database: str) -> None:
    project.add_activation()
    env = project.env(DAGSTER_HOME=str(shipped_home(tmp_path)), **postgres_server.instance_env(postgres_database))
    info = subprocess.run([dagster_cli("dagster"), "instance", "info"], env=env, capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stdout + info.stderr
    for storage in ("PostgresRunStorage", "PostgresEventLogStorage", "PostgresScheduleStorage"):
        assert storage in info.stdout, info.stdout
    assert postgres_server.password not in info.stdout + info.stderr  # the password comes from the env, and stays there


def test_queued_runs_sync_through_the_daemon_and_take_turns_in_the_duckdb_pool(
    project: Project, tmp_path: Path, postgres_server: PostgresServer, postgres_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    two_activations(project)
    home = shipped_home(tmp_path)
    env = project.env(DAGSTER_HOME=str(home), **postgres_server.instance_env(postgres_database))
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the test reads the same instance the daemon writes
    for job in ("sync_products", "sync_gifts"):  # both queued before the daemon starts: it starts them together
        launched = subprocess.run(
            [dagster_cli("dagster"), "job", "launch", "-m", "activation_pipeline.definitions", "-j", job],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert launched.returncode == 0, launched.stdout + launched.stderr
    with DagsterInstance.get() as instance:
        assert [run.status for run in instance.get_runs()] == [DagsterRunStatus.QUEUED] * 2  # nothing runs without the daemon
        log = tmp_path / "daemon.log"
        with background_process([dagster_cli("dagster-daemon"), "run", "-m", "activation_pipeline.definitions"], env, log, cwd=tmp_path):
            runs = wait_for_runs(instance, 2, seconds=240, log=log)
        assert [run.status for run in runs] == [DagsterRunStatus.SUCCESS] * 2, log.read_text()[-3000:]

        assert project.catalog() == expected_items([product(i) for i in range(6)] + [product(i, brand="Gift") for i in range(100, 104)])
        assert project.catalog("gifts") == expected_items([product(i, brand="Gift") for i in range(100, 104)])

        by_run = {run.run_id: (run.job_name, pooled_step_intervals(instance, run.run_id)) for run in runs}
        steps = [(job, key, start, end) for job, intervals in by_run.values() for key, (start, end) in intervals.items()]
        assert len(steps) == 6, steps  # two sources and a segment in each run
        stats = [instance.get_run_stats(run.run_id) for run in runs]
    # the runs did overlap (each started before the other ended), so the pool had something to hold apart
    assert stats[0].start_time < stats[1].end_time and stats[1].start_time < stats[0].end_time, stats
    ordered = sorted(steps, key=lambda step: step[2])
    for before, after in zip(ordered, ordered[1:], strict=False):
        assert before[3] <= after[2], f"{before[:2]} was still writing when {after[:2]} started"
