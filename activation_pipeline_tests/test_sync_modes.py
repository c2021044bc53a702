"""Every mode/operation of DESIGN.md's table: a first run and two later runs with adds,
changes and removals, each asserting the sandbox catalog exactly."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from activation_pipeline_tests.conftest import expected_items, product, run_metadata

FIRST = [product(i) for i in range(1, 26)]
# run 2: 1-3 leave the segment, 4-6 change price, 26-28 arrive
SECOND = [product(i, price=99.0 + i if 4 <= i <= 6 else None) for i in range(4, 29)]
# run 3: 7 leaves, 8 is renamed, 29 arrives, 1 comes back unchanged
THIRD = [product(1)] + [product(i, price=99.0 + i if 4 <= i <= 6 else None, name="Renamed 8" if i == 8 else None) for i in range(4, 30) if i != 7]


metadata = run_metadata  # many test files import it from here

pytestmark = pytest.mark.on_both_backends  # every mode, on a DuckDB file and on PostgreSQL


def run(project, rows) -> dict[str, Any]:
    project.write_products(rows)
    return metadata(project.materialize())


def test_upsert_creates_and_updates_but_leaves_removed_items_in_the_catalog(project):
    project.add_activation(mode="full_then_delta", operation="upsert")
    project.reset_stats()
    first = run(project, FIRST)
    assert project.catalog() == expected_items(FIRST)
    assert (first["added_planned"], first["added_succeeded"], first["requests"]) == (25, 25, 5)  # view (404) + create + 3 x 10 items
    assert (project.stats()["total_requests"], project.stats()["items_received"]) == (5, 25)  # as Batch counted them

    project.reset_stats()
    second = run(project, SECOND)
    assert project.stats()["items_received"] == 6  # only the 3 added and 3 changed reached Batch
    assert (second["added_planned"], second["changed_planned"], second["removed_planned"]) == (3, 3, 0)
    assert second["removed_left_in_platform"] == 3
    assert second["unchanged_skipped"] == 19
    assert project.catalog() == {**expected_items(FIRST), **expected_items(SECOND)}

    third = run(project, THIRD)
    assert (third["added_planned"], third["changed_planned"]) == (1, 1)  # 29 new, 8 renamed; 1 was never removed
    assert project.catalog() == {**expected_items(FIRST), **expected_items(SECOND), **expected_items(THIRD)}


def test_mirror_deletes_items_that_left_the_segment(project):
    project.add_activation(mode="full_then_delta", operation="mirror", max_delete_fraction=0.5)
    run(project, FIRST)
    assert project.catalog() == expected_items(FIRST)

    second = run(project, SECOND)
    assert (second["added_succeeded"], second["changed_succeeded"], second["removed_succeeded"]) == (3, 3, 3)
    assert project.catalog() == expected_items(SECOND)

    third = run(project, THIRD)
    assert (third["added_succeeded"], third["changed_succeeded"], third["removed_succeeded"]) == (2, 1, 1)
    assert project.catalog() == expected_items(THIRD)
    assert project.snapshot_keys() == {r["sku"] for r in THIRD}


def test_full_only_upsert_resends_every_row_every_run(project):
    project.add_activation(mode="full_only", operation="upsert")
    first = run(project, FIRST)
    assert first["added_succeeded"] == 25
    project.reset_stats()
    second = run(project, SECOND)
    assert second["added_succeeded"] + second["changed_succeeded"] + second["unchanged_resent"] == len(SECOND)
    assert second["unchanged_resent"] == 19
    assert project.stats()["items_received"] == len(SECOND)  # Batch really received every row again
    project.reset_stats()
    third = run(project, THIRD)
    assert sum(third[f"{c}_planned"] for c in ("added", "changed")) + third["unchanged_resent"] == len(THIRD)
    assert project.stats()["items_received"] == len(THIRD)
    assert project.catalog() == {**expected_items(FIRST), **expected_items(SECOND), **expected_items(THIRD)}


def test_delete_only_removes_the_rows_of_the_dataset_from_the_catalog(project, sandbox):
    seed = [product(i) for i in range(1, 41)]
    project.add_activation("seed_catalog", mode="full_only", operation="upsert")
    project.write_products(seed)
    project.materialize("seed_catalog")
    assert project.catalog() == expected_items(seed)

    project.add_activation(mode="full_only", operation="delete_only")
    first = run(project, [product(i) for i in range(1, 6)])
    assert first["added_succeeded"] == 5
    assert project.catalog() == expected_items([r for r in seed if r["sku"] not in {f"SKU-{i:04d}" for i in range(1, 6)}])

    run(project, [product(i) for i in range(4, 11)])  # 4 and 5 are gone already: deleting them again is harmless
    run(project, [product(i) for i in range(38, 41)])
    gone = {f"SKU-{i:04d}" for i in [*range(1, 11), 38, 39, 40]}
    assert project.catalog() == expected_items([r for r in seed if r["sku"] not in gone])


def test_the_catalog_is_created_once_with_typed_fields(project, sandbox):
    project.add_activation(mode="full_then_delta", operation="upsert")
    run(project, FIRST)
    run(project, SECOND)
    catalogs = requests.get(f"{sandbox.url}/_sandbox/batch/catalogs", timeout=5).json()["catalogs"]
    assert [c["name"] for c in catalogs] == ["products"]
    fields = {f["name"]: f["type"] for f in catalogs[0]["fields"]}
    assert fields == {"name": "string", "price": "float", "brand": "string"}


@pytest.mark.parametrize("mode, operation", [("full_then_delta", "update_only"), ("full_then_delta", "delete_only")])
def test_an_operation_the_platform_or_mode_cannot_do_is_a_config_error(project, mode, operation):
    from activation_pipeline.config import ConfigError, load_config

    project.add_activation(mode=mode, operation=operation)
    with pytest.raises(ConfigError) as error:
        load_config(project.config_path)
    assert "activations.sync_products" in str(error.value) and "operation" in str(error.value)


def test_run_config_keys_syncs_just_those_records_now(project):
    project.add_activation(mode="full_then_delta", operation="upsert")
    run(project, FIRST)
    changed = [product(i, price=500.0 + i) for i in range(1, 26)]
    project.write_products(changed)
    project.reset_stats()
    result = metadata(project.materialize(run_config={"keys": ["SKU-0003", "SKU-0004"]}))
    assert result["requests"] == 2  # catalog view + one request carrying the two records
    assert (project.stats()["total_requests"], project.stats()["items_received"]) == (2, 2)  # as Batch counted them
    catalog = project.catalog()
    assert {sku: item["price"] for sku, item in catalog.items() if item["price"] > 500} == {"SKU-0003": 503.0, "SKU-0004": 504.0}
    # the next ordinary run sends the other 23 changed rows, not these two again
    project.reset_stats()
    assert metadata(project.materialize())["changed_planned"] == 23
    assert project.stats()["items_received"] == 23


@pytest.mark.parametrize("mode, operation", [("full_then_delta", "upsert"), ("full_then_delta", "mirror"), ("full_only", "upsert")])
def test_a_plan_holds_only_the_records_the_push_acts_on_and_still_counts_the_unchanged(backend, tmp_path, mode, operation):
    """The diff writes to its plan only the rows the push sends, refuses or deletes: a rerun after a small change
    reads a plan of that change, not of the whole segment. The unchanged and removed records it leaves alone are
    counted all the same (a duplicated key the snapshot holds is neither removed nor unchanged: invalid)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from activation_pipeline.sync import state
    from activation_pipeline.sync.diff import PlanRequest, plan_operations

    request = PlanRequest("plan", "segments.products", "sku", "sku", {"name": "name", "price": "price"}, mode, operation)
    with backend.session() as conn:
        state.ensure_state(conn, "plan")
        conn.execute("CREATE SCHEMA segments")
        conn.execute("CREATE TABLE segments.products (sku VARCHAR, name VARCHAR, price DOUBLE PRECISION)")
        rows = range(1, 1001)
        conn.insert(
            "segments.products", pa.table({"sku": [f"sku-{i}" for i in rows], "name": [f"name {i}" for i in rows], "price": [i * 1.5 for i in rows]})
        )
        first = plan_operations(conn, request, tmp_path / "first.parquet")
        confirmed = pq.read_table(first.path, columns=["__key", "__hash", "__identifier"])
        assert first.counts["added"] == confirmed.num_rows == 1000
        with conn.frames(confirmed=confirmed):
            conn.execute(
                f"INSERT INTO {state.snapshot_table('plan')} (key, row_hash, run_id, confirmed_at, partition_key, identifier) "
                "SELECT __key, __hash, 'run-1', now(), NULL, __identifier FROM confirmed"
            )
        conn.execute("UPDATE segments.products SET price = price + 1 WHERE sku IN ('sku-1', 'sku-2', 'sku-3')")  # 3 changed
        conn.execute("DELETE FROM segments.products WHERE sku IN ('sku-4', 'sku-5')")  # 2 removed
        conn.execute(
            "INSERT INTO segments.products VALUES ('sku-2000', 'new', 1.0), ('sku-6', 'twice', 2.0), (NULL, 'no key', 3.0),"
            " ('sku-3000', 'new twice', 4.0), ('sku-3000', 'new twice', 4.0)"
        )
        second = plan_operations(conn, request, tmp_path / "second.parquet")
    planned = pq.read_table(second.path, columns=["__key", "__change", "__op"]).to_pylist()
    by_change: dict[str, int] = {}
    for row in planned:
        by_change[row["__change"]] = by_change.get(row["__change"], 0) + 1
    resent = mode == "full_only"
    # sku-6 and sku-3000 twice each and the row without a key are refused; 1000 - 3 changed - 2 removed - sku-6 = 994 unchanged
    assert second.counts["added"] == 1 and second.counts["changed"] == 3 and second.counts["removed"] == 2
    assert second.counts["invalid"] == 5 and second.counts["unchanged"] == 994
    deleted = operation == "mirror" and not resent  # a mirror's delta deletes the removed; the others leave them
    assert by_change == {"added": 1, "changed": 3, "invalid": 5, **({"unchanged": 994} if resent else {}), **({"removed": 2} if deleted else {})}
    assert all(row["__op"] is not None for row in planned if row["__change"] != "invalid")
