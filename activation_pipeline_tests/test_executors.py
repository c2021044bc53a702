"""ACTIVATION_EXECUTOR chooses the executor every job runs with, no code change: Dagster's in-process and
multiprocess executors through `dagster job execute`, and Celery with Debian's redis-server as the
broker and a `dagster-celery` worker, started by the test in an empty folder, running the steps."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus

from activation_pipeline.config import load_config
from activation_pipeline.definitions import build_definitions
from activation_pipeline.executors import ExecutorChoiceError
from activation_pipeline_tests.conftest import Project, background_process, dagster_cli, expected_items, free_port, product
from activation_pipeline_tests.postgres_server import PostgresServer, missing_in_ci_or_skip, shipped_home

ROWS = [product(i) for i in range(12)]
STEPS = {"sources__products", "segments__catalog", "catalog_checks", "activations__sync_products"}  # the job sync_sync_products


def execute_job(project: Project, env: dict[str, str], job: str = "sync_sync_products") -> subprocess.CompletedProcess[str]:
    command = [dagster_cli("dagster"), "job", "execute", "-m", "activation_pipeline.definitions", "-j", job]
    return subprocess.run(command, env=env, cwd=project.root, capture_output=True, text=True, timeout=300)


def step_pids(instance: DagsterInstance) -> tuple[int, dict[str, set[int]]]:
    """The only run's own process, and the processes that ran each of its steps, from its event log."""
    (run,) = instance.get_runs()
    assert run.status == DagsterRunStatus.SUCCESS
    start = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_START)[0]
    steps: dict[str, set[int]] = {}
    for entry in instance.all_logs(run.run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS}):
        assert entry.dagster_event is not None and entry.step_key is not None
        steps.setdefault(entry.step_key, set()).add(entry.dagster_event.pid)
    return start.dagster_event.pid, steps  # type: ignore[union-attr]


@pytest.mark.parametrize("executor", ["in_process", "multiprocess"])
def test_the_executor_named_in_the_environment_runs_the_sync(
    executor: str, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.add_activation()
    project.write("products", ROWS)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the test reads the run from the same instance
    executed = execute_job(project, project.env(ACTIVATION_EXECUTOR=executor))
    assert executed.returncode == 0, executed.stdout[-3000:] + executed.stderr[-3000:]
    assert project.catalog() == expected_items(ROWS)
    with DagsterInstance.get() as instance:
        run_pid, steps = step_pids(instance)
    assert set(steps) == STEPS
    pids = set().union(*steps.values())
    if executor == "in_process":
        assert pids == {run_pid}, steps
    else:  # one process per step, none of them the run's
        assert all(len(p) == 1 for p in steps.values()) and len(pids) == len(STEPS) and run_pid not in pids, (run_pid, steps)


def test_an_unknown_or_uninstalled_executor_fails_the_load_with_what_to_do(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.add_activation()
    config = load_config(project.config_path)
    monkeypatch.setenv("ACTIVATION_EXECUTOR", "dask")
    with pytest.raises(ExecutorChoiceError, match="'dask' is not an executor: use one of multiprocess, in_process, celery, k8s"):
        build_definitions(config, warehouse=project.warehouse)
    monkeypatch.setenv("ACTIVATION_EXECUTOR", "celery")
    monkeypatch.delenv("ACTIVATION_CELERY_BROKER", raising=False)
    with pytest.raises(ExecutorChoiceError, match="celery needs ACTIVATION_CELERY_BROKER"):
        build_definitions(config, warehouse=project.warehouse)
    monkeypatch.setenv("ACTIVATION_EXECUTOR", "k8s")
    if importlib.util.find_spec("dagster_k8s") is None:
        with pytest.raises(ExecutorChoiceError, match=r"k8s needs the package dagster_k8s .*pip install 'activation_pipeline\[k8s\]'"):
            build_definitions(config, warehouse=project.warehouse)
    else:
        assert build_definitions(config, warehouse=project.warehouse).executor.name == "k8s"  # type: ignore[union-attr]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        missing_in_ci_or_skip("redis-server")
    port = free_port()
    command = [str(server), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    with background_process(command, {}, tmp_path / "redis.log"):
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, (tmp_path / "redis.log").read_text()
                time.sleep(0.2)
        yield f"redis://127.0.0.1:{port}/0"


def wait_until_ready(worker: subprocess.Popen[bytes], log: Path, seconds: float = 120) -> None:
    """Until the Celery worker logs that it is ready; a worker that exits fails the test with its log."""
    deadline = time.monotonic() + seconds
    while " ready." not in log.read_text():
        assert worker.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)


WORKER_CONFIG = "execution:\n  config:\n    broker: { env: ACTIVATION_CELERY_BROKER }\n    backend: { env: ACTIVATION_CELERY_BROKER }\n"


def test_celery_workers_run_the_sync_steps(
    project: Project, tmp_path: Path, redis_url: str, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.add_activation()
    project.write("products", ROWS)
    home = shipped_home(tmp_path)  # Celery needs an instance every worker reaches: the Postgres one
    env = {
        **project.env(DAGSTER_HOME=str(home), **postgres_server.instance_env(postgres_server.create_database("dagster_celery"))),
        "ACTIVATION_EXECUTOR": "celery",
        "ACTIVATION_CELERY_BROKER": redis_url,
        "PATH": f"{Path(dagster_cli('celery')).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # dagster-celery runs `celery`
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    machine = tmp_path / "worker"  # an empty folder: the worker knows the project only by its env
    machine.mkdir()
    (machine / "worker.yaml").write_text(WORKER_CONFIG)
    worker_command = [dagster_cli("dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", "worker.yaml", "-n", "machine-1"]
    log = tmp_path / "worker.log"
    with background_process([*worker_command, "--", "--concurrency=2"], env, log, cwd=machine) as worker:
        wait_until_ready(worker, log)
        executed = execute_job(project, env)
        worker_pids = {p.pid for p in psutil.Process(worker.pid).children(recursive=True)}
    assert executed.returncode == 0, executed.stdout[-3000:] + executed.stderr[-3000:] + log.read_text()[-3000:]
    assert project.catalog() == expected_items(ROWS)
    with DagsterInstance.get() as instance:
        run_pid, steps = step_pids(instance)
        (run,) = instance.get_runs()
        delegated = [e.message for e in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT) if "celery worker" in e.message]
    assert set(steps) == STEPS
    assert set().union(*steps.values()) <= worker_pids and run_pid not in worker_pids, (run_pid, steps, worker_pids)
    assert len(delegated) == len(STEPS), delegated
