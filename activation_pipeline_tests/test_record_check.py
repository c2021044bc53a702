"""``all_records_confirmed``: a sync whose records were rejected shows a failed (WARN) check on the
activation, with the counts and the platform's message; a clean sync passes it."""

from __future__ import annotations

import shutil
from pathlib import Path

import requests
from dagster import AssetCheckSeverity, AssetKey, materialize

from activation_pipeline.config import load_config
from activation_pipeline.definitions import build_definitions
from activation_pipeline_tests.conftest import activation_selection, expected_items, product
from activation_pipeline_tests.test_scopes import SCOPE, rows

ROOT = Path(__file__).resolve().parents[1]
ROWS = [product(i) for i in range(1, 21)]


def check(result, activation: str = "sync_products"):
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.asset_key == AssetKey(["activations", activation])]
    assert evaluation.check_name == "all_records_confirmed"
    return evaluation


def values(evaluation) -> dict:
    return {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}


def test_a_clean_sync_passes_all_records_confirmed(project):
    project.add_activation()
    project.write_products(ROWS)
    evaluation = check(project.materialize())
    assert evaluation.passed
    assert values(evaluation)["records_sent"] == 20 and values(evaluation)["records_failed"] == 0
    assert evaluation.description == "all 20 records sent were confirmed"


def test_rejected_records_fail_the_check_as_a_warning_with_counts_and_the_platforms_message_until_resent(project):
    project.add_activation()
    project.write_products(ROWS)
    project.fault(kind="reject_ids", ids=["SKU-0007", "SKU-0011"])
    result = project.materialize()

    assert result.success  # the run is not a failure: the check says the sync was partial
    evaluation = check(result)
    assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.WARN
    assert evaluation.description.startswith("2 of 20 records sent were not confirmed; most common (2): ")
    assert 'items[0] (id "SKU-0007"): item rejected by the platform (sandbox fault reject_ids)' in evaluation.description
    meta = values(evaluation)
    assert (meta["records_sent"], meta["records_failed"]) == (20, 2)
    # one reason, its values blanked, with one record's message as the platform wrote it
    assert (
        "| rejected | 2 | INVALID_PARAMETER: items… (id …): item rejected by the platform (sandbox fault reject_ids) "
        '| SKU-0007: INVALID_PARAMETER: items[0] (id "SKU-0007")'
    ) in meta["top_failure_reasons"]
    assert project.snapshot_keys() == {r["sku"] for r in ROWS} - {"SKU-0007", "SKU-0011"}  # nothing unconfirmed kept

    requests.delete(f"{project.sandbox.url}/_sandbox/faults", timeout=5)
    again = check(project.materialize())
    assert again.passed and again.description == "all 2 records sent were confirmed"
    assert project.catalog() == expected_items(ROWS)


def test_invalid_rows_do_not_fail_the_check_but_are_counted_with_their_reason(project):
    project.segment_sql = "SELECT sku, name, CASE WHEN sku = 'SKU-0003' THEN 'nan'::DOUBLE ELSE price END AS price, brand FROM sources.products"
    project.add_activation()
    project.write_products(ROWS)
    evaluation = check(project.materialize())
    assert evaluation.passed
    assert evaluation.description == "all 19 records sent were confirmed; 1 invalid row was not sent (see top_invalid_reasons)"
    assert values(evaluation)["records_invalid"] == 1
    assert (
        "| invalid | 1 | price: nan is not a finite number | SKU-0003: price: nan is not a finite number |"
        in values(evaluation)["top_invalid_reasons"]
    )
    assert "SKU-0003" not in project.catalog() and "SKU-0003" not in project.snapshot_keys()


def test_a_scoped_activation_reports_the_check_per_scope(project):
    project.add_activation(object="products_{scope}", mapping={"name": "name", "price": "price"}, custom_attributes=[], scope=SCOPE)
    project.write_products(rows())
    project.fault(kind="reject_ids", ids=["SKU-6"])
    evaluation = check(project.materialize())
    assert not evaluation.passed
    assert evaluation.description.startswith("globex: 1 of 3 records sent were not confirmed")
    assert "acme" not in evaluation.description
    assert values(evaluation)["records_failed_by_scope"] == {"acme": 0, "globex": 1}
    assert {sku for sku, _ in project.sql('SELECT key, partition_key FROM activation_state."sync_products"')} == {
        "SKU-1",
        "SKU-2",
        "SKU-3",
        "SKU-4",
        "SKU-5",
        "SKU-7",
    }


def test_a_partitioned_activation_has_the_check_on_its_day(tmp_path, sandbox, instance):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data" / "demo", data / "demo")
    shutil.copy(ROOT / "data" / "activations.yaml", data / "activations.yaml")
    config = load_config(data / "activations.yaml")
    defs = build_definitions(config, warehouse=data / "warehouse.duckdb")
    selection = activation_selection(config, "orders_to_batch")  # the demo's partitioned Batch activation
    day = "2026-10-30"

    def run():
        return materialize(
            list(defs.assets) + list(defs.asset_checks), selection=selection, resources=defs.resources, partition_key=day, instance=instance
        )

    first = check(run(), "orders_to_batch")
    assert first.passed and first.partition == day
    requests.post(f"{sandbox.url}/_sandbox/faults", json={"platform": "batch", "kind": "reject_rate", "rate": 1.0}, timeout=5).raise_for_status()
    resent = check(
        materialize(
            list(defs.assets) + list(defs.asset_checks),
            selection=selection,
            resources=defs.resources,
            partition_key=day,
            instance=instance,
            run_config={"ops": {"activations__orders_to_batch": {"config": {"full_resync": True}}}},
        ),
        "orders_to_batch",
    )
    assert not resent.passed and resent.partition == day and "not confirmed" in resent.description


def test_the_demo_summary_explains_a_partial_line_in_one_sentence_from_the_ledger(project):
    from activation_pipeline.cli import run_notes

    project.add_activation()
    project.write_products(ROWS)
    project.fault(kind="reject_ids", ids=["SKU-0007", "SKU-0011"])
    run_id = project.materialize().run_id
    with project.backend.session(read_only=True) as conn:
        notes = run_notes(conn, [run_id])
    assert notes == [
        (
            "sync_products: 2 records were not confirmed by the platform (resent next run), all with "
            '"INVALID_PARAMETER: items… (id …): item rejected by the platform (sandbox fault reject_ids)".'
        )
    ]
