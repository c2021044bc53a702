"""Pacing per platform account, against the sandbox's Batch emulator enforcing a small limit (its
token buckets answer 429 beyond it): a paced run is never answered 429; two activations of one
destination share its budget, in one process and in two run processes at once. Every assertion is
on what the emulator counted and holds; no assertion times anything."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from dagster import DagsterInstance

from activation_pipeline.dagster_home import prepare_home
from activation_pipeline.platforms.batch import ITEMS_PER_SECOND, REQUESTS_PER_SECOND, BatchResource
from activation_pipeline_tests.conftest import Project, dagster_materialize, expected_items, product, reset_stats, sandbox_stats

ROOT = Path(__file__).resolve().parents[1]
# the emulator's limit and the destination's budget: small, so a few thousand items take a few seconds
LIMIT = {"requests_per_second": 10, "items_per_second": 500}
PER_REQUEST = 100


@pytest.fixture
def limited(project: Project, sandbox: Any) -> Iterator[Project]:
    """The Batch project with the emulator's rate limit on at ``LIMIT`` and the destination's budget at the same."""
    project.settings.update(LIMIT)
    requests.post(f"{sandbox.url}/_sandbox/ratelimit", json={"enabled": True, **LIMIT}, timeout=5).raise_for_status()
    try:
        yield project
    finally:
        requests.post(f"{sandbox.url}/_sandbox/ratelimit", json={"enabled": False}, timeout=5).raise_for_status()


def rows(first: int, count: int) -> list[dict[str, Any]]:
    return [product(i) for i in range(first, first + count)]


def two_activations(project: Project) -> None:
    """Two activations of the project's one destination, each to its own catalog."""
    at_scale = {"max_items_per_request": PER_REQUEST, "concurrency": 4}
    project.add_activation("full_catalog", object="products", **at_scale)
    project.add_activation("names_only", object="product_names", mapping={"name": "name"}, custom_attributes=[], **at_scale)


def overlapped(project: Project) -> bool:
    (_, start_a, end_a), (_, start_b, end_b) = project.sql("SELECT activation, started_at, finished_at FROM activation_state.sync_runs ORDER BY 1")
    return bool(start_a < end_b and start_b < end_a)


def test_batchs_documented_limits_are_the_default_budget() -> None:
    resource = BatchResource()
    assert (resource.requests_per_second, resource.items_per_second) == (REQUESTS_PER_SECOND, ITEMS_PER_SECOND) == (5.0, 1000.0)


def test_a_paced_batch_run_is_never_answered_429(limited: Project, sandbox: Any) -> None:
    products = rows(1, 2_000)
    limited.add_activation(max_items_per_request=PER_REQUEST, concurrency=4)
    limited.write_products(products)
    reset_stats(sandbox)

    result = limited.sync()

    stats = sandbox_stats(sandbox)
    assert (result["status"], result["added_succeeded"]) == ("succeeded", len(products))
    assert stats["statuses"].get("429", 0) == 0, stats["statuses"]  # the limit was never hit
    assert stats["requests"]["/catalogs/items/edit"] == len(products) // PER_REQUEST  # each request sent once
    assert limited.catalog() == expected_items(products)


def test_an_unpaced_run_against_the_same_limit_is_answered_429(limited: Project, sandbox: Any) -> None:
    """What the budget prevents: the same run with pacing off bounces off the limit."""
    products = rows(1, 2_000)
    limited.settings.update({"requests_per_second": 0, "items_per_second": None})
    limited.add_activation(max_items_per_request=PER_REQUEST, concurrency=4)
    limited.write_products(products)
    reset_stats(sandbox)

    result = limited.sync()

    assert (result["status"], result["added_succeeded"]) == ("succeeded", len(products))
    assert sandbox_stats(sandbox)["statuses"].get("429", 0) > 0
    assert limited.catalog() == expected_items(products)


def test_two_activations_of_one_destination_in_one_process_share_its_budget(limited: Project, sandbox: Any) -> None:
    products = rows(1, 1_500)
    two_activations(limited)
    limited.write_products(products)
    limited.materialize("full_catalog", run_config={"dry_run": True})  # sources and segment, once
    reset_stats(sandbox)

    with ThreadPoolExecutor(max_workers=2) as pool:  # both at once, in this process
        results = list(pool.map(limited.sync, ["full_catalog", "names_only"]))

    stats = sandbox_stats(sandbox)
    assert [r["added_succeeded"] for r in results] == [len(products)] * 2
    assert stats["statuses"].get("429", 0) == 0, stats["statuses"]  # each alone at the budget would have doubled it
    assert stats["requests"]["/catalogs/items/edit"] == 2 * len(products) // PER_REQUEST
    assert limited.catalog("products") == expected_items(products)
    assert limited.catalog("product_names") == {r["sku"]: {"name": r["name"]} for r in products}
    assert overlapped(limited), "the two syncs did not overlap: this test proved nothing"


def test_two_run_processes_syncing_one_account_at_once_stay_within_its_limit_together(limited: Project, sandbox: Any, tmp_path: Path) -> None:
    products = rows(1, 1_500)
    two_activations(limited)
    limited.write_products(products)
    limited.materialize("full_catalog", run_config={"dry_run": True})  # sources and segment, once
    home = prepare_home(tmp_path / "dagster_home", ROOT / "dagster.yaml")  # the repository's instance settings
    with DagsterInstance.from_config(str(home)):
        pass  # storage created up front, as `dagster dev` would (two processes racing to create it fail in Dagster)
    pacing_dir = tmp_path / "pacing"
    env = {
        **os.environ,
        "ACTIVATION_CONFIG": str(limited.config_path),
        "ACTIVATION_WAREHOUSE": str(limited.warehouse),
        "DAGSTER_HOME": str(home),
        "ACTIVATION_PACING_DIR": str(pacing_dir),
    }
    reset_stats(sandbox)

    with ThreadPoolExecutor(max_workers=2) as pool:  # two `dagster asset materialize` processes at once
        done = list(pool.map(lambda name: dagster_materialize(f"activations/{name}", env), ["full_catalog", "names_only"]))

    for completed in done:
        assert completed.returncode == 0, (completed.stdout + completed.stderr)[-3000:]
    stats = sandbox_stats(sandbox)
    assert stats["statuses"].get("429", 0) == 0, stats["statuses"]  # each alone at the budget would have doubled it
    assert stats["requests"]["/catalogs/items/edit"] == 2 * len(products) // PER_REQUEST
    assert limited.catalog("products") == expected_items(products)
    assert limited.catalog("product_names") == {r["sku"]: {"name": r["name"]} for r in products}
    assert overlapped(limited), "the two syncs did not overlap: this test proved nothing"
    # the account's shared slots are named by a digest: no credential in a file name or its content
    shared = list(pacing_dir.iterdir())
    assert shared and all(b"sandbox" not in f.read_bytes() and "sandbox" not in f.name for f in shared)


# --- across machines: a Postgres warehouse holds the account's slots -----------------------------------------
PACED_CHILD = """
import os, sys, time
from activation_pipeline.platforms import PLATFORMS
from activation_pipeline.platforms.base import Record, SyncTarget
from activation_pipeline.platforms.batch import BatchResource
first, count, per_request = (int(a) for a in sys.argv[1:4])
client = BatchResource(requests_per_second=float(os.environ["RPS"]), items_per_second=float(os.environ["IPS"])).client()
target = SyncTarget(activation="a", title="a", object="paced", field_types={"name": "string"}, model=PLATFORMS["batch"].target)
client.prepare(target)
began = time.time()
for start in range(first, first + count, per_request):
    records = [Record(key=str(i), identifier=str(i), fields={"name": f"n{i}"}) for i in range(start, start + per_request)]
    assert all(o.status == "confirmed" for o in client.send(target, "upsert", records))
print("SPAN", began, time.time())
client.close()
"""


def run_paced_children(sandbox: Any, warehouse: str | None, tmp_path: Path, password: str = "", items: int = 1_500) -> bool:
    """Two processes, each with a pacing dir of its own (as two machines have), sending ``items`` each to one
    account at the budget ``LIMIT``; ``warehouse`` is the Postgres warehouse they share, or None. Whether their
    sending overlapped in time."""
    procs = []
    for n in range(2):
        env = {k: v for k, v in os.environ.items() if k != "ACTIVATION_WAREHOUSE"}
        env.update(
            BATCH_BASE_URL=f"{sandbox.url}/batch/2.11",
            ACTIVATION_PACING_DIR=str(tmp_path / f"machine{n}"),
            RPS=str(LIMIT["requests_per_second"]),
            IPS=str(LIMIT["items_per_second"]),
        )
        if warehouse:
            env.update(ACTIVATION_WAREHOUSE=warehouse, PGPASSWORD=password)  # libpq's conventions: no password in the URL
        command = [sys.executable, "-c", PACED_CHILD, str(n * items), str(items), str(PER_REQUEST)]
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    spans = []
    for proc in procs:
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, output[-3000:]
        spans.append(next(tuple(map(float, line.split()[1:])) for line in output.splitlines() if line.startswith("SPAN ")))
    (start_a, end_a), (start_b, end_b) = spans
    return start_a < end_b and start_b < end_a


def test_two_machines_sharing_a_postgres_warehouse_share_the_accounts_budget(sandbox: Any, postgres_server: Any, tmp_path: Path) -> None:
    """Each process has its own pacing folder (nothing on a shared disk): only the warehouse row paces them together.
    Without it (the control below, same processes, no warehouse) the emulator answers 429."""
    database = postgres_server.create_database("pacing_shared")
    url = f"postgresql://{postgres_server.user}@{postgres_server.host}:{postgres_server.port}/{database}"
    requests.post(f"{sandbox.url}/_sandbox/ratelimit", json={"enabled": True, **LIMIT}, timeout=5).raise_for_status()
    try:
        reset_stats(sandbox)
        overlapped_shared = run_paced_children(sandbox, url, tmp_path / "shared", postgres_server.password)
        shared = sandbox_stats(sandbox)
        reset_stats(sandbox)
        run_paced_children(sandbox, None, tmp_path / "apart")
        apart = sandbox_stats(sandbox)
    finally:
        requests.post(f"{sandbox.url}/_sandbox/ratelimit", json={"enabled": False}, timeout=5).raise_for_status()
    assert overlapped_shared, "the two processes did not send at the same time: this test proved nothing"
    assert shared["statuses"].get("429", 0) == 0, shared["statuses"]
    assert shared["requests"]["/catalogs/items/edit"] == 2 * 1_500 // PER_REQUEST  # none resent
    assert apart["statuses"].get("429", 0) > 0, "paced apart, two machines should have exceeded the account's limit"
    # the row is keyed by a digest of the credentials, never by them
    import psycopg

    with psycopg.connect(url, password=postgres_server.password) as conn:
        accounts = [row[0] for row in conn.execute("SELECT account FROM activation_state.pacing_slots").fetchall()]
    assert len(accounts) == 1 and accounts[0].startswith("batch:") and "sandbox" not in accounts[0]
