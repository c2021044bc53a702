"""Shared fixtures: a real sandbox on a free 127.0.0.1 port, a temporary project (config,
CSV source, a warehouse) and a Dagster test instance. Nothing is patched: tests drive
real materializations that send real HTTP to the emulator.

The warehouse is a DuckDB file; a test marked ``@pytest.mark.on_both_backends`` runs twice,
on a DuckDB file and on a database of its own on the session's throw-away PostgreSQL cluster
(the ``backend`` fixture, ``project.warehouse`` its path or URL)."""

from __future__ import annotations

import contextlib
import copy
import csv
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests
import yaml
from dagster import AssetKey, DagsterInstance, build_sensor_context, materialize

from activation_pipeline.config import ProjectConfig, load_config
from activation_pipeline.definitions import build_definitions
from activation_pipeline.platforms.base import Record
from activation_pipeline.sandbox import start_sandbox
from activation_pipeline.warehouse import Backend, backend_for, is_postgres
from activation_pipeline_tests.platform_cases import BATCH, CASES, PlatformCase, expected_items, product
from activation_pipeline_tests.postgres_server import PostgresServer, postgres_server  # noqa: F401  (a session fixture, for every test file)

__all__ = [
    "Project",
    "activation_selection",
    "burst",
    "expected_items",
    "point_at_sandbox",
    "product",
    "reset_stats",
    "run_metadata",
    "sandbox_stats",
]


BACKENDS = ("duckdb", "postgres")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "on_both_backends: run the test on a DuckDB warehouse and on a PostgreSQL one")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("on_both_backends") and "warehouse_kind" in metafunc.fixturenames:
        metafunc.parametrize("warehouse_kind", BACKENDS, indirect=True)


@pytest.fixture
def warehouse_kind(request: pytest.FixtureRequest) -> str:
    """``duckdb`` (the default), or each of ``BACKENDS`` for a test marked ``on_both_backends``."""
    return getattr(request, "param", "duckdb")


@pytest.fixture
def backend(warehouse_kind: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Backend:
    """The test's warehouse: ``tmp_path/warehouse.duckdb``, or a new database on the session's PostgreSQL
    cluster, reached as a user would (a URL without password; the password in PGPASSWORD)."""
    if warehouse_kind == "duckdb":
        return backend_for(tmp_path / "warehouse.duckdb")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    database = server.create_database(f"warehouse_{os.getpid()}_{time.monotonic_ns()}")
    monkeypatch.setenv("PGPASSWORD", server.password)
    return backend_for(f"postgresql://{server.user}@{server.host}:{server.port}/{database}")


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = start_sandbox(port=0, state_path=tmp_path_factory.mktemp("sandbox") / "state.sqlite", rate_limit=False)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean_sandbox(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if "sandbox" in request.fixturenames:
        server = request.getfixturevalue("sandbox")
        requests.post(f"{server.url}/_sandbox/reset", timeout=5).raise_for_status()
        monkeypatch.setenv("BATCH_BASE_URL", f"{server.url}/batch/2.11")
    for name in ("BATCH_REST_API_KEY", "BATCH_PROJECT_KEY"):
        monkeypatch.delenv(name, raising=False)


class Project:
    """A throwaway activation project on one platform's emulator: CSV sources → segments → activations.

    Its shape (tables, segments, destination, default activation) and its readers of the
    emulator come from a `PlatformCase` (platform_cases.py); the case's ``views`` are called as
    methods (``project.catalog()`` on Batch), and ``write_<table>(rows)`` writes a source CSV."""

    def __init__(self, root: Path, sandbox: Any, instance: DagsterInstance, case: PlatformCase = BATCH, backend: Backend | None = None):
        self.root, self.sandbox, self.instance, self.case = root, sandbox, instance, case
        self.config_path = root / "activations.yaml"
        self.backend = backend or backend_for(root / "warehouse.duckdb")
        # a DuckDB file's Path (as DuckDB-only tests open it), or a postgresql:// URL
        self.warehouse: Any = self.backend.location if is_postgres(self.backend.location) else Path(self.backend.location)
        self.destination, self.partitions = case.destination, case.partitions
        self.top_level: dict[str, Any] = {}
        self.destination_extra: dict[str, Any] = {}  # more of the destination entry (a base_url, …)
        self.tables = dict(case.tables)
        self.sources = copy.deepcopy(case.sources)
        self.segments = copy.deepcopy(case.segments)
        self.activations: dict[str, dict[str, Any]] = {}
        self.settings: dict[str, Any] = copy.deepcopy(case.destination_entry["settings"])
        self.destination_settings: dict[str, Any] = {}  # merged over settings (timeout_seconds, …)
        for table in case.empty_at_start:
            self.write(table, [])

    # --- arrange -------------------------------------------------------------------
    @property
    def segment_sql(self) -> str:
        return self.segments[self.case.main_segment]["sql"]

    @segment_sql.setter
    def segment_sql(self, sql: str) -> None:
        self.segments[self.case.main_segment]["sql"] = sql

    def write(self, table: str, rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
        with open(self.root / f"{table}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns or self.tables[table])
            writer.writeheader()
            writer.writerows(rows)

    def add_activation(self, name: str | None = None, base: dict[str, Any] | None = None, **overrides: Any) -> str:
        """Add (or replace) an activation: the case's default one, or ``base`` on the case's destination."""
        name = name or self.case.activation_name
        fields = self.case.activation if base is None else {"destination": self.destination, **base}
        self.activations[name] = copy.deepcopy({**fields, **overrides})  # a test may edit it; the case stays
        self.write_config()
        return name

    add = add_activation

    def write_config(self) -> None:
        document: dict[str, Any] = {"partitions": self.partitions} if self.partitions else {}
        document.update(self.top_level)  # more top-level blocks a test sets (deployments, ledger_retention_days, …)
        document.update(
            {
                "sources": self.sources,
                "segments": self.segments,
                "destinations": {
                    self.destination: {
                        **self.case.destination_entry,
                        **self.destination_extra,
                        "settings": {**self.settings, **self.destination_settings},
                    }
                },
                "activations": self.activations,
            }
        )
        self.config_path.write_text(yaml.safe_dump(document, sort_keys=False))

    # --- act -----------------------------------------------------------------------
    def materialize(
        self, activation: str | None = None, run_config: dict[str, Any] | None = None, raise_on_error: bool = True, partition: str | None = None
    ):
        """The activation with its segment and the segment's sources, as Materialize in the UI does."""
        activation = activation or self.case.activation_name
        project = load_config(self.config_path)
        defs = build_definitions(project, warehouse=self.warehouse)
        selection = activation_selection(project, activation)
        config = {"ops": {f"activations__{activation}": {"config": run_config}}} if run_config else None
        assets = list(defs.assets or []) + list(defs.asset_checks or [])
        return materialize(
            assets,
            selection=selection,
            resources=defs.resources,
            run_config=config,
            instance=self.instance,
            partition_key=partition,
            raise_on_error=raise_on_error,
        )

    def sync(
        self, activation: str | None = None, run_config: dict[str, Any] | None = None, partition: str | None = None, raise_on_error: bool = True
    ) -> Any:
        """Materialize; the activation's metadata if the run succeeded, else the run's result."""
        activation = activation or self.case.activation_name
        result = self.materialize(activation, run_config=run_config, partition=partition, raise_on_error=raise_on_error)
        return run_metadata(result, activation) if result.success else result

    def run(self, rows: list[dict[str, Any]], activation: str | None = None, columns: list[str] | None = None) -> dict[str, Any]:
        """Write ``rows`` as the main table, materialize, and return the activation's metadata."""
        self.write(self.case.main_table, rows, columns)
        activation = activation or self.case.activation_name
        return run_metadata(self.materialize(activation), activation)

    # --- the emulator's side ---------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        case = self.__dict__.get("case")
        if case is not None and name in case.views:
            return functools.partial(case.views[name], self)
        if case is not None and name.startswith("write_") and name[len("write_") :] in self.__dict__.get("tables", {}):
            return functools.partial(self.write, name[len("write_") :])
        raise AttributeError(f"{type(self).__name__} on {case.platform if case else '?'} has no attribute {name!r}")

    def held(self) -> dict[str, Any]:
        """The live records the platform holds, keyed and shaped as the case's ``expected``."""
        return self.case.held(self)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, f"{self.sandbox.url}/_sandbox/{self.case.platform}/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def fault(self, **fault: Any) -> None:
        requests.post(f"{self.sandbox.url}/_sandbox/faults", json={"platform": self.case.platform, **fault}, timeout=5).raise_for_status()

    def clear_faults(self) -> None:
        requests.delete(f"{self.sandbox.url}/_sandbox/faults", timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        """What this platform's emulator itself counted (requests, statuses, items received)."""
        return sandbox_stats(self.sandbox, self.case.platform)

    def reset_stats(self) -> None:
        reset_stats(self.sandbox)

    def env(self, **more: str) -> dict[str, str]:
        """This process's environment (the sandbox's URLs) with the project's variables, for a Dagster CLI."""
        return {**os.environ, "ACTIVATION_CONFIG": str(self.config_path), "ACTIVATION_WAREHOUSE": str(self.warehouse), **more}

    # --- the ledger --------------------------------------------------------------------
    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple]:
        """Rows of a query on the warehouse, whichever backend (``?`` placeholders)."""
        if isinstance(self.warehouse, Path):
            with duckdb.connect(str(self.warehouse), read_only=True) as conn:
                return conn.execute(query, params or []).fetchall()
        with self.backend.session(read_only=True) as session:
            return session.fetch_all(query, params)

    def snapshot_keys(self, activation: str | None = None) -> set[str]:
        return {row[0] for row in self.sql(f'SELECT key FROM activation_state."{activation or self.case.activation_name}"')}

    def last_run_records(self, activation: str | None = None) -> dict[str, tuple[str, str]]:
        activation = activation or self.case.activation_name
        rows = self.sql(
            "SELECT key, status, message FROM activation_state.sync_records WHERE activation = ? AND run_id = "
            "(SELECT run_id FROM activation_state.sync_runs WHERE activation = ? ORDER BY started_at DESC LIMIT 1)",
            [activation, activation],
        )
        return {key: (status, message) for key, status, message in rows}

    def confirmed_records(self, activation: str | None = None) -> list[Record]:
        """The last confirmed payload of every record in the snapshot, as the engine would verify it."""
        rows = self.sql(
            "SELECT key, payload::VARCHAR FROM (SELECT key, payload, "
            "row_number() OVER (PARTITION BY key ORDER BY recorded_at DESC, seq DESC) AS version "
            "FROM activation_state.sync_records WHERE activation = ? AND status = 'confirmed') AS confirmed "
            "WHERE version = 1 ORDER BY key",
            [activation or self.case.activation_name],
        )
        return [Record(key=key, identifier=key, fields=json.loads(payload)) for key, payload in rows]


def activation_selection(config: ProjectConfig, activation: str) -> list[AssetKey]:
    """The activation, its segment and the sources the segment reads, as the config declares them."""
    segment = config.activations[activation].segment
    sources = sorted(config.segments[segment].referenced_tables("sources"))
    return [AssetKey(["sources", s]) for s in sources] + [AssetKey(["segments", segment]), AssetKey(["activations", activation])]


def run_metadata(result: Any, activation: str = "sync_products") -> dict[str, Any]:
    """The activation's materialization metadata, values unwrapped."""
    entry = result.asset_materializations_for_node(f"activations__{activation}")[0].metadata
    return {k: getattr(v, "value", v) for k, v in entry.items()}


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def project_for(
    tmp_path: Path, sandbox: Any, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch, backend: Backend
) -> Callable[[str], Project]:
    """``project_for(platform)``: a project on that platform's emulator, with the sandbox's demo credentials."""

    def make(platform: str) -> Project:
        return Project(tmp_path, sandbox, instance, point_at_sandbox(CASES[platform], sandbox, monkeypatch), backend)

    return make


def point_at_sandbox(case: PlatformCase, sandbox: Any, monkeypatch: pytest.MonkeyPatch) -> PlatformCase:
    """The platform's client sends to the sandbox's emulator, with the sandbox's demo credentials (secrets unset)."""
    variable, path = case.base_url
    monkeypatch.setenv(variable, f"{sandbox.url}{path}")
    for name in case.secret_envs:
        monkeypatch.delenv(name, raising=False)
    return case


@pytest.fixture
def project(project_for: Callable[[str], Project]) -> Project:
    """The Batch project most engine tests use."""
    return project_for("batch")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_webserver(url: str, log: Path, seconds: float = 180) -> None:
    """Until ``dagster dev`` at ``url`` answers; else fail with the end of its log."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/server_info", timeout=2).ok:
                return
        except requests.RequestException:
            time.sleep(1)
    raise AssertionError(log.read_text()[-3000:])


@contextlib.contextmanager
def dagster_dev(env: dict[str, str], cwd: Path) -> Iterator[str]:
    """``dagster dev`` (webserver + daemon) of this project's definitions on a free port: its URL once it
    answers; its process group killed after (started in the background it may ignore SIGINT)."""
    port = free_port()
    url, log_path = f"http://127.0.0.1:{port}", cwd / "dagster_dev.log"
    with open(log_path, "w") as log:
        command = [sys.executable, "-m", "dagster", "dev", "-m", "activation_pipeline.definitions", "-h", "127.0.0.1", "-p", str(port)]
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for_webserver(url, log_path)
            yield url
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


AUTOMATION = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
  schedules { name scheduleState { id status } } sensors { name sensorState { id status } } } } } }"""
STOP_SCHEDULE = "mutation($id: String) { stopRunningSchedule(id: $id) { __typename ... on PythonError { message } } }"
STOP_SENSOR = "mutation($id: String) { stopSensor(id: $id) { __typename ... on PythonError { message } } }"


def stop_wall_clock_automation(url: str, timeout: float = 90) -> list[str]:
    """Stop every running schedule and sensor of the UI at ``url``, as a user would on its Automation page.

    A test that clicks through the UI must not race the wall clock: a schedule whose cron time falls
    during the test (the nightly price refresh at 03:30 Paris) would launch a run of its own and
    replace the result the test looks at. Returns the names stopped.

    The daemon's first pass over a schedule that runs by default writes its state back (its last
    iteration time) from what it read before, so a stop that lands inside that pass is undone; and a
    stop of a schedule the daemon has not stored yet races the daemon's own insert of its state (the
    webserver answers 500 with the unique-constraint error). So stop until nothing runs on two looks
    in a row, a few seconds apart; a stop that fails is tried again on the next look, and its error
    is reported only if the instigator still runs at the deadline."""

    def graphql(query: str, variables: dict | None = None) -> dict:
        response = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        if response.status_code != 200 or "errors" in body or not body.get("data"):
            raise AssertionError(f"{response.status_code} from {url}/graphql: {body.get('errors') or response.text[:2000]}")
        return body["data"]

    def running() -> list[tuple[str, str, str]]:
        return [
            (instigator["name"], mutation, instigator[state]["id"])
            for repository in graphql(AUTOMATION)["repositoriesOrError"]["nodes"]
            for kind, mutation, state in (("schedules", STOP_SCHEDULE, "scheduleState"), ("sensors", STOP_SENSOR, "sensorState"))
            for instigator in repository[kind]
            if instigator[state]["status"] == "RUNNING"
        ]

    stopped: list[str] = []
    failures: dict[str, str] = {}  # the last error of each stop that failed, for the deadline's message
    quiet_looks, deadline = 0, time.monotonic() + timeout
    while quiet_looks < 2:
        still = running()
        assert time.monotonic() < deadline or not still, (
            f"still running after {timeout:.0f} s: {[name for name, _, _ in still]}; last errors: {failures}"
        )
        quiet_looks = 0 if still else quiet_looks + 1
        for name, mutation, instigator_id in still:
            try:
                answer = next(iter(graphql(mutation, {"id": instigator_id}).values()))
            except AssertionError as error:
                failures[name] = str(error)[:500]
                continue
            if answer["__typename"] == "PythonError":
                failures[name] = answer.get("message", "")[:500]
                continue
            if name not in stopped:
                stopped.append(name)
        if quiet_looks < 2:
            time.sleep(2)
    return stopped


def dagster_materialize(
    select: str, env: dict[str, str], cwd: Path | None = None, partition: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``dagster asset materialize`` of this project's definitions, as a user runs it (output captured, not checked)."""
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "-m", "activation_pipeline.definitions", "--select", select]
    command += ["--partition", partition] if partition else []
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def dagster_cli(name: str) -> str:
    """A console script of the Python running the tests (dagster, dagster-daemon, dagster-celery)."""
    return str(Path(sys.executable).parent / name)


@contextmanager
def background_process(command: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A server the test starts (daemon, worker, broker), output to ``log``, in its own process group,
    killed with its children at the end: some of them ignore SIGINT when started in the background."""
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield process
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


CHROMIUM = Path("/usr/bin/chromium")  # Debian's chromium (.ci/run installs it); playwright downloads no browser


def launch_chromium(playwright: Any) -> Any:
    """Headless Debian chromium for the UI tests, with nothing of its own going to the network."""
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    )


def sandbox_stats(sandbox: Any, platform: str = "batch") -> dict[str, Any]:
    """What a platform's emulator itself counted (requests, items received): the platform's view, not the engine's."""
    return requests.get(f"{sandbox.url}/_sandbox/stats", timeout=10).json()[platform]


def burst(send: Callable[[int], Any], count: int) -> list[Any]:
    """``send(0)`` … ``send(count - 1)`` all at once, one thread each: a rate limit's bucket cannot refill
    between them however busy the machine, as it may between requests sent one after another."""
    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(send, range(count)))


def reset_stats(sandbox: Any) -> None:
    requests.post(f"{sandbox.url}/_sandbox/stats/reset", timeout=10).raise_for_status()


def observe_source_files(defs: Any, instance: DagsterInstance, cursor: str | None = None) -> str | None:
    """One tick of the ``observe_source_files`` sensor, its observations stored as the daemon stores them; its new cursor."""
    observer = next(s for s in defs.sensors if s.name == "observe_source_files")
    with build_sensor_context(instance=instance, cursor=cursor, definitions=defs) as context:
        result = observer.evaluate_tick(context)
    for event in result.asset_events:
        instance.report_runless_asset_event(event)
    return result.cursor


def requested(defs: Any, evaluation: Any) -> dict[str, set[str | None]]:
    """What an ``evaluate_automation_conditions`` result requested: asset key -> partitions (None: unpartitioned)."""
    keys = defs.resolve_asset_graph().get_all_asset_keys()
    return {key.to_user_string(): set(evaluation.get_requested_partitions(key)) for key in keys if evaluation.get_num_requested(key)}
