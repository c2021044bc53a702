"""Daily partitions, source to platform: each day is synced, diffed and recorded on its own."""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest
import requests
from dagster import build_sensor_context, materialize

from activation_pipeline.config import load_config
from activation_pipeline.definitions import build_definitions
from activation_pipeline.warehouse import read_warehouse
from activation_pipeline_tests.conftest import activation_selection

ROOT = Path(__file__).resolve().parents[1]
DAYS = ["2026-10-28", "2026-10-29", "2026-10-30"]
# the demo's partitioned Batch activation, with the segment and sources the config gives it
SELECTION = activation_selection(load_config(ROOT / "data" / "activations.yaml"), "orders_to_batch")


@pytest.fixture
def shop(tmp_path, sandbox, backend, monkeypatch):
    """The demo's config and data in a folder of its own; the warehouse (ACTIVATION_WAREHOUSE) is the test's backend."""
    monkeypatch.setenv("ACTIVATION_WAREHOUSE", backend.location)
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data" / "demo", data / "demo")
    shutil.copy(ROOT / "data" / "activations.yaml", data / "activations.yaml")
    return data


def sync_day(data: Path, day: str, instance) -> dict:
    defs = build_definitions(load_config(data / "activations.yaml"))
    result = materialize(
        list(defs.assets) + list(defs.asset_checks), selection=SELECTION, resources=defs.resources, partition_key=day, instance=instance
    )
    event = result.asset_materializations_for_node("activations__orders_to_batch")[0]
    assert event.partition == day
    return {k: getattr(v, "value", v) for k, v in event.metadata.items()}


def completed_orders(data: Path, days: list[str]) -> set[str]:
    orders = pl.read_csv(data / "demo" / "orders.csv", try_parse_dates=True)
    lines = set(pl.read_csv(data / "demo" / "order_lines.csv")["order_id"])
    chosen = orders.filter((pl.col("status") == "complete") & pl.col("order_date").cast(pl.Utf8).is_in(days))
    return {o for o in chosen["order_id"] if o in lines}


def catalog(sandbox) -> dict:
    return requests.get(f"{sandbox.url}/_sandbox/batch/catalogs/orders/items", timeout=10).json()["items"]


def ledger(data: Path, query: str) -> list[tuple]:
    with read_warehouse() as conn:
        return conn.fetch_all(query)


@pytest.mark.on_both_backends
def test_two_days_then_a_third_pushes_only_the_third_and_the_ledger_says_which_day(shop, sandbox, instance):
    for day in DAYS[:2]:
        sync_day(shop, day, instance)
    assert set(catalog(sandbox)) == completed_orders(shop, DAYS[:2])

    third = sync_day(shop, DAYS[2], instance)
    assert third["added_planned"] == len(completed_orders(shop, DAYS[2:])) > 0
    assert third["changed_planned"] == third["removed_planned"] == 0  # the other days are not in this diff
    assert set(catalog(sandbox)) == completed_orders(shop, DAYS)

    runs = ledger(
        shop, "SELECT partition_key, planned_added FROM activation_state.sync_runs WHERE activation = 'orders_to_batch' ORDER BY started_at"
    )
    assert [day for day, _ in runs] == DAYS
    per_day = dict(ledger(shop, "SELECT partition_key, count(*) FROM activation_state.sync_records WHERE activation = 'orders_to_batch' GROUP BY 1"))
    assert per_day == {day: len(completed_orders(shop, [day])) for day in DAYS}
    snapshot = dict(ledger(shop, 'SELECT partition_key, count(*) FROM activation_state."orders_to_batch" GROUP BY 1'))
    assert snapshot == per_day


@pytest.mark.on_both_backends
def test_a_rerun_day_sends_only_its_own_changes_and_mirrors_within_that_day(shop, sandbox, instance):
    for day in DAYS:
        sync_day(shop, day, instance)
    orders = pl.read_csv(shop / "demo" / "orders.csv", try_parse_dates=True)
    day_two = sorted(completed_orders(shop, [DAYS[1]]))
    changed, canceled = day_two[0], day_two[1]
    orders = orders.with_columns(
        pl.when(pl.col("order_id") == changed).then(pl.col("total") + 1).otherwise(pl.col("total")).alias("total"),
        pl.when(pl.col("order_id") == canceled).then(pl.lit("canceled")).otherwise(pl.col("status")).alias("status"),
    )
    orders.write_csv(shop / "demo" / "orders.csv")

    rerun = sync_day(shop, DAYS[1], instance)
    assert (rerun["changed_succeeded"], rerun["removed_succeeded"], rerun["added_planned"]) == (1, 1, 0)
    items = catalog(sandbox)
    assert canceled not in items and changed in items
    assert set(items) == completed_orders(shop, DAYS)
    # the other days' snapshots were not touched by day two's mirror
    untouched = ledger(
        shop,
        f"""SELECT partition_key, count(*) FROM activation_state."orders_to_batch"
                                 WHERE partition_key <> '{DAYS[1]}' GROUP BY 1 ORDER BY 1""",
    )
    assert untouched == [(DAYS[0], len(completed_orders(shop, [DAYS[0]]))), (DAYS[2], len(completed_orders(shop, [DAYS[2]])))]


def test_the_source_sensor_launches_only_the_days_whose_rows_changed(shop, instance):
    defs = build_definitions(load_config(shop / "activations.yaml"))
    sensor_def = next(s for s in defs.sensors if s.name == "source_files_changed")
    with build_sensor_context(instance=instance) as context:
        baseline = sensor_def.evaluate_tick(context).cursor
    orders = pl.read_csv(shop / "demo" / "orders.csv", try_parse_dates=True)
    target = orders.filter(pl.col("order_date").cast(pl.Utf8) == DAYS[1])["order_id"][0]
    orders.with_columns(pl.when(pl.col("order_id") == target).then(pl.lit(0.0)).otherwise(pl.col("total")).alias("total")).write_csv(
        shop / "demo" / "orders.csv"
    )
    with build_sensor_context(instance=instance, cursor=baseline, definitions=defs) as context:
        result = sensor_def.evaluate_tick(context)
    assert [r.partition_key for r in result.run_requests] == [DAYS[1]]
    config = load_config(shop / "activations.yaml")  # what reads orders.csv: the segments over it and their activations
    readers = {name for name, segment in config.segments.items() if "orders" in segment.referenced_tables("sources")}
    assert {k.to_user_string() for k in result.run_requests[0].asset_selection} == {
        "sources/orders",
        *(f"segments/{s}" for s in readers),
        *(f"activations/{name}" for name, a in config.activations.items() if a.segment in readers),
    }
    assert {"segments/daily_orders", "activations/orders_to_batch"} <= {k.to_user_string() for k in result.run_requests[0].asset_selection}


def test_an_unpartitioned_activation_in_a_daily_run_still_syncs_everything(shop, sandbox, instance):
    config = load_config(shop / "activations.yaml")
    defs = build_definitions(config)
    assets = list(defs.assets) + list(defs.asset_checks)
    mixed = [*SELECTION, *activation_selection(config, "products_to_batch")]
    for day in DAYS[:2]:  # a daily run that also holds unpartitioned assets (products), as sync_everything does
        assert materialize(assets, selection=mixed, resources=defs.resources, partition_key=day, instance=instance).success
    rows = ledger(shop, """SELECT partition_key, count(*) FROM activation_state."products_to_batch" GROUP BY 1""")
    assert rows == [(None, len(requests.get(f"{sandbox.url}/_sandbox/batch/catalogs/products/items", timeout=10).json()["items"]))]
    assert ledger(shop, "SELECT DISTINCT partition_key FROM activation_state.sync_runs WHERE activation = 'products_to_batch'") == [(None,)]
