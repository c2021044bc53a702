"""The assets on either warehouse (``on_both_backends``: a DuckDB file and a PostgreSQL database):
a partitioned source file loads one day at a time and a partitioned segment's SQL runs over it in
the warehouse, each day replaced on its own; a failed load keeps what was loaded. Real Dagster
materializations, real files, a real Postgres (postgres_server.py)."""

from __future__ import annotations

from typing import Any

import pytest
from dagster import AssetKey, materialize

from activation_pipeline.config import load_config
from activation_pipeline.definitions import build_definitions
from activation_pipeline_tests.conftest import Project
from activation_pipeline_tests.test_source_files import failure

ORDERS = ["order_id", "order_date", "sku", "amount"]


def run(project: Project, keys: list[list[str]], partition: str | None = None) -> Any:
    defs = build_definitions(load_config(project.config_path), warehouse=project.warehouse)
    assets = list(defs.assets or []) + list(defs.asset_checks or [])
    return materialize(
        assets,
        selection=[AssetKey(k) for k in keys],
        resources=defs.resources,
        instance=project.instance,
        partition_key=partition,
        raise_on_error=False,
    )


@pytest.fixture
def orders(project: Project) -> Project:
    project.partitions = {"start_date": "2026-10-01"}
    project.tables["orders"] = ORDERS
    project.sources = {"orders": {"path": "orders.csv", "partition_column": "order_date"}}
    project.segments = {
        "big_orders": {"primary_key": "order_id", "sql": "SELECT order_id, order_date, amount FROM sources.orders WHERE amount >= 10"}
    }
    project.write_orders(
        [
            {"order_id": "A1", "order_date": "2026-10-28", "sku": "SKU-1", "amount": 12.5},
            {"order_id": "A2", "order_date": "2026-10-28", "sku": "SKU-2", "amount": 3},
            {"order_id": "B1", "order_date": "2026-10-29", "sku": "SKU-1", "amount": 40},
        ]
    )
    project.write_config()
    return project


@pytest.mark.on_both_backends
def test_a_partitioned_source_and_segment_replace_one_day_at_a_time(orders: Project) -> None:
    keys = [["sources", "orders"], ["segments", "big_orders"]]
    for day in ("2026-10-28", "2026-10-29"):
        assert run(orders, keys, day).success
    assert orders.sql("SELECT order_id, CAST(order_date AS VARCHAR), amount FROM sources.orders ORDER BY order_id") == [
        ("A1", "2026-10-28", 12.5),
        ("A2", "2026-10-28", 3.0),
        ("B1", "2026-10-29", 40.0),
    ]
    assert orders.sql("SELECT order_id FROM segments.big_orders ORDER BY order_id") == [("A1",), ("B1",)]

    # the 28th edited: only that day is replaced, in the source and in the segment
    orders.write_orders(
        [
            {"order_id": "A1", "order_date": "2026-10-28", "sku": "SKU-1", "amount": 1},
            {"order_id": "A3", "order_date": "2026-10-28", "sku": "SKU-3", "amount": 99},
            {"order_id": "B1", "order_date": "2026-10-29", "sku": "SKU-1", "amount": 5},  # not reloaded: the 29th is not run
        ]
    )
    result = run(orders, keys, "2026-10-28")
    assert result.success
    assert orders.sql("SELECT order_id, amount FROM sources.orders ORDER BY order_id") == [("A1", 1.0), ("A3", 99.0), ("B1", 40.0)]
    assert orders.sql("SELECT order_id FROM segments.big_orders ORDER BY order_id") == [("A3",), ("B1",)]
    assert result.asset_materializations_for_node("segments__big_orders")[0].partition == "2026-10-28"


@pytest.mark.on_both_backends
def test_a_bad_file_fails_naming_the_line_and_keeps_the_table(orders: Project) -> None:
    orders.sources["orders"]["columns"] = {"amount": "double"}
    orders.write_config()
    assert run(orders, [["sources", "orders"]], "2026-10-28").success
    (orders.root / "orders.csv").write_text("order_id,order_date,sku,amount\nA1,2026-10-28,SKU-1,twelve\n")
    message = failure(run(orders, [["sources", "orders"]], "2026-10-28"))
    assert message == "sources.orders: orders.csv: line 2, column amount: 'twelve' is not a double"
    assert orders.sql("SELECT order_id, amount FROM sources.orders ORDER BY order_id") == [("A1", 12.5), ("A2", 3.0)]
