"""Mistakes caught before a run (a mapping to a column the segment lacks) and ``after:`` between
activations (validated at load, drawn as lineage, honoured in a run that selects both)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import requests
from dagster import AssetKey

from activation_pipeline.config import ConfigError, load_config
from activation_pipeline.definitions import build_definitions
from activation_pipeline_tests.conftest import expected_items, product

ROOT = Path(__file__).resolve().parents[1]
ROWS = [product(i) for i in range(1, 6)]


def validate(project) -> subprocess.CompletedProcess:
    env = {**os.environ, "ACTIVATION_CONFIG": str(project.config_path), "ACTIVATION_WAREHOUSE": str(project.warehouse), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "activation_pipeline.definitions"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=project.root,
    )


def total_requests(sandbox) -> int:
    return requests.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()["batch"]["total_requests"]


# --------------------------------------------------------------------------- columns


@pytest.mark.on_both_backends
def test_a_mapping_to_a_missing_column_fails_definitions_validate_once_the_warehouse_holds_the_segment(project):
    project.add_activation()
    project.write_products(ROWS)
    project.materialize()
    assert validate(project).returncode == 0

    project.activations["sync_products"]["mapping"] = {"name": "name", "price": "list_price"}
    project.write_config()
    completed = validate(project)

    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert "activations.sync_products.mapping.price: column 'list_price' is not in segments.catalog" in output
    assert "sku, name, price, brand" in output
    assert project.catalog() == expected_items(ROWS) and project.snapshot_keys() == {r["sku"] for r in ROWS}


def test_a_mapping_to_a_missing_column_on_a_first_run_fails_before_any_request(project, sandbox):
    project.add_activation(mapping={"name": "name", "price": "price", "colour": "colour"})
    project.write_products(ROWS)
    requests.post(f"{sandbox.url}/_sandbox/stats/reset", timeout=5).raise_for_status()

    result = project.materialize(raise_on_error=False)  # no warehouse yet when the definitions load: the run refuses

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure and "activations" in (e.step_key or ""))
    message = str(failure.event_specific_data.error.message)
    assert "activations.sync_products.mapping.colour: column 'colour' is not in" in message and "sku, name, price, brand" in message
    assert total_requests(sandbox) == 0 and project.catalog() == {}


@pytest.mark.on_both_backends
def test_a_column_mapped_with_the_sql_that_adds_it_loads_before_the_segment_is_rebuilt(project):
    project.add_activation()
    project.write_products(ROWS)
    project.materialize()
    project.segment_sql = "SELECT sku, name, price, brand, upper(brand) AS label FROM sources.products"
    project.add_activation(custom_attributes=["brand", "label"])
    assert validate(project).returncode == 0  # the stored table is from the old SQL: its materialization decides
    project.materialize()
    assert project.catalog()["SKU-0001"]["label"] == "ACME"


def test_a_warehouse_held_by_a_writer_does_not_fail_the_load(project):
    project.add_activation()
    project.write_products(ROWS)
    project.materialize()
    project.activations["sync_products"]["mapping"] = {"name": "name", "price": "list_price"}
    project.write_config()
    with duckdb.connect(str(project.warehouse)):  # a running writer in another process
        completed = validate(project)
    assert completed.returncode == 0, completed.stderr[-2000:]


# --------------------------------------------------------------------------- after:


def test_after_names_an_existing_activation_and_no_cycle(project):
    project.add_activation("contacts")
    project.add_activation("orders", after=["contact"])
    with pytest.raises(ConfigError, match=r"activations\.orders\.after: 'contact' is not another declared activation; declared: contacts"):
        load_config(project.config_path)
    project.add_activation("orders", after=["contacts"])
    project.add_activation("contacts", after=["orders"])
    with pytest.raises(ConfigError, match=r"activations\.\w+\.after: a cycle: (contacts -> orders -> contacts|orders -> contacts -> orders)"):
        load_config(project.config_path)
    project.add_activation("contacts", after=["contacts"])
    with pytest.raises(ConfigError, match=r"activations\.contacts\.after: 'contacts' is not another declared activation"):
        load_config(project.config_path)


def test_after_is_lineage_and_orders_a_run_that_selects_both(project):
    # named so that, without the dependency, "a_orders" would run first
    project.add_activation("z_contacts", object="contacts")
    project.add_activation("a_orders", object="orders", after=["z_contacts"])
    project.write_products(ROWS)
    defs = build_definitions(load_config(project.config_path), warehouse=project.warehouse)
    [spec] = defs.get_assets_def(AssetKey(["activations", "a_orders"])).specs
    assert AssetKey(["activations", "z_contacts"]) in {dep.asset_key for dep in spec.deps}

    from dagster import materialize

    selection = [
        AssetKey(["sources", "products"]),
        AssetKey(["segments", "catalog"]),
        AssetKey(["activations", "a_orders"]),
        AssetKey(["activations", "z_contacts"]),
    ]
    result = materialize(list(defs.assets) + list(defs.asset_checks), selection=selection, resources=defs.resources, instance=project.instance)
    order = [e.step_key for e in result.all_events if e.event_type_value == "STEP_START"]
    assert order.index("activations__z_contacts") < order.index("activations__a_orders")
    runs = project.sql("SELECT activation FROM activation_state.sync_runs ORDER BY started_at")
    assert runs == [("z_contacts",), ("a_orders",)]
    assert set(project.catalog("contacts")) == set(project.catalog("orders")) == {r["sku"] for r in ROWS}


def test_an_activations_own_job_does_not_run_the_activations_it_runs_after(project):
    project.add_activation("contacts", object="contacts")
    project.add_activation("orders", object="orders", after=["contacts"])
    defs = build_definitions(load_config(project.config_path), warehouse=project.warehouse)
    selected = defs.resolve_job_def("sync_orders").asset_layer.selected_asset_keys
    assert selected == {AssetKey(["sources", "products"]), AssetKey(["segments", "catalog"]), AssetKey(["activations", "orders"])}
