"""Dagster's own automation: source files observed with their fingerprint as data version,
continuous activations synced by automation conditions, freshness policies on scheduled ones.

Conditions are evaluated with ``dagster.evaluate_automation_conditions`` on a real instance, the
file observer with ``build_sensor_context`` (its observations stored as the daemon stores them),
and freshness by Dagster's own daemon under ``dagster dev``, read over GraphQL as the UI reads it."""

from __future__ import annotations

import os
import shutil
import time
from datetime import timedelta
from pathlib import Path

import polars as pl
import requests
import yaml
from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    DefaultSensorStatus,
    Definitions,
    define_asset_job,
    evaluate_automation_conditions,
    materialize,
)

from activation_pipeline.asset_automation import searched_interval, shortest_interval
from activation_pipeline.config import load_config
from activation_pipeline.dagster_home import prepare_home
from activation_pipeline.definitions import build_definitions
from activation_pipeline_tests.conftest import (
    dagster_dev,
    dagster_materialize,
    expected_items,
    observe_source_files,
    product,
    requested,
    stop_wall_clock_automation,
)

ROOT = Path(__file__).resolve().parents[1]
DAY = "2026-10-29"


def demo_copy(tmp_path: Path, **activations: dict) -> Path:
    """The demo config and data in ``tmp_path``, with some activations' fields changed."""
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data" / "demo", data / "demo")
    document = yaml.safe_load((ROOT / "data" / "activations.yaml").read_text())
    for name, fields in activations.items():
        document["activations"][name].update(fields)
    (data / "activations.yaml").write_text(yaml.safe_dump(document, sort_keys=False))
    return data / "activations.yaml"


def load(config_path: Path, warehouse: Path) -> Definitions:
    return build_definitions(load_config(config_path), warehouse=warehouse)


def test_each_source_file_is_an_observable_asset_whose_data_version_is_its_fingerprint(tmp_path, instance):
    config_path = demo_copy(tmp_path)
    defs = load(config_path, tmp_path / "w.duckdb")
    graph = defs.resolve_asset_graph()
    for name in load_config(config_path).sources:
        node = graph.get(AssetKey(["source_files", name]))
        assert node.is_observable and not node.is_materializable
        assert AssetKey(["source_files", name]) in graph.get(AssetKey(["sources", name])).parent_keys
    # observing (the UI's Observe button runs the same function) records the file's version, or one per day
    files = [AssetKey(["source_files", "products"]), AssetKey(["source_files", "orders"])]
    job = define_asset_job("observe", selection=AssetSelection.assets(*files))
    observing = Definitions(assets=list(defs.assets), resources=defs.resources, jobs=[job])
    assert observing.resolve_job_def("observe").execute_in_process(instance=instance).success

    def versions(key: AssetKey, where: DagsterInstance = instance) -> dict[str | None, str]:
        observations = [r.asset_observation for r in where.fetch_observations(key, limit=1000).records]
        return {o.partition: o.tags["dagster/data_version"] for o in observations if o is not None}

    products = versions(files[0])
    assert list(products) == [None]
    days = versions(files[1])
    orders = pl.read_csv(config_path.parent / "demo" / "orders.csv", try_parse_dates=True)
    assert set(days) == {str(d) for d in orders["order_date"].cast(pl.Date).unique()}
    assert len(set(days.values())) == len(days)  # each day its own version
    # the observer sensor reports the same versions without a run
    with DagsterInstance.ephemeral() as fresh:
        observe_source_files(defs, fresh)
        assert versions(files[1], fresh) == days and versions(files[0], fresh) == products


def test_only_the_edited_day_of_a_partitioned_file_syncs_again_and_a_file_saved_unchanged_syncs_nothing(tmp_path, instance):
    config_path = demo_copy(tmp_path, orders_to_batch={"continuous": True})
    defs = load(config_path, tmp_path / "w.duckdb")
    lines = AssetKey(["sources", "order_lines"])  # the unpartitioned source the day's segment joins, as after a first sync
    assert materialize(list(defs.assets), selection=[lines], resources=defs.resources, instance=instance).success
    observed = observe_source_files(defs, instance)
    evaluation = evaluate_automation_conditions(defs, instance)
    assert requested(defs, evaluation) == {}

    demo = config_path.parent / "demo"
    (demo / "order_lines.csv").write_bytes((demo / "order_lines.csv").read_bytes())  # saved again, same rows
    orders = pl.read_csv(demo / "orders.csv", try_parse_dates=True)
    target = orders.filter(pl.col("order_date").cast(pl.Utf8) == DAY)["order_id"][0]
    orders.with_columns(pl.when(pl.col("order_id") == target).then(pl.col("total") + 1).otherwise(pl.col("total")).alias("total")).write_csv(
        demo / "orders.csv"
    )
    observed = observe_source_files(defs, instance, observed)
    evaluation = evaluate_automation_conditions(defs, instance, cursor=evaluation.cursor)
    assert requested(defs, evaluation) == {
        "sources/orders": {DAY},
        "segments/daily_orders": {DAY},
        "activations/orders_to_batch": {DAY},
    }


def test_a_continuous_activation_pushes_a_changed_file_to_the_platform(project, instance):
    project.add_activation(continuous=True)
    project.add_activation("nightly", base=project.case.activation, schedule="daily")  # same segment, not continuous
    rows = [product(i) for i in range(1, 6)]
    project.write_products(rows)
    project.materialize()
    defs = load(project.config_path, project.warehouse)
    evaluation = evaluate_automation_conditions(defs, instance)
    observed = observe_source_files(defs, instance)  # after the automation sensor's first tick, as may happen
    evaluation = evaluate_automation_conditions(defs, instance, cursor=evaluation.cursor)
    assert requested(defs, evaluation) == {}  # a file's first observation is its baseline, not a change

    rows = [*rows[:4], product(5, price=99.5), product(6)]
    project.write_products(rows)
    observe_source_files(defs, instance, observed)
    evaluation = evaluate_automation_conditions(defs, instance, cursor=evaluation.cursor)
    wanted = requested(defs, evaluation)
    assert wanted == {"sources/products": {None}, "segments/catalog": {None}, "activations/sync_products": {None}}
    project.reset_stats()
    # what the sensor's run does: those assets, in one run
    selection = [AssetKey.from_user_string(key) for key in wanted]
    assert materialize([*defs.assets, *defs.asset_checks], selection=selection, resources=defs.resources, instance=instance).success
    assert project.catalog() == expected_items(rows)
    assert project.stats()["items_received"] == 2  # the changed product and the new one, nothing else
    evaluation = evaluate_automation_conditions(defs, instance, cursor=evaluation.cursor)
    assert requested(defs, evaluation) == {}  # handled: nothing runs again until the next change


def test_another_activations_job_reloading_a_shared_file_unchanged_syncs_nothing_continuous(project, instance):
    """The nightly job of another activation reloads products.csv (unchanged) into sources.products: the
    continuous activation reading the same file is not new data and runs nothing; a real change still runs it."""
    project.add_activation(continuous=True)
    project.segments["in_stock"] = {"primary_key": "sku", "sql": "SELECT * FROM sources.products WHERE price > 0"}
    project.add_activation("nightly", base={**project.case.activation, "segment": "in_stock", "object": "nightly"}, schedule="daily")
    rows = [product(i) for i in range(1, 6)]
    project.write_products(rows)
    project.materialize()
    defs = load(project.config_path, project.warehouse)
    evaluation = evaluate_automation_conditions(defs, instance)
    observed = observe_source_files(defs, instance)
    evaluation = evaluate_automation_conditions(defs, instance, cursor=evaluation.cursor)
    assert requested(defs, evaluation) == {}

    nightly = [AssetKey(["sources", "products"]), AssetKey(["segments", "in_stock"]), AssetKey(["activations", "nightly"])]
    assert materialize([*defs.assets, *defs.asset_checks], selection=nightly, resources=defs.resources, instance=instance).success
    evaluation = evaluate_automation_conditions(defs, instance, cursor=evaluation.cursor)
    assert requested(defs, evaluation) == {}  # the same bytes: nothing for the continuous activation to do

    project.write_products([*rows[:4], product(5, price=99.5)])
    observe_source_files(defs, instance, observed)
    evaluation = evaluate_automation_conditions(defs, instance, cursor=evaluation.cursor)
    assert requested(defs, evaluation) == {"sources/products": {None}, "segments/catalog": {None}, "activations/sync_products": {None}}


def test_automation_runs_by_default_only_for_enabled_continuous_activations(tmp_path):
    demo = load(demo_copy(tmp_path / "demo"), tmp_path / "demo.duckdb")
    sensors = {s.name: s for s in demo.sensors}
    assert sensors["continuous_syncs"].default_status == sensors["observe_source_files"].default_status == DefaultSensorStatus.RUNNING
    graph = demo.resolve_asset_graph()
    conditioned = {key.to_user_string() for key in graph.get_all_asset_keys() if graph.get(key).automation_condition is not None}
    assert conditioned == {"sources/products", "sources/order_lines", "segments/sellable_products", "activations/products_to_batch"}

    quiet = load(demo_copy(tmp_path / "quiet", products_to_batch={"enabled": False}), tmp_path / "quiet.duckdb")
    sensors = {s.name: s for s in quiet.sensors}
    assert "continuous_syncs" not in sensors and sensors["observe_source_files"].default_status == DefaultSensorStatus.STOPPED
    graph = quiet.resolve_asset_graph()
    assert not [key for key in graph.get_all_asset_keys() if graph.get(key).automation_condition is not None]
    assert "default_automation_condition_sensor" not in {s.name for s in quiet.get_repository_def().sensor_defs}


def test_each_scheduled_enabled_activation_must_be_synced_within_its_schedule(tmp_path):
    config = load_config(demo_copy(tmp_path))
    defs = build_definitions(config, warehouse=tmp_path / "w.duckdb")
    graph = defs.resolve_asset_graph()

    def policy(name: str):
        return graph.get(AssetKey(["activations", name])).freshness_policy

    daily = policy("products_to_batch")
    assert (daily.deadline_cron, daily.lower_bound_delta, daily.timezone) == ("0 2 * * *", timedelta(days=1), "UTC")
    paris = policy("price_refresh_to_batch")
    assert (paris.deadline_cron, paris.lower_bound_delta, paris.timezone) == ("30 3 * * *", timedelta(days=1), "Europe/Paris")
    assert policy("discontinued_cleanup").lower_bound_delta == timedelta(hours=6)
    assert policy("in_stock_to_batch") is None  # enabled: false, its schedule stopped: nothing to be late for
    for name, activation in config.activations.items():
        assert (policy(name) is not None) == activation.auto_synced, name
    crons = ("0 * * * *", "*/20 * * * *", "0 9 * * 1-5", "0 3 * * 0", "15 8,20 * * *")
    expected = [timedelta(hours=1), timedelta(minutes=20), timedelta(days=1), timedelta(days=7), timedelta(hours=12)]
    assert [shortest_interval(c) for c in crons] == expected
    assert [searched_interval(c) for c in crons] == expected  # the search, should Dagster word its refusal otherwise


FRESHNESS = """query($path: [String!]!) { assetNodeOrError(assetKey: {path: $path}) { ... on AssetNode {
  freshnessStatusInfo { freshnessStatus freshnessStatusMetadata { lastMaterializedTimestamp } }
  internalFreshnessPolicy { ... on CronFreshnessPolicy { deadlineCron lowerBoundDeltaSeconds timezone } } } } }"""


ACTIVE_RUNS = "{ runsOrError(filter: {statuses: [QUEUED, NOT_STARTED, STARTING, STARTED]}) { ... on Runs { results { runId } } } }"


def test_a_stalled_sync_shows_as_failing_its_freshness_in_the_ui(project, sandbox, tmp_path):
    project.add_activation(schedule="* * * * *")  # any cron: every minute, so a missed tick shows within minutes
    project.write_products([product(i) for i in range(1, 4)])
    home = prepare_home(tmp_path / "dagster_home", ROOT / "dagster.yaml")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ACTIVATION_CONFIG": str(project.config_path),
        "ACTIVATION_WAREHOUSE": str(project.warehouse),
        "FRESHNESS_DAEMON_INTERVAL_SECONDS": "5",  # Dagster's freshness daemon looks every 5 s instead of 30
    }
    with dagster_dev(env, tmp_path) as url:
        assert "sync_sync_products_schedule" in stop_wall_clock_automation(url)  # the schedule stops: the sync stalls

        def freshness() -> dict:
            response = requests.post(f"{url}/graphql", json={"query": FRESHNESS, "variables": {"path": ["activations", "sync_products"]}}, timeout=60)
            return response.json()["data"]["assetNodeOrError"]

        def wait_for(status: str, seconds: float) -> dict:
            deadline, node = time.monotonic() + seconds, {}
            while time.monotonic() < deadline:
                node = freshness()
                if node["freshnessStatusInfo"]["freshnessStatus"] == status:
                    return node
                time.sleep(3)
            raise AssertionError(f"freshness never {status}: {node}")

        # a tick may have launched a sync before the schedule stopped: let it end, or this sync would be refused as concurrent
        deadline = time.monotonic() + 180
        while (
            time.monotonic() < deadline
            and requests.post(f"{url}/graphql", json={"query": ACTIVE_RUNS}, timeout=60).json()["data"]["runsOrError"]["results"]
        ):
            time.sleep(2)
        node = freshness()
        assert node["internalFreshnessPolicy"] == {"deadlineCron": "* * * * *", "lowerBoundDeltaSeconds": 60, "timezone": "UTC"}
        done = dagster_materialize("sources/products,segments/catalog,activations/sync_products", env, cwd=tmp_path)
        assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
        synced = wait_for("HEALTHY", 60)["freshnessStatusInfo"]["freshnessStatusMetadata"]["lastMaterializedTimestamp"]
        # no sync since: once a minute's tick passed without one, the activation shows as failing its freshness
        stalled = wait_for("DEGRADED", 240)
        assert stalled["freshnessStatusInfo"]["freshnessStatusMetadata"]["lastMaterializedTimestamp"] == synced
        assert time.time() - synced >= 60
