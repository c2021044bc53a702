"""Scoped activations (store views): each scope is its own partition of the activation, with
its own snapshot and ledger rows, synced against real HTTP to the sandbox."""

from __future__ import annotations

import pytest

from activation_pipeline.config import ConfigError, load_config

SCOPE = {"column": "brand", "values": ["acme", "globex"]}


def rows(changes: dict[str, dict] | None = None, drop: tuple[str, ...] = ()) -> list[dict]:
    base = {
        f"SKU-{i}": {"sku": f"SKU-{i}", "name": f"Product {i}", "price": 10.0 + i, "brand": "acme" if i <= 4 else ("globex" if i <= 7 else "initech")}
        for i in range(1, 9)
    }
    for sku, fields in (changes or {}).items():
        base[sku].update(fields)
    return [row for sku, row in base.items() if sku not in drop]


def held(project, scope: str) -> dict[str, float]:
    return {sku: item["price"] for sku, item in project.catalog(f"products_{scope}").items()}


@pytest.fixture
def scoped(project):
    project.add_activation(
        object="products_{scope}",
        mode="full_then_delta",
        operation="mirror",
        mapping={"name": "name", "price": "price"},
        custom_attributes=[],
        scope=SCOPE,
        max_delete_fraction=1.0,
    )
    return project


@pytest.mark.on_both_backends
def test_each_scope_has_its_own_object_snapshot_and_ledger_rows(scoped):
    scoped.write_products(rows())
    result = scoped.materialize()

    assert held(scoped, "acme") == {f"SKU-{i}": 10.0 + i for i in range(1, 5)}
    assert held(scoped, "globex") == {f"SKU-{i}": 10.0 + i for i in range(5, 8)}
    assert scoped.catalog("products_initech") == {}  # rows outside every listed scope are not sent
    assert dict(scoped.sql('SELECT partition_key, count(*) FROM activation_state."sync_products" GROUP BY partition_key')) == {"acme": 4, "globex": 3}
    assert dict(scoped.sql("SELECT partition_key, count(*) FROM activation_state.sync_records GROUP BY partition_key")) == {"acme": 4, "globex": 3}
    assert sorted(scoped.sql("SELECT partition_key, status, planned_added FROM activation_state.sync_runs")) == [
        ("acme", "succeeded", 4),
        ("globex", "succeeded", 3),
    ]
    metadata = result.asset_materializations_for_node("activations__sync_products")[0].metadata
    assert metadata["added_succeeded"].value == 7
    scopes = {r.data["scope"]: (r.data["status"], r.data["added"], r.data["snapshot"]) for r in metadata["scopes"].value.records}
    assert scopes == {"acme": ("succeeded", 4, 4), "globex": ("succeeded", 3, 3)}


@pytest.mark.on_both_backends
def test_a_run_can_sync_some_scopes_and_a_moved_record_follows_its_scope(scoped):
    scoped.write_products(rows())
    scoped.materialize()
    # SKU-1 changes price, SKU-2 leaves, SKU-5 moves from globex to acme
    scoped.write_products(rows({"SKU-1": {"price": 99.0}, "SKU-5": {"brand": "acme"}}, drop=("SKU-2",)))

    scoped.materialize(run_config={"scopes": ["globex"]})
    assert held(scoped, "globex") == {"SKU-6": 16.0, "SKU-7": 17.0}
    assert held(scoped, "acme") == {f"SKU-{i}": 10.0 + i for i in range(1, 5)}  # not run: untouched

    scoped.materialize()
    assert held(scoped, "acme") == {"SKU-1": 99.0, "SKU-3": 13.0, "SKU-4": 14.0, "SKU-5": 15.0}
    assert held(scoped, "globex") == {"SKU-6": 16.0, "SKU-7": 17.0}
    history = scoped.sql(
        "SELECT partition_key, key, operation FROM activation_state.record_history "
        "WHERE key IN ('SKU-2', 'SKU-5') AND change <> 'added' ORDER BY 1, 2, 3"
    )
    assert history == [("acme", "SKU-2", "delete"), ("globex", "SKU-5", "delete")]
    latest = scoped.sql("SELECT partition_key, in_platform FROM activation_state.latest_records WHERE key = 'SKU-5' ORDER BY 1, 2")
    assert latest == [("acme", True), ("globex", False)]


def test_an_unknown_scope_in_run_config_fails_and_sends_nothing(scoped):
    scoped.write_products(rows())
    result = scoped.materialize(run_config={"scopes": ["hooli"]}, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure and "activations" in (e.step_key or ""))
    assert "run config scopes ['hooli'] are not among its scopes ['acme', 'globex']" in str(failure.event_specific_data.error)
    assert scoped.catalog("products_acme") == {}
    assert (
        scoped.sql("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'activation_state' AND table_name = 'sync_runs'")[0][0] == 0
    )


def test_scope_config_errors_name_the_field(scoped):
    scoped.activations["sync_products"]["scope"] = {"column": "brand", "values": ["acme", "acme"]}
    scoped.write_config()
    with pytest.raises(ConfigError, match=r"activations.sync_products.*scope.*listed twice"):
        load_config(scoped.config_path)
    scoped.activations["sync_products"]["scope"] = {"column": "brand", "values": ["../x"]}
    scoped.write_config()
    with pytest.raises(ConfigError, match=r"scope.*letters, digits"):
        load_config(scoped.config_path)
    del scoped.activations["sync_products"]["scope"]
    scoped.write_config()
    with pytest.raises(ConfigError, match=r"object.*\{scope\}"):
        load_config(scoped.config_path)


def test_a_missing_scope_column_is_named(scoped):
    scoped.activations["sync_products"]["scope"] = {"column": "store_view", "values": ["acme"]}
    scoped.write_products(rows())
    scoped.write_config()
    result = scoped.materialize(raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure and "activations" in (e.step_key or ""))
    assert "scope.column: column 'store_view' is not in" in str(failure.event_specific_data.error)
