"""Connectif products: real materializations against the sandbox's Connectif emulator over HTTP.

Every operation over a first and two later runs (upsert, mirror with products discontinued or
deleted, full-only upsert, delete_only, update_only), the demo's stock statuses and category
paths normalised, bad values caught before sending, a per-product rejection retried next run,
429s waited out, and verification: a product changed or deleted behind our back is reported
with the field and both values, or as missing. Every run's result is checked against the
emulator's products, read through its admin endpoint."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from dagster import materialize

from activation_pipeline.config import ConfigError, load_config
from activation_pipeline.definitions import build_definitions
from activation_pipeline.platforms import PLATFORMS
from activation_pipeline.platforms.base import SyncTarget
from activation_pipeline.platforms.connectif import ConnectifResource
from activation_pipeline_tests.conftest import Project, activation_selection
from activation_pipeline_tests.platform_cases import CONNECTIF_MAPPING as MAPPING
from activation_pipeline_tests.platform_cases import WIRE_AVAILABILITY
from activation_pipeline_tests.platform_cases import connectif_expected as expected
from activation_pipeline_tests.platform_cases import connectif_item as item
from activation_pipeline_tests.test_sync_modes import metadata


@pytest.fixture
def connectif(project_for: Callable[[str], Project]) -> Project:
    """products.csv → segments.catalog → Connectif activations, on the sandbox's demo key."""
    return project_for("connectif")


FIRST = [item(i) for i in range(1, 11)]
# run 2: 1-2 leave the segment, 3 is repriced, 4 goes out of stock, 5 moves category, 11-12 arrive
SECOND = [
    item(
        i,
        price=99.5 if i == 3 else 10.0 + i,
        stock_status="out_of_stock" if i == 4 else item(i)["stock_status"],
        category_path="Sale/Boots" if i == 5 else item(i)["category_path"],
    )
    for i in range(3, 13)
]
# run 3: 6 is discontinued, 12 leaves, 1 comes back renamed
THIRD = [item(1, name="Back again")] + [
    item(6, stock_status="discontinued") if r["sku"] == "SKU-0006" else r for r in SECOND if r["sku"] != "SKU-0012"
]


# --- every operation, three runs, exact final state --------------------------------------------


def test_upsert_creates_products_then_sends_only_adds_and_changes(connectif):
    connectif.add_activation()
    first = connectif.run(FIRST)
    assert (first["added_planned"], first["added_succeeded"], first["invalid"], first["requests"]) == (10, 10, 0, 10)
    assert connectif.stats()["items_received"] == 10  # as Connectif counted them (its check's reads are not edits)
    assert connectif.products() == expected(FIRST)

    connectif.reset_stats()
    second = connectif.run(SECOND)
    assert (second["added_succeeded"], second["changed_succeeded"], second["unchanged_skipped"]) == (2, 3, 5)
    assert (second["removed_left_in_platform"], second["requests"]) == (2, 5)
    assert connectif.stats()["items_received"] == 5  # only the added and changed reached Connectif
    assert connectif.products() == {**expected(FIRST), **expected(SECOND)}

    third = connectif.run(THIRD)
    # 1 never left the snapshot (upsert leaves removed products alone): its renaming is a change, like 6's discontinuation
    assert (third["added_succeeded"], third["changed_succeeded"], third["removed_left_in_platform"]) == (0, 2, 2)
    assert connectif.products() == {**expected(FIRST), **expected(SECOND), **expected(THIRD)}
    assert connectif.products()["SKU-0006"]["availability"] == "discontinued"
    assert connectif.snapshot_keys() == {f"SKU-{i:04d}" for i in range(1, 13)}


def test_mirror_marks_products_that_left_the_segment_discontinued(connectif):
    connectif.add_activation(operation="mirror", max_delete_fraction=0.5)
    connectif.run(FIRST)
    second = connectif.run(SECOND)
    assert (second["added_succeeded"], second["changed_succeeded"], second["removed_succeeded"]) == (2, 3, 2)
    gone = {"availability": "discontinued"}
    assert connectif.products() == expected(FIRST + SECOND[-2:], SKU_0001=gone, SKU_0002=gone) | expected(SECOND)

    third = connectif.run(THIRD)
    assert (third["added_succeeded"], third["changed_succeeded"], third["removed_succeeded"]) == (1, 1, 1)
    # 1 came back (available again), 2 stays discontinued, 12 left
    assert connectif.products() == expected([item(2), item(12)], SKU_0002=gone, SKU_0012=gone) | expected(THIRD)
    assert connectif.snapshot_keys() == {r["sku"] for r in THIRD}


def test_mirror_with_removal_delete_deletes_products_where_the_account_allows_it(connectif):
    connectif.admin("POST", "config", {"allow_delete": True})
    connectif.add_activation(operation="mirror", max_delete_fraction=0.5, options={"removal": "delete"})
    connectif.run(FIRST)
    second = connectif.run(SECOND)
    assert second["removed_succeeded"] == 2
    assert connectif.products() == expected(SECOND)
    third = connectif.run(THIRD)
    assert (third["added_succeeded"], third["removed_succeeded"]) == (1, 1)
    assert connectif.products() == expected(THIRD)


def test_removal_delete_on_an_account_without_delete_stops_with_the_way_out(connectif):
    connectif.add_activation(operation="mirror", max_delete_fraction=0.5, options={"removal": "delete"})
    connectif.run(FIRST)
    connectif.write_products(SECOND)
    result = connectif.materialize(raise_on_error=False)
    assert not result.success
    run = connectif.sql("SELECT status, error FROM activation_state.sync_runs ORDER BY started_at DESC LIMIT 1")[0]
    assert run[0] == "failed" and "removal: discontinue" in run[1]
    assert {"SKU-0001", "SKU-0002"} <= connectif.snapshot_keys()  # not removed: resent next run


def test_full_only_upsert_resends_every_product_every_run(connectif):
    connectif.add_activation(mode="full_only")
    assert connectif.run(FIRST)["added_succeeded"] == 10
    connectif.reset_stats()
    second = connectif.run(SECOND)
    assert (second["added_succeeded"], second["changed_succeeded"], second["unchanged_resent"]) == (2, 3, 5)
    assert second["requests"] == 10
    assert connectif.stats()["items_received"] == 10  # Connectif really received the unchanged five again
    connectif.reset_stats()
    third = connectif.run(THIRD)
    assert third["requests"] == len(THIRD)
    assert connectif.stats()["items_received"] == len(THIRD)
    assert connectif.products() == {**expected(FIRST), **expected(SECOND), **expected(THIRD)}


def test_delete_only_discontinues_the_products_of_the_dataset(connectif):
    seed = [item(i) for i in range(1, 21)]
    connectif.add_activation("seed", mode="full_only")
    connectif.run(seed, "seed")
    connectif.add_activation(mode="full_only", operation="delete_only", mapping={})
    connectif.reset_stats()
    first = connectif.run([item(i) for i in range(1, 4)] + [item(99)])  # 99 was never in Connectif
    assert (first["added_succeeded"], first["requests"]) == (4, 4 + 3)  # read each, discontinue the 3 that exist
    assert connectif.stats()["items_received"] == 3  # as Connectif counted the writes
    assert connectif.last_run_records()["SKU-0099"] == ("confirmed", "not in Connectif: nothing to discontinue")
    connectif.run([item(i) for i in range(3, 6)])
    connectif.run([item(20)])
    gone = {f"SKU_{i:04d}": {"availability": "discontinued"} for i in (1, 2, 3, 4, 5, 20)}
    assert connectif.products() == expected(seed, **gone)
    assert "SKU-0099" not in connectif.products()


def test_update_only_updates_existing_products_and_skips_the_rest_until_they_exist(connectif):
    connectif.admin(
        "POST", "products", [{"productId": r["sku"], "name": "old", "unitPrice": 1.0, "productDetailUrl": r["product_url"]} for r in FIRST[:3]]
    )
    connectif.add_activation(operation="update_only", mapping={"unitPrice": "price", "availability": "stock_status"})
    rows = FIRST[:5]
    first = connectif.run(rows)
    assert (first["added_succeeded"], first["skipped"]) == (3, 2)
    assert set(connectif.products()) == {"SKU-0001", "SKU-0002", "SKU-0003"}
    assert connectif.products()["SKU-0001"] == {
        "name": "old",
        "unitPrice": 11.0,
        "productDetailUrl": FIRST[0]["product_url"],
        "availability": "instock",
    }
    assert connectif.last_run_records()["SKU-0004"][0] == "skipped"

    connectif.admin("POST", "products", [{"productId": "SKU-0004", "name": "shop", "unitPrice": 2.0, "productDetailUrl": "https://s.example/4"}])
    second = connectif.run(rows)
    assert (second["added_succeeded"], second["skipped"]) == (1, 1)  # 4 exists now; 5 still does not
    assert connectif.products()["SKU-0004"]["unitPrice"] == 14.0
    connectif.reset_stats()
    third = connectif.run(rows)
    assert (third["skipped"], third["requests"]) == (1, 1)  # only 5 is read again
    assert connectif.stats()["items_received"] == 0  # Connectif received no write
    assert set(connectif.products()) == {f"SKU-{i:04d}" for i in range(1, 5)}


# --- values: normalised, or caught before sending ------------------------------------------------


def test_bad_values_are_counted_invalid_and_never_sent(connectif):
    connectif.add_activation()
    rows = [
        item(1),
        item(2, stock_status="preorder"),
        item(3, price=-5),
        item(4, product_url="/p/4"),
        item(5, image_url="ftp://cdn.example.com/5.jpg"),
        item(6, name=""),
    ]
    result = connectif.run(rows)
    assert (result["added_succeeded"], result["invalid"]) == (1, 5)
    assert set(connectif.products()) == {"SKU-0001"}
    records = connectif.last_run_records()
    assert records["SKU-0002"] == (
        "invalid",
        "availability: 'preorder' is not one of instock, outofstock, discontinued "
        "(in_stock / out_of_stock and other spellings of these are accepted)",
    )
    assert "unitPrice: -5.0 is negative" in records["SKU-0003"][1]
    assert "productDetailUrl: '/p/4' is not an absolute http(s) URL" in records["SKU-0004"][1]
    assert "imageUrl" in records["SKU-0005"][1]
    assert "name null" in records["SKU-0006"][1]  # an empty CSV cell is null: a product cannot be created without a name


def test_a_field_connectif_does_not_have_is_a_config_error(connectif):
    connectif.add_activation(mapping={**MAPPING, "colour": "brand"})
    with pytest.raises(ConfigError, match="mapping.colour.*not a writable Connectif product field"):
        load_config(connectif.config_path)
    connectif.add_activation(mapping={"name": "name"})
    with pytest.raises(ConfigError, match="map productDetailUrl, unitPrice"):
        load_config(connectif.config_path)
    connectif.add_activation(options={"removal": "erase"})
    with pytest.raises(ConfigError, match="options.removal"):
        load_config(connectif.config_path)


# --- failures ----------------------------------------------------------------------------------


def test_a_rejected_product_keeps_its_message_and_is_sent_again_next_run(connectif):
    connectif.add_activation()
    connectif.fault(kind="reject_ids", ids=["SKU-0002"])
    first = connectif.run(FIRST[:4])
    assert (first["added_succeeded"], first["added_failed"], first["status"]) == (3, 1, "partial")
    status, message = connectif.last_run_records()["SKU-0002"]
    assert status == "rejected" and "HTTP 400: Product SKU-0002 rejected" in message and "code E0101" in message
    assert "SKU-0002" not in connectif.snapshot_keys()

    requests.delete(f"{connectif.sandbox.url}/_sandbox/faults", timeout=5).raise_for_status()
    second = connectif.run(FIRST[:4])
    assert (second["added_succeeded"], second["unchanged_skipped"]) == (1, 3)
    assert connectif.products() == expected(FIRST[:4])


def test_429_with_retry_after_is_waited_out(connectif):
    connectif.add_activation()
    connectif.fault(kind="status", status=429, retry_after=1, count=2, path_contains="products")
    started = time.monotonic()
    result = connectif.run(FIRST[:3])
    assert (result["added_succeeded"], result["retries"]) == (3, 2)
    assert connectif.stats()["statuses"].get("429") == 2  # Connectif did refuse twice
    assert time.monotonic() - started >= 1.0
    assert connectif.products() == expected(FIRST[:3])


def test_the_emulators_rate_limit_is_honoured_and_every_product_arrives(connectif):
    requests.post(f"{connectif.sandbox.url}/_sandbox/ratelimit", json={"enabled": True, "requests_per_second": 4}, timeout=5).raise_for_status()
    try:
        connectif.settings["backoff_seconds"] = 0.1
        connectif.add_activation(concurrency=4)
        result = connectif.run(FIRST)
        assert (result["status"], result["added_succeeded"]) == ("succeeded", 10)
        assert connectif.products() == expected(FIRST)
    finally:
        requests.post(f"{connectif.sandbox.url}/_sandbox/ratelimit", json={"enabled": False}, timeout=5).raise_for_status()


# --- verification --------------------------------------------------------------------------------


def test_verify_reports_a_product_changed_behind_our_back_and_one_deleted(connectif):
    connectif.add_activation()
    connectif.run(FIRST[:4])
    client = ConnectifResource().client()
    target = SyncTarget(activation="to_connectif", title="to_connectif", object="products", model=PLATFORMS["connectif"].target)
    records = connectif.confirmed_records()
    assert [v.matches for v in client.verify(target, records)] == [True] * 4

    connectif.admin("POST", "products/SKU-0002", {"unitPrice": 17.5, "categories": ["Other"], "availability": "unverified"})
    connectif.admin("DELETE", "products/SKU-0003")
    found = {v.key: v for v in client.verify(target, records)}
    assert (found["SKU-0001"].matches, found["SKU-0004"].matches) == (True, True)
    assert not found["SKU-0002"].matches
    assert found["SKU-0002"].message == (
        'unitPrice: sent 12, Connectif has 17.5; categories: sent ["Men/Clothing"], '
        'Connectif has ["Other"]; availability: sent "instock", Connectif has "unverified"'
    )
    assert (found["SKU-0003"].matches, found["SKU-0003"].message) == (False, "not in Connectif")

    # the next push restores them: verification passes again
    connectif.run(FIRST[:4] + [item(5)])
    assert "SKU-0003" not in connectif.products()  # a delta does not resend unchanged rows: verification is what finds it
    full = connectif.add_activation("resync", mode="full_only")
    connectif.run(FIRST[:5], full)
    assert all(v.matches for v in client.verify(target, connectif.confirmed_records()))
    client.close()


def test_verify_compares_prices_with_tolerance_and_lists_as_sets(connectif):
    connectif.add_activation()
    connectif.run([item(1, category_path="A/B|C")])
    assert connectif.products()["SKU-0001"]["categories"] == ["A/B", "C"]
    connectif.admin("POST", "products/SKU-0001", {"unitPrice": 11.0 + 1e-9, "categories": ["C", "A/B"]})
    client = ConnectifResource().client()
    target = SyncTarget(activation="to_connectif", title="to_connectif", object="products", model=PLATFORMS["connectif"].target)
    assert [(v.matches, v.message) for v in client.verify(target, connectif.confirmed_records())] == [(True, "")]
    client.close()


def test_a_wrong_api_key_stops_the_run_without_leaking_the_secret(connectif, monkeypatch):
    monkeypatch.setenv("CONNECTIF_API_KEY", "sandbox-connectif-key:not-the-right-secret-42")
    connectif.add_activation()
    connectif.write_products(FIRST[:2])
    assert not connectif.materialize(raise_on_error=False).success
    status, error = connectif.sql("SELECT status, error FROM activation_state.sync_runs ORDER BY started_at DESC LIMIT 1")[0]
    assert status == "failed" and "HTTP 401" in error and "is the API key right?" in error
    assert "not-the-right-secret-42" not in error
    assert connectif.products() == {} and connectif.snapshot_keys() == set()


def test_the_demo_activation_syncs_the_demo_catalog_with_no_credentials_set(connectif, tmp_path):
    demo = Path(__file__).resolve().parents[1] / "data" / "activations.yaml"
    config = load_config(demo)
    defs = build_definitions(config, warehouse=tmp_path / "demo.duckdb")
    [activation] = [name for name, a in config.activations.items() if config.destinations[a.destination].platform == "connectif"]
    result = materialize(
        list(defs.assets or []) + list(defs.asset_checks or []),
        selection=activation_selection(config, activation),
        resources=defs.resources,
        instance=connectif.instance,
    )
    assert metadata(result, activation)["invalid"] == 0
    with open(demo.parent / "demo" / "products.csv", newline="") as handle:
        rows = {r["sku"]: r for r in csv.DictReader(handle)}
    products = connectif.products()
    assert set(products) == set(rows)
    for sku, row in rows.items():  # stock_status and category_path as Connectif holds them
        assert products[sku]["availability"] == WIRE_AVAILABILITY[row["stock_status"]]
        assert products[sku]["categories"] == [row["category_path"]]
        assert products[sku]["unitPrice"] == float(row["price"])


# --- verification through Dagster: the platform_matches check, "verify now", massive verification --------


def check_evaluation(result: Any) -> Any:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "platform_matches"]
    return evaluation


def verify_job(connectif: Project, job: str, run_config: dict[str, Any] | None = None) -> Any:
    defs = build_definitions(load_config(connectif.config_path), warehouse=connectif.warehouse)
    return defs.resolve_job_def(job).execute_in_process(run_config=run_config, instance=connectif.instance, raise_on_error=False)


def test_the_check_after_a_push_verify_now_and_massive_verification_find_drift_and_the_next_sync_repairs_it(connectif):
    from activation_pipeline.automation import verification_op

    connectif.add_activation()
    connectif.write_products(FIRST[:4])
    pushed = check_evaluation(connectif.materialize())  # runs after the push, on what it pushed
    assert pushed.passed and pushed.metadata["verified"].value == 4

    connectif.admin("POST", "products/SKU-0002", {"unitPrice": 17.5})
    connectif.admin("DELETE", "products/SKU-0003")

    # "verify now": just the listed products, without syncing anything
    now = verify_job(connectif, "verify_to_connectif", {"ops": {verification_op("to_connectif"): {"config": {"keys": ["SKU-0002", "SKU-0001"]}}}})
    evaluation = check_evaluation(now)
    assert not evaluation.passed and evaluation.severity.value == "WARN"
    assert (evaluation.metadata["verified"].value, evaluation.metadata["mismatched"].value) == (2, 1)
    assert [(r.data["key"], r.data["difference"]) for r in evaluation.metadata["mismatches"].value.records] == [
        ("SKU-0002", "unitPrice: sent 12, Connectif has 17.5")
    ]
    assert connectif.sql(
        "SELECT key, status, message FROM activation_state.sync_records WHERE operation = 'verify' AND run_id = ? ORDER BY key", [now.run_id]
    ) == [("SKU-0001", "matched", None), ("SKU-0002", "mismatch", "unitPrice: sent 12, Connectif has 17.5")]

    # the scheduled massive verification: every product the platform should hold
    everything = check_evaluation(verify_job(connectif, "verify_to_connectif_all"))
    assert (everything.metadata["verified"].value, everything.metadata["mismatched"].value) == (4, 2)
    assert {r.data["key"]: r.data["difference"] for r in everything.metadata["mismatches"].value.records}["SKU-0003"] == "not in Connectif"

    # the next incremental sync resends what drifted (and only that), and its check passes
    result = connectif.materialize()
    assert metadata(result, "to_connectif")["changed_succeeded"] == 2
    assert check_evaluation(result).passed
    assert connectif.products()["SKU-0002"]["unitPrice"] == 12 and "SKU-0003" in connectif.products()


def test_the_massive_verification_runs_off_peak_by_default_and_follows_enabled(connectif):
    connectif.add_activation(schedule="hourly")
    defs = build_definitions(load_config(connectif.config_path), warehouse=connectif.warehouse)
    schedule = defs.resolve_schedule_def("verify_to_connectif_all_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("0 4 * * *", "UTC")
    assert schedule.default_status.value == "RUNNING"
    connectif.add_activation(verification_schedule={"cron": "30 1 * * 0", "timezone": "Europe/Madrid"}, enabled=False)
    defs = build_definitions(load_config(connectif.config_path), warehouse=connectif.warehouse)
    schedule = defs.resolve_schedule_def("verify_to_connectif_all_schedule")
    assert (schedule.cron_schedule, schedule.execution_timezone, schedule.default_status.value) == ("30 1 * * 0", "Europe/Madrid", "STOPPED")


def test_a_product_the_platform_does_not_answer_for_is_unread_not_drift(connectif):
    """Silence during verification says nothing about the product: no mismatch, nothing resent."""
    from activation_pipeline.automation import verification_op

    connectif.settings = {"backoff_seconds": 0.01, "max_retries": 1}
    connectif.add_activation()
    connectif.write_products(FIRST[:2])
    connectif.materialize()
    connectif.fault(kind="status", status=503, count=50, path_contains="SKU-0002")  # every GET of SKU-0002 answers 503
    result = verify_job(connectif, "verify_to_connectif", {"ops": {verification_op("to_connectif"): {"config": {"all": True}}}})
    evaluation = check_evaluation(result)
    requests.delete(f"{connectif.sandbox.url}/_sandbox/faults", timeout=5)
    assert not evaluation.passed and "1 could not be read" in evaluation.description
    assert (evaluation.metadata["verified"].value, evaluation.metadata["mismatched"].value, evaluation.metadata["unread"].value) == (1, 0, 1)
    assert connectif.sql(
        "SELECT key, status FROM activation_state.sync_records WHERE operation = 'verify' AND run_id = ? ORDER BY key", [result.run_id]
    ) == [("SKU-0001", "matched"), ("SKU-0002", "unread")]
    assert connectif.sql('SELECT count(*) FROM activation_state."to_connectif" WHERE row_hash IS NULL')[0][0] == 0  # nothing to resend
