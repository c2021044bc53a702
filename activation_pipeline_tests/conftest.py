"""Shared fixtures: a real sandbox on a free 127.0.0.1 port, a temporary project (config,
CSV source, DuckDB warehouse) and a Dagster test instance. Nothing is patched: tests drive
real materializations that send real HTTP to the emulator."""

from __future__ import annotations

import csv
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import requests
import yaml
from dagster import AssetKey, DagsterInstance, materialize

from activation_pipeline.config import load_config
from activation_pipeline.definitions import build_definitions
from activation_pipeline.sandbox import start_sandbox


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


BASE_ACTIVATION = {
    "segment": "catalog",
    "destination": "batch_test",
    "object": "products",
    "identifier": "sku",
    "mapping": {"name": "name", "price": "price"},
    "custom_attributes": ["brand"],
    "max_items_per_request": 10,
    "concurrency": 2,
}


class Project:
    """A throwaway activation project: products.csv → segments.catalog → one activation."""

    def __init__(self, root: Path, sandbox: Any, instance: DagsterInstance):
        self.root, self.sandbox, self.instance = root, sandbox, instance
        self.config_path = root / "activations.yaml"
        self.warehouse = root / "warehouse.duckdb"
        self.activations: dict[str, dict[str, Any]] = {}
        self.segment_sql = "SELECT sku, name, price, brand FROM sources.products"
        self.destination_settings: dict[str, Any] = {}  # merged over the defaults below (timeout_seconds, …)

    # --- arrange -------------------------------------------------------------------
    def write_products(self, rows: list[dict[str, Any]]) -> None:
        with open(self.root / "products.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["sku", "name", "price", "brand"])
            writer.writeheader()
            writer.writerows(rows)

    def add_activation(self, name: str = "sync_products", **overrides: Any) -> str:
        self.activations[name] = {**BASE_ACTIVATION, **overrides}
        self.write_config()
        return name

    def write_config(self) -> None:
        document = {
            "sources": {"products": {"path": "products.csv"}},
            "segments": {"catalog": {"primary_key": "sku", "sql": self.segment_sql}},
            "destinations": {"batch_test": {"platform": "batch", "secrets": {"rest_api_key": "BATCH_REST_API_KEY", "project_key": "BATCH_PROJECT_KEY"},
                                          # short backoff keeps fault tests fast; Retry-After is still honoured
                                          "settings": {"backoff_seconds": 0.02, "max_retries": 6, **self.destination_settings}}},
            "activations": self.activations,
        }
        self.config_path.write_text(yaml.safe_dump(document, sort_keys=False))

    # --- act -----------------------------------------------------------------------
    def materialize(self, activation: str = "sync_products", run_config: dict[str, Any] | None = None, raise_on_error: bool = True):
        defs = build_definitions(load_config(self.config_path), warehouse=self.warehouse)
        selection = [AssetKey(["sources", "products"]), AssetKey(["segments", "catalog"]), AssetKey(["activations", activation])]
        config = {"ops": {f"activations__{activation}": {"config": run_config}}} if run_config else None
        assets = list(defs.assets or []) + list(defs.asset_checks or [])
        return materialize(assets, selection=selection, resources=defs.resources, run_config=config,
                           instance=self.instance, raise_on_error=raise_on_error)

    # --- assert --------------------------------------------------------------------
    def catalog(self, name: str = "products") -> dict[str, dict[str, Any]]:
        response = requests.get(f"{self.sandbox.url}/_sandbox/batch/catalogs/{name}/items", timeout=10)
        if response.status_code == 404:
            return {}
        response.raise_for_status()
        return response.json()["items"]

    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple]:
        with duckdb.connect(str(self.warehouse), read_only=True) as conn:
            return conn.execute(query, params or []).fetchall()

    def snapshot_keys(self, activation: str = "sync_products") -> set[str]:
        return {row[0] for row in self.sql(f'SELECT key FROM activation_state."{activation}"')}

    def fault(self, **fault: Any) -> None:
        requests.post(f"{self.sandbox.url}/_sandbox/faults", json={"platform": "batch", **fault}, timeout=5).raise_for_status()


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def project(tmp_path: Path, sandbox: Any, instance: DagsterInstance) -> Project:
    return Project(tmp_path, sandbox, instance)


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


AUTOMATION = """{ repositoriesOrError { ... on RepositoryConnection { nodes {
  schedules { name scheduleState { id status } } sensors { name sensorState { id status } } } } } }"""
STOP_SCHEDULE = "mutation($id: String) { stopRunningSchedule(id: $id) { __typename } }"
STOP_SENSOR = "mutation($id: String) { stopSensor(id: $id) { __typename } }"


def stop_wall_clock_automation(url: str) -> list[str]:
    """Stop every running schedule and sensor of the UI at ``url``, as a user would on its Automation page.

    A test that clicks through the UI must not race the wall clock: a schedule whose cron time falls
    during the test (the nightly price refresh at 03:30 Paris) would launch a run of its own and
    replace the result the test looks at. Returns the names stopped."""
    def graphql(query: str, variables: dict | None = None) -> dict:
        response = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    stopped = []
    for repository in graphql(AUTOMATION)["repositoriesOrError"]["nodes"]:
        for kind, mutation, state in (("schedules", STOP_SCHEDULE, "scheduleState"), ("sensors", STOP_SENSOR, "sensorState")):
            for instigator in repository[kind]:
                if instigator[state]["status"] == "RUNNING":
                    graphql(mutation, {"id": instigator[state]["id"]})
                    stopped.append(instigator["name"])
    still = [i["name"] for r in graphql(AUTOMATION)["repositoriesOrError"]["nodes"]
             for kind, state in (("schedules", "scheduleState"), ("sensors", "sensorState")) for i in r[kind]
             if i[state]["status"] == "RUNNING"]
    assert not still, f"still running: {still}"
    return stopped


def sandbox_stats(sandbox: Any) -> dict[str, Any]:
    """What the Batch emulator itself counted (requests, items received): the platform's view, not the engine's."""
    return requests.get(f"{sandbox.url}/_sandbox/stats", timeout=10).json()["batch"]


def reset_stats(sandbox: Any) -> None:
    requests.post(f"{sandbox.url}/_sandbox/stats/reset", timeout=10).raise_for_status()


def product(i: int, price: float | None = None, name: str | None = None, brand: str = "Acme") -> dict[str, Any]:
    return {"sku": f"SKU-{i:04d}", "name": name or f"Product {i}", "price": price if price is not None else 10.0 + i, "brand": brand}


def expected_items(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What Batch should hold for these rows under the BASE_ACTIVATION mapping."""
    return {r["sku"]: {"name": r["name"], "price": float(r["price"]), "brand": r["brand"]} for r in rows}
