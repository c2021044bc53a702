"""Regressions found reviewing #10: a failed retarget, exact decimals, Parquet dates, line numbers, quoted empty cells."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import polars as pl
import pytest
import requests

from activation_pipeline_tests.conftest import product, reset_stats, sandbox_stats
from activation_pipeline_tests.test_retargeting import retarget, snapshot
from activation_pipeline_tests.test_source_files import SourceProject, failure
from activation_pipeline_tests.test_sync_modes import metadata

ROWS = [product(i) for i in range(1, 11)]


@pytest.fixture
def files(tmp_path, sandbox, instance) -> SourceProject:
    return SourceProject(tmp_path, sandbox, instance)


def test_a_retarget_whose_push_fails_keeps_the_old_snapshot_so_reverting_resends_nothing(project):
    project.add_activation()
    project.write_products(ROWS)
    project.materialize()
    before = snapshot(project)
    retarget(project, object="products_v2")
    project.fault(kind="status", status=401, count=1000)

    assert not project.materialize(raise_on_error=False).success

    requests.delete(f"{project.sandbox.url}/_sandbox/faults", timeout=5).raise_for_status()
    assert snapshot(project) == before  # nothing was confirmed in products_v2: the old snapshot still holds
    retarget(project, object="products")  # the user reverts
    reset_stats(project.sandbox)
    result = metadata(project.materialize())
    assert "retargeted" not in result
    assert (result["unchanged_skipped"], result.get("added_planned", 0)) == (10, 0)
    assert sandbox_stats(project.sandbox)["items_received"] == 0  # counted by the platform: nothing resent


def test_a_decimal_written_with_an_exponent_is_not_rounded_to_zero(files):
    files.source = {"columns": {"price": "decimal(10,2)"}}
    message = failure(files.load_source(b"sku,name,price,brand\nSKU-1,Mug,1e2,Acme\nSKU-2,Cup,1.5e-3,Acme\n"))
    assert message == "sources.products: products.csv: line 3, column price: '1.5e-3' is not a decimal(10,2) (at most 2 decimals)"
    assert files.load_source(b"sku,name,price,brand\nSKU-1,Mug,1e2,Acme\nSKU-2,Cup,1.25E1,Acme\n").success
    assert [row[2] for row in files.table()] == [Decimal("100.00"), Decimal("12.50")]


def test_a_parquet_timestamp_declared_a_date_keeps_its_time_or_fails(files):
    files.file_name = "products.parquet"
    pl.DataFrame(
        {
            "sku": ["SKU-1", "SKU-2"],
            "name": ["Mug", "Cup"],
            "price": [1.0, 2.0],
            "brand": ["A", "B"],
            "launched": [datetime(2024, 1, 1), datetime(2024, 1, 2, 10, 30)],
        }
    ).write_parquet(files.root / "products.parquet")
    files.source = {"columns": {"launched": "date"}}
    assert failure(files.load_source()) == (
        "sources.products: products.parquet: row 2, column launched: 2024-01-02 10:30:00 is not a date (YYYY-MM-DD)"
    )


def test_a_blank_line_in_a_one_column_file_counts_in_the_line_number(files):
    files.segment_sql = "SELECT sku FROM sources.products"
    files.source = {"columns": {"sku": "integer"}}
    assert failure(files.load_source(b"sku\n1\n\nfoo\n")) == "sources.products: products.csv: line 4, column sku: 'foo' is not an integer (64-bit)"


def test_a_quoted_empty_cell_stays_an_empty_string_and_an_empty_cell_is_null(files):
    assert files.load_source(b'sku,name,price,brand\nSKU-1,"",1,\nSKU-2,Cup,2,Acme\n').success
    assert files.table() == [("SKU-1", "", 1, None), ("SKU-2", "Cup", 2, "Acme")]


def test_a_quoted_empty_cell_of_a_declared_typed_column_is_null(files):
    files.source = {"columns": {"price": "double"}}
    assert files.load_source(b'"sku","name","price","brand"\n"SKU-1","Mug","","Acme"\n"SKU-2","Cup","2.5",""\n').success
    assert files.table() == [("SKU-1", "Mug", None, "Acme"), ("SKU-2", "Cup", 2.5, "")]
