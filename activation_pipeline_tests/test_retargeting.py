"""Retargeting (a changed destination, object, identifier or identifier kind) and schema drift of a
mapped column: never a silent no-op, never a silent overwrite of a typed field. Real
materializations against the sandbox; the platform's side is read from the sandbox itself."""

from __future__ import annotations

from typing import Any

import duckdb

from activation_pipeline_tests.conftest import expected_items, product, reset_stats, sandbox_stats
from activation_pipeline_tests.test_safeguards_and_secrets import failure_message
from activation_pipeline_tests.test_sync_modes import metadata
from activation_pipeline_tests.test_yotpo import person, yotpo  # noqa: F401  (the Yotpo project fixture)

ROWS = [product(i) for i in range(1, 11)]
OLD = "batch_test/products (identifier sku)"
NEW = "batch_test/products_v2 (identifier sku)"


def items_received(project) -> int:
    return sandbox_stats(project.sandbox)["items_received"]


def last_run(project, activation: str = "sync_products") -> tuple[str, str]:
    return project.sql("SELECT status, target FROM activation_state.sync_runs WHERE activation = ? ORDER BY started_at DESC LIMIT 1", [activation])[0]


def snapshot(project, activation: str = "sync_products") -> set[tuple[Any, ...]]:
    return set(project.sql(f'SELECT key, row_hash, identifier FROM activation_state."{activation}"'))


def retarget(project, **changes: Any) -> None:
    project.activations["sync_products"].update(changes)
    project.write_config()


def test_a_changed_object_is_a_first_sync_of_the_new_catalog_and_the_old_one_keeps_its_items(project):
    project.add_activation()
    project.write_products(ROWS)
    project.materialize()
    retarget(project, object="products_v2")

    result = metadata(project.materialize())

    assert result["retargeted"] == f"{OLD} -> {NEW}"
    assert (result["added_planned"], result["added_succeeded"], result["unchanged_skipped"]) == (10, 10, 0)
    assert project.catalog("products_v2") == expected_items(ROWS)
    assert project.catalog("products") == expected_items(ROWS)  # left where it was: the engine no longer addresses it
    assert last_run(project) == ("succeeded", NEW)
    assert project.sql("SELECT DISTINCT target FROM activation_state.retired_snapshots") == [(OLD,)]
    assert project.sql("SELECT count(*) FROM activation_state.retired_snapshots") == [(10,)]
    again = metadata(project.materialize())  # the new target is now the recorded one
    assert (again["unchanged_skipped"], "retargeted" in again) == (10, False)


def test_a_changed_identifier_column_is_a_first_sync(project):
    project.add_activation()
    project.write_products(ROWS)
    project.materialize()
    retarget(project, identifier="name")

    result = metadata(project.materialize())

    assert result["retargeted"] == f"{OLD} -> batch_test/products (identifier name)"
    assert result["added_succeeded"] == 10
    held = project.catalog()
    assert {r["name"] for r in ROWS} <= set(held) and {r["sku"] for r in ROWS} <= set(held)
    assert {row[2] for row in snapshot(project)} == {r["name"] for r in ROWS}


def test_a_dry_run_reports_the_retarget_and_changes_nothing(project):
    project.add_activation()
    project.write_products(ROWS)
    project.materialize()
    before = snapshot(project)
    retarget(project, object="products_v2")

    result = metadata(project.materialize(run_config={"dry_run": True}))

    assert (result["status"], result["retargeted"], result["added_planned"]) == ("dry_run", f"{OLD} -> {NEW}", 10)
    assert project.catalog("products_v2") == {}
    assert snapshot(project) == before
    assert project.sql("SELECT target FROM activation_state.snapshot_targets") == [(OLD,)]
    assert project.sql("SELECT count(*) FROM activation_state.retired_snapshots") == [(0,)]


def test_a_mirror_retarget_is_refused_naming_both_targets_until_allowed(project):
    project.add_activation(mode="full_then_delta", operation="mirror")
    project.write_products(ROWS)
    project.materialize()
    before = snapshot(project)
    retarget(project, object="products_v2")
    reset_stats(project.sandbox)

    refused = project.materialize(raise_on_error=False)

    message = failure_message(refused)
    assert OLD in message and NEW in message and "allow_retarget: true" in message and "10 records" in message
    assert items_received(project) == 0
    assert project.catalog("products_v2") == {}
    assert snapshot(project) == before
    assert last_run(project) == ("refused", NEW)

    allowed = metadata(project.materialize(run_config={"allow_retarget": True}))
    assert (allowed["retargeted"], allowed["added_succeeded"], allowed["removed_planned"]) == (f"{OLD} -> {NEW}", 10, 0)
    assert project.catalog("products_v2") == expected_items(ROWS)
    assert project.catalog("products") == expected_items(ROWS)


def test_a_snapshot_from_before_targets_were_recorded_is_adopted_without_a_resend(project):
    project.add_activation()
    project.write_products(ROWS)
    project.materialize()
    with duckdb.connect(str(project.warehouse)) as conn:  # the warehouse as an earlier version left it
        conn.execute("DROP TABLE activation_state.snapshot_targets")
        conn.execute("ALTER TABLE activation_state.sync_runs DROP COLUMN target")
    reset_stats(project.sandbox)

    result = metadata(project.materialize())

    assert ("retargeted" in result, result["unchanged_skipped"], items_received(project)) == (False, 10, 0)
    assert last_run(project) == ("succeeded", OLD)
    assert project.sql("SELECT target FROM activation_state.snapshot_targets") == [(OLD,)]


def test_a_price_that_becomes_text_is_refused_naming_the_column_and_types_until_allowed(project):
    project.add_activation()
    project.write_products(ROWS)
    project.materialize()
    before = snapshot(project)
    as_text = [{**r, "price": f"{r['price']} EUR"} for r in ROWS]
    project.write_products(as_text)
    reset_stats(project.sandbox)

    refused = project.materialize(raise_on_error=False)

    message = failure_message(refused)
    assert "sync_products" in message and "column 'price' (platform field 'price') DOUBLE -> VARCHAR" in message
    assert "allow_type_change: true" in message
    assert items_received(project) == 0
    assert snapshot(project) == before
    assert project.catalog() == expected_items(ROWS)

    allowed = metadata(project.materialize(run_config={"allow_type_change": True}))
    assert allowed["changed_succeeded"] == 10
    assert {sku: item["price"] for sku, item in project.catalog().items()} == {r["sku"]: r["price"] for r in as_text}
    assert metadata(project.materialize())["status"] == "succeeded"  # the new type is the recorded one now


def test_an_integer_column_that_becomes_a_double_passes_as_a_widening(project):
    project.add_activation()
    whole = [{**r, "price": 10 + i} for i, r in enumerate(ROWS)]
    project.write_products(whole)
    project.materialize()
    fractional = [{**r, "price": r["price"] + 0.5} for r in whole]
    project.write_products(fractional)

    result = metadata(project.materialize())

    assert result["status"] == "succeeded" and result["changed_succeeded"] == 10
    assert result["column_type_changes"] == ["column 'price' (platform field 'price') BIGINT -> DOUBLE"]
    assert project.catalog() == expected_items(fractional)


def test_a_yotpo_identifier_kind_change_is_a_first_sync_by_the_new_kind(yotpo):  # noqa: F811
    rows = [person(i) for i in range(1, 6)]
    yotpo.add_activation()
    yotpo.run(rows)
    yotpo.activations["to_yotpo"].update(object="external_id", identifier="external_id")
    yotpo.write_config()

    result = yotpo.run(rows)

    assert result["retargeted"] == "yotpo_test/email (identifier email) -> yotpo_test/external_id (identifier external_id)"
    assert result["added_succeeded"] == 5
    assert {f"C{i:05d}" for i in range(1, 6)} <= set(yotpo.customers())
    assert yotpo.sql("SELECT target FROM activation_state.sync_runs ORDER BY started_at DESC LIMIT 1") == [
        ("yotpo_test/external_id (identifier external_id)",)
    ]
