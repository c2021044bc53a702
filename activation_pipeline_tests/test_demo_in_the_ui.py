"""What a newcomer sees: command 1 (`activation-pipeline demo`) run from a checkout, then `dagster
dev` from the same folder, neither with DAGSTER_HOME set. The UI must show what the demo synced
(the demo records its runs in the checkout's `.dagster_home/`, which the repository's dagster.yaml
points `dagster dev` at). One demo run (the slow part) serves every test of this module.

The browser test needs Debian's chromium at /usr/bin/chromium; it also takes the README's
screenshots (saved to artifacts/demo_*.png, and to docs/screenshots/ when UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
import requests
import yaml

from activation_pipeline.cli import DEMO_DAYS, DEMO_LAST_ORDER_DAY
from activation_pipeline.sandbox import start_sandbox
from activation_pipeline_tests.conftest import CHROMIUM, free_port, launch_chromium, stop_wall_clock_automation, wait_for_webserver

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
DEMO_DAYS_SYNCED = {(DEMO_LAST_ORDER_DAY - timedelta(days=n)).isoformat() for n in range(DEMO_DAYS)}
# a full_only activation resends every row each run, so a Materialize after the demo sends records
PARTIAL = "price_refresh_to_batch"
SHOWN = "products_to_batch"
PARTITIONED = "orders_to_dotdigital"
# what the activation's page shows (metadata keys, the check's name): the integrator's contract
SUMMARY_KEY = "summary"  # the run's summary table: rows added/changed/removed, columns planned/succeeded/failed
SUMMARY_WORDS = ("added", "changed", "removed", "planned", "succeeded", "failed")
FAILED_RECORDS_KEY = "failed_records"  # a table of the records the platform refused, with its message
CHECK = "all_records_confirmed"  # severity WARN, fails when records were rejected or unanswered


@dataclass
class DemoUI:
    url: str
    checkout: Path
    sandbox_url: str
    demo_output: str

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def sql(self, query: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.checkout / "data" / "warehouse.duckdb"), read_only=True) as conn:
            return conn.execute(query, params or []).fetchall()


@pytest.fixture(scope="module")
def demo_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoUI]:
    # a sandbox of this module's own (the shared one is reset before every test), without rate limits
    sandbox = start_sandbox(port=0, state_path=tmp_path_factory.mktemp("demo_sandbox") / "state.sqlite", rate_limit=False)
    checkout = tmp_path_factory.mktemp("checkout")  # the files of a fresh clone that the demo and `dagster dev` read
    for name in ("dagster.yaml", "workspace.yaml"):
        shutil.copy(ROOT / name, checkout / name)
    shutil.copytree(ROOT / "data" / "demo", checkout / "data" / "demo")
    shutil.copy(ROOT / "data" / "activations.yaml", checkout / "data" / "activations.yaml")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DAGSTER_HOME", "ACTIVATION_CONFIG", "ACTIVATION_WAREHOUSE") and not key.endswith("_BASE_URL")
    }
    env["SANDBOX_PORT"] = sandbox.url.rsplit(":", 1)[1]  # every platform's default: the sandbox on that port
    process = None
    try:
        demo = subprocess.run(
            [sys.executable, "-m", "activation_pipeline.cli", "demo"], cwd=checkout, env=env, capture_output=True, text=True, timeout=900
        )
        output = demo.stdout + demo.stderr
        assert demo.returncode == 0, output[-4000:]
        port = free_port()
        log = open(checkout / "dagster_dev.log", "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-h", "127.0.0.1", "-p", str(port)],
            cwd=checkout,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        wait_for_webserver(url, checkout / "dagster_dev.log")
        stop_wall_clock_automation(url)  # no schedule tick may replace what the tests look at
        yield DemoUI(url, checkout, sandbox.url, demo.stdout)
    finally:
        if process is not None:
            os.killpg(process.pid, signal.SIGKILL)  # dagster dev may ignore SIGINT in the background
            process.wait()
        sandbox.stop()


ASSET_MATERIALIZATIONS = """
query($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode { isPartitioned assetMaterializations { runId partition metadataEntries { label } } }
  }
}"""


def test_after_the_demo_the_ui_shows_every_activations_latest_sync_and_its_partitions(demo_ui):
    declared = sorted(yaml.safe_load((demo_ui.checkout / "data" / "activations.yaml").read_text())["activations"])
    shown = {name: demo_ui.graphql(ASSET_MATERIALIZATIONS, {"path": ["activations", name]})["assetNodeOrError"] for name in declared}
    never = [name for name, node in shown.items() if not node["assetMaterializations"]]
    assert not never, f"shown as never materialized after the demo: {never}"
    # every materialization carries the sync's metadata, and is one the ledger knows
    ledger_runs = {run for (run,) in demo_ui.sql("SELECT DISTINCT run_id FROM activation_state.sync_runs")}
    for name, node in shown.items():
        for materialization in node["assetMaterializations"]:
            assert "ledger_query" in {entry["label"] for entry in materialization["metadataEntries"]}, name
            assert materialization["runId"] in ledger_runs, name
    partitioned = {name for name, node in shown.items() if node["isPartitioned"]}
    assert partitioned >= {"orders_to_batch", "orders_to_dotdigital", "orders_to_synerise"}
    for name in partitioned:
        assert {m["partition"] for m in shown[name]["assetMaterializations"]} == DEMO_DAYS_SYNCED, name
    runs = demo_ui.graphql("{ runsOrError { ... on Runs { results { status } } } }")["runsOrError"]["results"]
    assert len(runs) >= DEMO_DAYS and {run["status"] for run in runs} == {"SUCCESS"}  # the demo's runs, in the UI's list
    assert str(demo_ui.checkout / ".dagster_home") in demo_ui.demo_output


def test_the_readmes_ledger_examples_answer_on_the_demos_data(demo_ui):
    """The README's queries, copied as a user would, each return rows on what the demo left."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The ledger", 1)[1].split("\n## ", 1)[0]
    queries = [q.strip() for block in re.findall(r"```sql\n(.*?)```", section, re.S) for q in block.split(";") if q.strip()]
    latest, history, failures = (demo_ui.sql(query) for query in queries)
    assert [(operation, in_platform) for operation, in_platform, *_ in latest] == [("upsert", True)]
    assert history and all(status == "confirmed" for *_, status, _message, _payload in history)
    if demo_ui.sql("SELECT count(*) FROM activation_state.sync_records WHERE status IN ('rejected', 'no_answer')")[0][0]:
        assert failures and all(message for *_, message in failures)  # a partial demo run: its rejections, with words
    # the shell example names the same record as the SQL ones
    assert re.findall(r"^activation-pipeline ledger \w+ (\S+)  ", section, re.M) == re.findall(r"key = '([^']+)'", queries[0])


# --------------------------------------------------------------------------- in a browser
def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    saved = ARTIFACTS / f"demo_{name}"  # test_ui_browser.py saves its own under the plain names
    page.screenshot(path=str(saved), full_page=False)
    if os.environ.get("UPDATE_SCREENSHOTS"):
        target = ROOT / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(saved, target / name)


def latest_run(demo_ui: DemoUI, activation: str) -> tuple[str, str] | None:
    """The newest run that materializes ``activation`` (the daemon may launch others meanwhile)."""
    runs = demo_ui.graphql("{ runsOrError(limit: 20) { ... on Runs { results { runId status assetSelection { path } } } } }")
    mine = [run for run in runs["runsOrError"]["results"] if ["activations", activation] in [key["path"] for key in run["assetSelection"] or []]]
    return (mine[0]["runId"], mine[0]["status"]) if mine else None


CHECKS = """
query($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    ... on AssetNode { assetChecksOrError { ... on AssetChecks { checks {
      name executionForLatestMaterialization { runId status evaluation { severity } } } } } }
  }
}"""


@pytest.mark.skipif(not CHROMIUM.exists() and not os.environ.get("CI"), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_activation_page_shows_the_summary_and_a_partial_sync_its_failing_check_and_the_platforms_messages(demo_ui):
    from playwright.sync_api import expect, sync_playwright

    # the partial sync: two of the products the next price refresh resends are refused by Batch
    refused = [sku for (sku,) in demo_ui.sql("SELECT sku FROM segments.in_stock_products ORDER BY sku LIMIT 2")]
    requests.post(f"{demo_ui.sandbox_url}/_sandbox/faults", json={"kind": "reject_ids", "ids": refused}, timeout=5).raise_for_status()
    url, before = demo_ui.url, latest_run(demo_ui, PARTIAL)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1500, "height": 950})

        # what the demo left: the activation's latest sync, its summary table at the top of the metadata
        page.goto(f"{url}/assets/activations/{SHOWN}", wait_until="networkidle")
        summary = page.locator("tr", has=page.locator("td", has_text=re.compile(rf"^\s*{SUMMARY_KEY}\s*$"))).first
        expect(summary).to_be_visible(timeout=60_000)
        for word in SUMMARY_WORDS:
            expect(summary).to_contain_text(word)
        summary.evaluate("row => row.scrollIntoView({block: 'center'})")  # the status above, the counts below
        page.wait_for_timeout(1000)
        shot(page, "activation_metadata.png")

        page.goto(f"{url}/assets/activations/{SHOWN}?view=lineage&lineageScope=upstream&lineageDepth=3", wait_until="networkidle")
        expect(page.get_by_text("sellable_products").first).to_be_visible(timeout=60_000)
        expect(page.get_by_text(re.compile(r"^\s*Loading"))).to_have_count(0, timeout=30_000)  # each node's status shown
        page.wait_for_timeout(1500)
        shot(page, "asset_graph.png")

        # a partitioned activation: every day the demo synced is materialized, each with its own counts
        page.goto(f"{url}/assets/activations/{PARTITIONED}?view=partitions", wait_until="networkidle")
        expect(page.get_by_text(re.compile(rf"Materialized \({DEMO_DAYS}\)")).first).to_be_visible(timeout=60_000)
        page.get_by_placeholder("Filter by name").fill(DEMO_LAST_ORDER_DAY.isoformat())
        page.get_by_text(DEMO_LAST_ORDER_DAY.isoformat(), exact=True).first.click()
        expect(page.get_by_text(SUMMARY_KEY, exact=True).first).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1000)
        shot(page, "partitions.png")

        # Materialize clicked on the activation the platform refuses two records of
        page.goto(f"{url}/assets/activations/{PARTIAL}", wait_until="networkidle")
        button = page.locator("button", has_text=re.compile(r"^\s*Materialize\s*$"))
        expect(button).to_be_visible(timeout=60_000)
        button.click()
        deadline, run = time.monotonic() + 180, before
        while time.monotonic() < deadline and (run is None or run == before or run[1] not in ("SUCCESS", "FAILURE", "CANCELED")):
            time.sleep(1)
            run = latest_run(demo_ui, PARTIAL)
        requests.delete(f"{demo_ui.sandbox_url}/_sandbox/faults", timeout=5)
        assert run and run != before and run[1] == "SUCCESS", run  # a partial sync fails no run: its check says so
        messages = [
            m
            for (m,) in demo_ui.sql(
                "SELECT message FROM activation_state.sync_records WHERE run_id = ? AND status = 'rejected' ORDER BY key", [run[0]]
            )
        ]
        assert len(messages) == len(refused) and all(sku in m for sku, m in zip(refused, messages, strict=True)), messages

        # its page: the failed-records table lists the platform's own words for each refused record
        page.goto(f"{url}/assets/activations/{PARTIAL}", wait_until="networkidle")
        failed = page.locator("tr", has=page.locator("td", has_text=re.compile(rf"^\s*{FAILED_RECORDS_KEY}\s*$"))).first
        expect(failed).to_be_visible(timeout=60_000)
        for sku, message in zip(refused, messages, strict=True):
            expect(failed).to_contain_text(sku)
            expect(failed).to_contain_text(message[-60:])
        page.set_viewport_size({"width": 1900, "height": 950})  # room for the messages
        failed.evaluate("row => row.scrollIntoView({block: 'start'})")
        page.wait_for_timeout(1000)
        shot(page, "failed_records.png")
        # and its check fails (a warning): the asset is not green
        page.set_viewport_size({"width": 1500, "height": 950})
        page.goto(f"{url}/assets/activations/{PARTIAL}?view=checks", wait_until="networkidle")
        expect(page.get_by_text(CHECK).first).to_be_visible(timeout=60_000)
        expect(page.get_by_text(re.compile(r"^\s*(Failed|Warning)\s*$")).first).to_be_visible(timeout=30_000)
        page.wait_for_timeout(1000)
        shot(page, "partial_sync.png")
        browser.close()

    checks = demo_ui.graphql(CHECKS, {"path": ["activations", PARTIAL]})["assetNodeOrError"]["assetChecksOrError"]["checks"]
    confirmed = {check["name"]: check["executionForLatestMaterialization"] for check in checks}[CHECK]
    assert (confirmed["runId"], confirmed["status"], confirmed["evaluation"]["severity"]) == (run[0], "FAILED", "WARN")
    # what the refusals left: the version the demo confirmed, in the ledger and in Batch (sent again next run)
    kept = demo_ui.sql("SELECT key, run_id FROM activation_state.latest_records WHERE activation = ? AND key IN ? ORDER BY key", [PARTIAL, refused])
    assert [key for key, _ in kept] == refused and run[0] not in {run_id for _, run_id in kept}
    held = requests.get(f"{demo_ui.sandbox_url}/_sandbox/batch/catalogs/prices/items", timeout=30).json()["items"]
    assert set(refused) <= set(held)
