"""Pacing per platform account, against the sandbox's Batch emulator enforcing a small limit (its
token buckets answer 429 beyond it): a paced run is never answered 429; two activations of one
destination share its budget, in one process and in two run processes at once. Every assertion is
on what the emulator counted and holds; no assertion times anything."""

from __future__ import annotations

import os
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
