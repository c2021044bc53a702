"""The UI path as a person uses it: `dagster dev` (webserver + daemon) on a free port, headless
Chromium driven by Playwright, Materialize clicked on an activation's page, the run's
counts read from the page, and the sandbox checked to hold exactly those records.

Needs Debian's chromium at /usr/bin/chromium (`.ci/run` installs it). Screenshots are saved
to artifacts/ (the README's, of what the demo leaves, are taken by test_demo_in_the_ui.py)."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from activation_pipeline.dagster_home import prepare_home
from activation_pipeline_tests.conftest import (
    CHROMIUM,
    dagster_dev,
    dagster_materialize,
    launch_chromium,
    stop_wall_clock_automation,
)

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
ACTIVATION = "products_to_batch"
PARTITIONED = "orders_to_batch"
PARTITION = "2026-10-31"

if not CHROMIUM.exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI must install Debian's chromium (/usr/bin/chromium) for the browser test")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402


@pytest.fixture
def dagster_ui(sandbox, tmp_path) -> Iterator[tuple[str, dict]]:
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data" / "demo", data / "demo")
    shutil.copy(ROOT / "data" / "activations.yaml", data / "activations.yaml")
    home = prepare_home(tmp_path / "dagster_home", ROOT / "dagster.yaml")  # pools, nux off, telemetry off
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ACTIVATION_CONFIG": str(data / "activations.yaml"),
        "ACTIVATION_WAREHOUSE": str(data / "warehouse.duckdb"),
        "BATCH_BASE_URL": f"{sandbox.url}/batch/2.11",
        "SANDBOX_PORT": sandbox.url.rsplit(":", 1)[1],
    }
    # the activation's upstream sources and segment exist before the click, as after a first run;
    # and one day of the partitioned orders flow, as a daily schedule tick would
    for select, partition in (
        ("sources/products,sources/order_lines,segments/sellable_products", None),
        ("sources/orders,sources/order_lines,segments/daily_orders,activations/orders_to_batch", PARTITION),
    ):
        done = dagster_materialize(select, env, cwd=tmp_path, partition=partition)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    with dagster_dev(env, tmp_path) as url:
        stop_wall_clock_automation(url)  # no schedule tick may replace what the tests look at
        yield url, env


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    response = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    response.raise_for_status()
    return response.json()["data"]


def latest_run(url: str) -> tuple[str, str] | None:
    runs = graphql(url, "{ runsOrError(limit: 1) { ... on Runs { results { runId status } } } }")["runsOrError"]["results"]
    return (runs[0]["runId"], runs[0]["status"]) if runs else None


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=False)  # the README's are test_demo_in_the_ui.py's


def test_materialize_clicked_in_the_ui_syncs_the_catalog_and_shows_its_counts(dagster_ui, sandbox):
    url, _ = dagster_ui
    before = latest_run(url)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.goto(f"{url}/assets/activations/{ACTIVATION}", wait_until="networkidle")
        button = page.locator("button", has_text=re.compile(r"^\s*Materialize\s*$"))
        expect(button).to_be_visible(timeout=60_000)
        button.click()

        deadline = time.monotonic() + 180
        run = latest_run(url)
        while time.monotonic() < deadline and (run is None or run == before or run[1] not in ("SUCCESS", "FAILURE", "CANCELED")):
            time.sleep(1)
            run = latest_run(url)
        assert run and run != before and run[1] == "SUCCESS", run

        page.goto(f"{url}/assets/activations/{ACTIVATION}", wait_until="networkidle")
        expect(page.get_by_text("added_succeeded").first).to_be_visible(timeout=60_000)
        page.wait_for_timeout(1000)
        shot(page, "activation_metadata.png")

        def shown(name: str) -> int:
            """The value cell of the metadata table row whose key is ``name``."""
            rows = page.locator("tr", has=page.locator("td", has_text=re.compile(rf"^\s*{name}\s*$")))
            values = [row.locator("td").last.inner_text().strip() for row in rows.all() if row.is_visible()]
            return int([v for v in values if v][0].replace(",", ""))

        counts = {name: shown(name) for name in ("added_planned", "added_succeeded", "changed_succeeded", "removed_succeeded", "invalid")}
        page.goto(f"{url}/assets/activations/{ACTIVATION}?view=lineage&lineageScope=upstream&lineageDepth=3", wait_until="networkidle")
        expect(page.get_by_text("sellable_products").first).to_be_visible(timeout=60_000)
        page.wait_for_timeout(1500)
        shot(page, "asset_graph.png")

        page.goto(f"{url}/assets/activations/{PARTITIONED}?view=partitions", wait_until="networkidle")
        expect(page.get_by_text("Materialized (1)").first).to_be_visible(timeout=60_000)
        page.get_by_placeholder("Filter by name").fill(PARTITION)
        page.get_by_text(PARTITION, exact=True).first.click()
        expect(page.get_by_text("added_succeeded").first).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1000)
        shot(page, "partitions.png")
        found = re.search(r"added_succeeded\s+([\d,]+)", page.inner_text("body"))  # the selected day's metadata panel
        assert found, "the partition's metadata is not shown"
        day_added = int(found.group(1).replace(",", ""))
        browser.close()

    stored = requests.get(f"{sandbox.url}/_sandbox/batch/catalogs/products/items", timeout=30).json()["items"]
    assert counts["added_succeeded"] == counts["added_planned"] == len(stored) > 0
    assert counts["changed_succeeded"] == counts["removed_succeeded"] == counts["invalid"] == 0
    # the partitioned activation's page: one materialized day, whose metadata matches what the sandbox got
    orders = requests.get(f"{sandbox.url}/_sandbox/batch/catalogs/orders/items", timeout=30).json()["items"]
    assert day_added == len(orders) > 0


BACKFILL_DAYS = ["2026-10-25", "2026-10-26", "2026-10-27"]
LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
    ... on PartitionSetNotFoundError { message }
  }
}"""


def test_a_backfill_over_a_date_range_syncs_each_day_as_its_own_partition(dagster_ui, sandbox):
    """What the UI's "Materialize → select partitions → Launch backfill" sends, run by the daemon."""
    url, env = dagster_ui
    selection = [{"path": ["sources", "orders"]}, {"path": ["segments", "daily_orders"]}, {"path": ["activations", PARTITIONED]}]
    launched = graphql(url, LAUNCH_BACKFILL, {"params": {"assetSelection": selection, "partitionNames": BACKFILL_DAYS, "fromFailure": False}})[
        "launchPartitionBackfill"
    ]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill = launched["backfillId"]
    status_query = "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }"
    deadline, status = time.monotonic() + 420, None
    while time.monotonic() < deadline:
        status = graphql(url, status_query, {"id": backfill})["partitionBackfillOrError"]["status"]
        if status not in ("REQUESTED", "CANCELING"):
            break
        time.sleep(2)
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
    busy = "{ runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED]}) { ... on Runs { results { runId } } } }"
    while (running := graphql(url, busy)["runsOrError"]["results"]) and time.monotonic() < deadline:
        time.sleep(1)  # "completed" may mean every run was launched: wait for them to finish
    assert not running, f"runs still in progress at the deadline: {running}"

    import duckdb

    with duckdb.connect(env["ACTIVATION_WAREHOUSE"], read_only=True) as conn:
        runs = conn.execute(
            "SELECT partition_key, status FROM activation_state.sync_runs WHERE activation = ? AND partition_key IN ? ORDER BY 1",
            [PARTITIONED, BACKFILL_DAYS],
        ).fetchall()
        confirmed = conn.execute(
            "SELECT partition_key, key FROM activation_state.latest_records WHERE activation = ? AND in_platform", [PARTITIONED]
        ).fetchall()
        order_day = dict(conn.execute("SELECT order_id, CAST(order_date AS VARCHAR) FROM segments.daily_orders").fetchall())
    assert runs == [(day, "succeeded") for day in BACKFILL_DAYS]  # one sync per day, each its own partition
    assert {day for day, _ in confirmed} == {PARTITION, *BACKFILL_DAYS}  # the fixture's day, then the backfilled ones
    stored = requests.get(f"{sandbox.url}/_sandbox/batch/catalogs/orders/items", timeout=30).json()["items"]
    assert set(stored) == {key for _, key in confirmed} and len(stored) == len(confirmed)
    assert all(order_day[key] == day for day, key in confirmed)  # every order was sent by its own day's partition
