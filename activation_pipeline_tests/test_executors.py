"""ACTIVATION_EXECUTOR chooses the executor every job runs with, no code change: Dagster's in-process and
multiprocess executors through `dagster job execute`, and Celery with Debian's redis-server as the
broker and two `dagster-celery` workers, each started by the test in an empty folder of its own (two
machines sharing only PostgreSQL and Redis), running the steps of a job that syncs four activations."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import pytest
import redis
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, validate_run_config

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


@pytest.mark.parametrize("executor", ["in_process", "multiprocess", ""])
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
    else:  # one process per step, none of them the run's (unset: multiprocess too)
        assert all(len(p) == 1 for p in steps.values()) and len(pids) == len(STEPS) and run_pid not in pids, (run_pid, steps)


def test_the_default_executor_resolves_to_a_preloading_forkserver_and_to_spawn_for_a_long_tmpdir_or_when_a_run_asks(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.add_activation()
    monkeypatch.delenv("ACTIVATION_EXECUTOR", raising=False)
    job = build_definitions(load_config(project.config_path), warehouse=project.warehouse).resolve_job_def("sync_sync_products")
    (default,) = validate_run_config(job, {})["execution"].values()
    assert default["start_method"] == {"forkserver": {"preload_modules": ["activation_pipeline.assembly"]}}
    deep = tmp_path.joinpath(*["a_temporary_folder_deep_in_a_path"] * 3)  # its forkserver socket would not fit
    deep.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(deep))
    tempfile.tempdir = None  # tempfile reads TMPDIR again
    try:
        (long_tmp,) = validate_run_config(job, {})["execution"].values()
    finally:
        monkeypatch.undo()
        tempfile.tempdir = None
    assert long_tmp["start_method"] == {"spawn": {}}
    asked = {"execution": {"config": {"start_method": {"spawn": {}}, "max_concurrent": 2}}}
    (chosen,) = validate_run_config(job, asked)["execution"].values()
    assert chosen["start_method"] == {"spawn": {}} and chosen["max_concurrent"] == 2


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
MACHINES = ("machine-1", "machine-2")
CRM_URL_ENV = "CRM_DATABASE_URL"
EVERY_ROW = [product(i, brand="Gift" if i % 4 == 0 else "Acme") for i in range(40)]
ACTIVATIONS = {  # four activations of the one segment, each to a Batch catalog of its own: what each must hold
    "storefront": ({"object": "storefront"}, expected_items(EVERY_ROW)),
    "marketplace": ({"object": "marketplace"}, expected_items(EVERY_ROW)),
    "names": ({"object": "product_names", "mapping": {"name": "name"}, "custom_attributes": []}, {r["sku"]: {"name": r["name"]} for r in EVERY_ROW}),
    "prices": (
        {"object": "product_prices", "mapping": {"price": "price"}, "custom_attributes": []},
        {r["sku"]: {"price": float(r["price"])} for r in EVERY_ROW},
    ),
}


def crm_database(postgres_server: PostgresServer) -> str:
    """A database holding crm.products, the source every machine reads; its URL, without the password (PGPASSWORD)."""
    name = postgres_server.create_database(f"crm_{os.getpid()}_{time.monotonic_ns()}")
    with psycopg.connect(postgres_server.url(name), autocommit=True) as conn:
        conn.execute("CREATE SCHEMA crm")
        conn.execute("CREATE TABLE crm.products (sku text PRIMARY KEY, name text, price numeric(10, 2), brand text)")
        with conn.cursor().copy("COPY crm.products (sku, name, price, brand) FROM STDIN") as copy:
            for row in EVERY_ROW:
                copy.write_row((row["sku"], row["name"], row["price"], row["brand"]))
    return f"postgresql://{postgres_server.user}@{postgres_server.host}:{postgres_server.port}/{name}"


def machine(folder: Path, project: Project, env: dict[str, str]) -> dict[str, str]:
    """An empty folder made into a "machine": the deployed config (a copy), its own Dagster home (the
    shipped dagster.yaml), plan-file folder, HOME and TMPDIR; the environment of a worker started there."""
    folder.mkdir()
    (folder / "worker.yaml").write_text(WORKER_CONFIG)
    shutil.copy(project.config_path, folder / "activations.yaml")
    for local in ("state", "home", "tmp"):
        (folder / local).mkdir()
    return {
        **env,
        "ACTIVATION_CONFIG": str(folder / "activations.yaml"),
        "DAGSTER_HOME": str(shipped_home(folder)),
        "ACTIVATION_STATE_DIR": str(folder / "state"),
        "HOME": str(folder / "home"),
        "TMPDIR": str(folder / "tmp"),
    }


def celery_worker(name: str, folder: Path, env: dict[str, str]) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """`dagster-celery worker start` in ``folder``, one step at a time, its definitions loaded as it starts
    (``-i``: its first step does not pay the import, seconds on a busy machine).

    dagster-celery already passes --prefetch-multiplier=1, but a worker still reserves one more task while it
    runs one (Celery acknowledges a task as it starts it), so it may hold a step that an idle worker could run;
    --disable-prefetch (Celery 5.6+, Redis brokers only) makes it fetch a task only when its one process is free.
    Of any two steps queued at once, the second then goes to the other worker."""
    command = [dagster_cli("dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", "worker.yaml", "-n", name]
    command += ["-i", "activation_pipeline.definitions", "--", "--concurrency=1", "--disable-prefetch"]
    return background_process(command, env, folder / "worker.log", cwd=folder)


@dataclass(frozen=True)
class StepOnWorker:
    worker: str  # the Celery node's name without its host: machine-1
    pids: frozenset[int]  # the processes its events came from
    submitted: float  # when the run handed it to the broker
    start: float
    end: float


def steps_on_workers(instance: DagsterInstance, run_id: str) -> dict[str, StepOnWorker]:
    """Each step of the run: when it was queued, the worker that reported running it, and when, from the run's event log."""
    events = instance.all_logs(run_id, of_type={DagsterEventType.ENGINE_EVENT, DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS})
    worker: dict[str, str] = {}
    submitted: dict[str, float] = {}
    pids: dict[str, set[int]] = {}
    times: dict[tuple[str, DagsterEventType], float] = {}
    for entry in events:
        event, step = entry.dagster_event, entry.step_key
        assert event is not None
        if step is None:
            continue
        if event.event_type == DagsterEventType.ENGINE_EVENT:
            if entry.message.startswith("Submitting celery task"):
                submitted[step] = entry.timestamp
            elif "in celery worker" in entry.message:  # dagster-celery's task reports its node, e.g. machine-1@host
                worker[step] = str(event.engine_event_data.metadata["Celery worker"].value).split("@")[0]
            continue
        pids.setdefault(step, set()).add(event.pid)  # type: ignore[arg-type]
        times[step, event.event_type] = entry.timestamp
    assert set(worker) == set(pids), (worker, pids)  # every step went through a worker
    return {
        step: StepOnWorker(
            worker[step], frozenset(pids[step]), submitted[step], times[step, DagsterEventType.STEP_START], times[step, DagsterEventType.STEP_SUCCESS]
        )
        for step in pids
    }


@pytest.mark.parametrize("warehouse_kind", ["postgres"], indirect=True)
def test_two_celery_workers_in_empty_folders_sync_several_activations_at_once_on_postgres(
    project: Project, tmp_path: Path, redis_url: str, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers, each started in an empty folder of its own (two machines), share only PostgreSQL (the
    Dagster instance, the warehouse and the source table) and Redis; `dagster job execute sync_everything`
    in the project's folder syncs four activations to four Batch catalogs through them."""
    project.sources = {"products": {"database": {"url_env": CRM_URL_ENV, "table": "crm.products"}}}  # no file to share
    for name, (fields, _) in ACTIVATIONS.items():
        project.add_activation(name, **fields)
    instance_env = postgres_server.instance_env(postgres_server.create_database(f"dagster_celery_{os.getpid()}"))
    env = {
        **project.env(**instance_env),  # PGPASSWORD (for the warehouse and the source) is set by the backend fixture
        CRM_URL_ENV: crm_database(postgres_server),
        "ACTIVATION_EXECUTOR": "celery",
        "ACTIVATION_CELERY_BROKER": redis_url,
        "PATH": f"{Path(dagster_cli('celery')).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # dagster-celery runs `celery`
    }
    run_env = {**env, "DAGSTER_HOME": str(shipped_home(tmp_path))}
    for name, value in {**instance_env, "DAGSTER_HOME": run_env["DAGSTER_HOME"]}.items():
        monkeypatch.setenv(name, value)  # the test reads the run from the same instance
    machines = {name: machine(tmp_path / name, project, env) for name in MACHINES}

    with contextlib.ExitStack() as stack:
        workers = {name: stack.enter_context(celery_worker(name, tmp_path / name, machine_env)) for name, machine_env in machines.items()}
        for name, worker in workers.items():  # both start at once; each is waited for
            wait_until_ready(worker, tmp_path / name / "worker.log")
        executed = execute_job(project, run_env, job="sync_everything")
        pids_of = {name: {p.pid for p in psutil.Process(w.pid).children(recursive=True)} for name, w in workers.items()}
    logs = "".join((tmp_path / name / "worker.log").read_text()[-2000:] for name in MACHINES)
    assert executed.returncode == 0, executed.stdout[-3000:] + executed.stderr[-3000:] + logs

    for name, (fields, expected) in ACTIVATIONS.items():
        assert project.catalog(fields["object"]) == expected, name
    ledger = project.sql("SELECT activation, status, succeeded, failed, run_id FROM activation_state.sync_runs ORDER BY activation")
    with DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        assert run.status == DagsterRunStatus.SUCCESS
        run_pid = instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_START)[0].dagster_event.pid  # type: ignore[union-attr]
        steps = steps_on_workers(instance, run.run_id)
        handed_over = instance.all_logs(run.run_id, of_type={DagsterEventType.HANDLED_OUTPUT, DagsterEventType.LOADED_INPUT})
    assert ledger == [(name, "succeeded", len(expected), 0, run.run_id) for name, (_, expected) in sorted(ACTIVATIONS.items())]
    # no step passed another a file (Dagster's IO manager would put it in the run's DAGSTER_HOME): steps meet in Postgres only.
    # (The workers' one write outside their folders is the steps' compute logs, under the run's DAGSTER_HOME, a path the
    # run's instance sends with each task: on real machines each worker keeps its own, unless compute_logs is shared storage.)
    assert not handed_over, handed_over
    syncs = {step: ran for step, ran in steps.items() if step.startswith("activations__")}
    assert set(syncs) == {f"activations__{name}" for name in ACTIVATIONS}
    for step, ran in steps.items():  # in a process of the worker that reported it, never in the run's
        assert ran.pids <= pids_of[ran.worker] and run_pid not in ran.pids, (step, ran, pids_of, run_pid)
    # the four syncs were queued at once (the segment's blocking checks done, all were handed to the broker
    # before the first finished), and both machines took some: each worker holds one task at a time
    # (celery_worker), so the second of four queued tasks cannot wait behind the first on one machine
    assert max(ran.submitted for ran in syncs.values()) < min(ran.end for ran in syncs.values()), syncs
    assert {ran.worker for ran in syncs.values()} == set(MACHINES), syncs
