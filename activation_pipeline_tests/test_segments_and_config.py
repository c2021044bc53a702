"""Segments land in DuckDB with their checks; a broken config fails the load naming the field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from activation_pipeline.config import ConfigError, load_config
from activation_pipeline_tests.conftest import product


def test_segment_is_stored_with_row_count_schema_and_preview(project):
    project.add_activation()
    project.write_products([product(i) for i in range(1, 8)])
    result = project.materialize()
    segment = result.asset_materializations_for_node("segments__catalog")[0].metadata
    assert segment["dagster/row_count"].value == 7
    assert [c.name for c in segment["dagster/column_schema"].schema.columns] == ["sku", "name", "price", "brand"]
    assert "SKU-0001" in segment["preview"].value
    assert project.sql("SELECT count(*) FROM segments.catalog") == [(7,)]


def test_null_and_duplicate_keys_fail_the_blocking_checks_and_stop_the_sync(project):
    project.add_activation()
    rows = [product(i) for i in range(1, 6)] + [product(3, price=1.0), product(4), {"sku": "", "name": "no key", "price": 1, "brand": "x"}]
    project.write_products(rows)
    result = project.materialize(raise_on_error=False)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["primary_key_not_null"].passed
    assert "1 of 8 rows" in checks["primary_key_not_null"].description
    assert not checks["primary_key_unique"].passed
    assert "SKU-0003 (x2)" in checks["primary_key_unique"].description and "SKU-0004 (x2)" in checks["primary_key_unique"].description
    assert result.asset_materializations_for_node("activations__sync_products") == []
    assert project.catalog() == {}


def test_an_activation_run_alone_never_sends_null_or_duplicate_keys(project):
    """Even without the checks (activation materialized on its own), bad keys are invalid, not sent."""
    from activation_pipeline_tests.test_sync_modes import metadata

    project.add_activation()
    project.write_products([product(1), product(2), product(2, price=5.0), {"sku": "", "name": "x", "price": 1, "brand": "x"}])
    project.materialize(raise_on_error=False)
    from dagster import AssetKey, materialize

    from activation_pipeline.definitions import build_definitions

    defs = build_definitions(load_config(project.config_path), warehouse=project.warehouse)
    result = materialize(
        list(defs.assets), selection=[AssetKey(["activations", "sync_products"])], resources=defs.resources, instance=project.instance
    )
    meta = metadata(result)
    assert (meta["invalid"], meta["added_succeeded"]) == (3, 1)
    assert set(project.catalog()) == {"SKU-0001"}
    reasons = {m for (m,) in project.sql("SELECT message FROM activation_state.sync_records WHERE status = 'invalid'")}
    assert reasons == {"primary key is null", "primary key appears 2 times in the segment"}


def write(tmp_path: Path, document) -> Path:
    path = tmp_path / "activations.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return path


def valid_document() -> dict:
    return {
        "sources": {"products": {"path": "products.csv"}},
        "segments": {"catalog": {"primary_key": "sku", "sql": "SELECT * FROM sources.products"}},
        "destinations": {"shop": {"platform": "batch", "secrets": {"rest_api_key": "BATCH_REST_API_KEY"}}},
        "activations": {"to_batch": {"segment": "catalog", "destination": "shop", "object": "products"}},
    }


@pytest.mark.parametrize(
    "edit, where, says",
    [
        (lambda d: d["activations"]["to_batch"].update(modee="full_only"), "activations.to_batch.modee", "unknown field"),
        (lambda d: d["activations"]["to_batch"].update(mode="sometimes"), "activations.to_batch.mode", "'full_then_delta' or 'full_only'"),
        (lambda d: d["activations"]["to_batch"].update(segment="nope"), "activations.to_batch.segment", "declared: catalog"),
        (lambda d: d["activations"]["to_batch"].update(max_items_per_request=500), "activations.to_batch.max_items_per_request", "limit of 200"),
        (
            lambda d: d["activations"]["to_batch"].update(custom_attributes=["Brand Name"]),
            "activations.to_batch.custom_attributes",
            "lowercase letters",
        ),
        (lambda d: d["activations"]["to_batch"].update(schedule="fortnightly"), "activations.to_batch.schedule", "5-field cron"),
        (lambda d: d["activations"]["to_batch"].pop("object"), "activations.to_batch.object", "required"),
        (lambda d: d["destinations"]["shop"].update(platform="mailchimp"), "destinations.shop.platform", "allowed: batch"),
        (
            lambda d: d["destinations"]["shop"]["secrets"].update(rest_api_key="sk_live_123"),
            "destinations.shop.secrets.rest_api_key",
            "environment variable",
        ),
        (lambda d: d["segments"]["catalog"].update(sql="SELECT * FROM sources.prodcts"), "segments.catalog.sql", "sources.prodcts"),
    ],
)
def test_a_broken_config_names_file_entry_and_field(tmp_path, edit, where, says):
    document = valid_document()
    edit(document)
    path = write(tmp_path, document)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert message.startswith(str(path)) and where in message and says in message


def test_invalid_yaml_reports_the_line(tmp_path):
    path = write(tmp_path, "sources:\n  products: {path: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+: not valid YAML"):
        load_config(path)


def test_the_code_location_refuses_to_load_a_broken_config(tmp_path):
    document = valid_document()
    document["activations"]["to_batch"]["operation"] = "mirror_everything"
    path = write(tmp_path, document)
    env = {**os.environ, "ACTIVATION_CONFIG": str(path), "ACTIVATION_WAREHOUSE": str(tmp_path / "w.duckdb")}
    completed = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "activation_pipeline.definitions"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode != 0
    assert "activations.to_batch.operation" in completed.stdout + completed.stderr


def test_the_bundled_demo_config_is_valid():
    config = load_config(Path(__file__).parents[1] / "data" / "activations.yaml")
    modes = {(a.mode, a.operation) for a in config.activations.values()}
    assert {("full_then_delta", "mirror"), ("full_then_delta", "upsert"), ("full_only", "upsert"), ("full_only", "delete_only")} <= modes


def test_column_lineage_runs_from_source_columns_to_platform_fields(project):
    project.add_activation()
    project.write_products([product(i) for i in range(1, 4)])
    result = project.materialize()
    segment = result.asset_materializations_for_node("segments__catalog")[0].metadata["dagster/column_lineage"].value
    assert [(d.asset_key.path, d.column_name) for d in segment.deps_by_column["price"]] == [(["sources", "products"], "price")]
    activation = result.asset_materializations_for_node("activations__sync_products")[0].metadata["dagster/column_lineage"].value
    assert {f: (d[0].asset_key.path, d[0].column_name) for f, d in activation.deps_by_column.items()} == {
        "name": (["segments", "catalog"], "name"),
        "price": (["segments", "catalog"], "price"),
        "brand": (["segments", "catalog"], "brand"),
        "id": (["segments", "catalog"], "sku"),
    }
