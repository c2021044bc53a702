"""Synerise end to end: real materializations against the sandbox's Synerise emulator.

Profiles (always-sent fields, null semantics, three runs), newsletter subscriptions,
catalog items (always-sent attributes, mirror soft delete, tax-inclusive price, labels as
values, a catalog deleted behind our back), transactions partitioned by day (a rerun does not
duplicate events), per-item rejections retried next run, 429s and expired tokens, malformed
emails and phones never sent, and what fails at config load. Every run is checked against the
emulator's state, read through its admin endpoints."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import duckdb
import pytest
import requests

from activation_pipeline.config import ConfigError, load_config
from activation_pipeline.platforms import PLATFORMS
from activation_pipeline.platforms.base import Record, SyncTarget
from activation_pipeline.platforms.synerise import SyneriseResource
from activation_pipeline_tests.conftest import Project
from activation_pipeline_tests.platform_cases import SYNERISE_ITEMS as ITEMS
from activation_pipeline_tests.platform_cases import synerise_item as item
from activation_pipeline_tests.platform_cases import synerise_product as product

PROFILES = {
    "segment": "people",
    "concurrency": 2,
    "object": "profiles",
    "custom_attributes": ["tier", "ltv"],
    "mapping": {"email": "email", "firstName": "first_name", "lastName": "last_name", "phone": "phone"},
}
SUBSCRIPTIONS = {
    "segment": "newsletter",
    "concurrency": 2,
    "object": "subscriptions",
    "identifier": "email",
    "mapping": {"agreements.email": "subscribed"},
}
TRANSACTIONS = {
    "segment": "orders_with_lines",
    "concurrency": 2,
    "object": "transactions",
    "custom_attributes": ["store_view"],
    "mapping": {
        "client.customId": "customer_id",
        "client.email": "email",
        "recordedAt": "created_at",
        "products": "products",
        "currency": "currency",
    },
}
DAY = "2026-10-01"


@pytest.fixture
def synerise(project_for: Callable[[str], Project]) -> Project:
    """CSV sources → segments → Synerise activations, on the sandbox's demo key."""
    return project_for("synerise")


def customer(i: int, **overrides: Any) -> dict[str, Any]:
    return {
        "customer_id": i,
        "email": f"person.{i}@example.com",
        "phone": f"+4477009{i:05d}",
        "first_name": f"First{i}",
        "last_name": f"Last{i}",
        "tier": "gold" if i % 2 else "silver",
        "ltv": 100.0 + i,
        "store_view": ["en_gb", "fr_fr", "de_de"][i % 3],
        **overrides,
    }


def profile(row: dict[str, Any]) -> dict[str, Any]:
    attributes = {k: v for k, v in (("tier", row["tier"]), ("ltv", float(row["ltv"]) if row["ltv"] is not None else None)) if v is not None}
    out = {
        "customId": str(row["customer_id"]),
        "email": row["email"],
        "firstName": row["first_name"],
        "lastName": row["last_name"],
        "phone": row["phone"],
    }
    return {**out, "attributes": attributes} if attributes else out


# --- profiles ---------------------------------------------------------------------------------


def test_profiles_always_carry_custom_id_email_and_names_over_three_runs(synerise):
    synerise.add("to_profiles", PROFILES)
    first = [customer(i) for i in range(1, 6)]
    synerise.write("customers", first)
    result = synerise.sync("to_profiles")
    assert (result["added_succeeded"], result["requests"]) == (5, 2)  # a login, one batch
    assert (synerise.stats()["total_requests"], synerise.stats()["items_received"]) == (2, 5)  # as Synerise counted them
    assert synerise.profiles() == {str(i): profile(customer(i)) for i in range(1, 6)}

    second = [customer(i, first_name="Renamed") if i == 2 else customer(i) for i in range(2, 8)]  # 1 leaves, 6-7 arrive
    synerise.write("customers", second)
    result = synerise.sync("to_profiles")
    assert (result["added_succeeded"], result["changed_succeeded"], result["removed_left_in_platform"]) == (2, 1, 1)
    assert synerise.profiles() == {**{"1": profile(customer(1))}, **{str(r["customer_id"]): profile(r) for r in second}}

    third = [customer(3, tier=None, first_name=None) if r["customer_id"] == 3 else r for r in second]
    synerise.write("customers", third)
    assert synerise.sync("to_profiles")["changed_succeeded"] == 1
    expected = profile(customer(3))
    del expected["firstName"]  # null resets the native field
    expected["attributes"] = {"ltv": 103.0}  # null deleted the attribute
    assert synerise.profiles()["3"] == expected


def test_malformed_emails_and_phones_are_invalid_and_never_sent(synerise):
    synerise.add("to_profiles", PROFILES)
    rows = [
        customer(1),
        customer(7, email="person.7.example.com"),
        customer(8, email="person 8@example.com"),
        customer(13, phone="+447700"),
        customer(14, phone="+4477OO12345678"),
    ]
    synerise.write("customers", rows)
    result = synerise.sync("to_profiles")
    assert (result["added_succeeded"], result["invalid"]) == (1, 4)
    records = synerise.last_run_records("to_profiles")
    assert records["7"] == ("invalid", "email: malformed email 'person.7.example.com'")
    assert records["14"] == ("invalid", "phone: phone '+4477OO12345678' is not + then 7 to 15 digits")
    assert set(synerise.profiles()) == {"1"}


def test_newsletter_subscriptions_set_the_profiles_email_agreement(synerise):
    synerise.add("to_profiles", PROFILES)
    synerise.write("customers", [customer(1)])
    synerise.sync("to_profiles")
    synerise.add("subscriptions", SUBSCRIPTIONS)
    synerise.write(
        "subscribers",
        [
            {"subscriber_id": 1, "email": "person.1@example.com", "status": "subscribed"},
            {"subscriber_id": 2, "email": "guest@example.com", "status": "unsubscribed"},
            {"subscriber_id": 3, "email": "broken", "status": "subscribed"},
        ],
    )
    result = synerise.sync("subscriptions")
    assert (result["added_succeeded"], result["invalid"]) == (2, 1)
    profiles = synerise.profiles()
    assert profiles["1"]["agreements"] == {"email": True} and profiles["1"]["firstName"] == "First1"  # the same profile
    assert profiles["guest@example.com"] == {"email": "guest@example.com", "agreements": {"email": False}}

    synerise.write(
        "subscribers",
        [
            {"subscriber_id": 1, "email": "person.1@example.com", "status": "unsubscribed"},
            {"subscriber_id": 2, "email": "guest@example.com", "status": "unsubscribed"},
        ],
    )
    assert synerise.sync("subscriptions")["changed_succeeded"] == 1
    assert synerise.profiles()["1"]["agreements"] == {"email": False}


# --- catalog items ------------------------------------------------------------------------------


def test_catalog_items_carry_the_plugins_attributes_and_mirror_soft_deletes(synerise):
    synerise.add("to_catalog", ITEMS)
    rows = [product(i) for i in range(1, 6)]
    synerise.write("products", rows)
    assert synerise.sync("to_catalog")["added_succeeded"] == 5
    assert synerise.items() == {r["sku"]: item(r) for r in rows}

    second = [product(i, price=99.0) if i == 2 else product(i) for i in range(2, 7) if i != 4]  # 1 and 4 leave, 6 arrives
    synerise.write("products", second)
    result = synerise.sync("to_catalog", {"allow_mass_delete": True})
    assert (result["added_succeeded"], result["changed_succeeded"], result["removed_succeeded"]) == (1, 1, 2)
    expected = {r["sku"]: item(r) for r in second}
    expected.update({"SKU-1": item(product(1), deleted=1), "SKU-4": item(product(4), deleted=1)})  # kept, flagged deleted
    assert synerise.items() == expected

    synerise.write("products", [*second, product(4)])  # 4 comes back
    assert synerise.sync("to_catalog")["added_succeeded"] == 1
    assert synerise.items()["SKU-4"] == item(product(4))

    requests.delete(f"{synerise.sandbox.url}/_sandbox/synerise/catalogs/products", timeout=5).raise_for_status()
    synerise.write("products", [*second, product(4, name="Back again")])
    assert synerise.sync("to_catalog")["changed_succeeded"] == 1  # the catalog deleted behind our back is recreated
    assert synerise.items() == {"SKU-4": item(product(4, name="Back again"))}


def test_tax_inclusive_price_and_labels_as_values(synerise):
    mapping = {**ITEMS["mapping"], "tax_rate": "tax_rate", "colour": "colour_id", "colour_label": "colour_label"}
    synerise.add("plain", ITEMS, object="catalog:plain", operation="upsert", mapping=mapping)
    synerise.add(
        "gross", ITEMS, object="catalog:gross", operation="upsert", mapping=mapping, options={"tax_inclusive_price": True, "labels_as_values": True}
    )
    synerise.write("products", [product(1, price=35.99, tax_rate=0.2), product(2, price=18.0, tax_rate=0.055), product(3, tax_rate=0.0)])
    synerise.sync("plain")
    synerise.sync("gross")
    plain, gross = synerise.items("plain"), synerise.items("gross")
    assert [(v["price"], v["colour"]) for v in plain.values()] == [(35.99, 1), (18.0, 2), (30.0, 3)]
    assert [(v["price"], v["colour"]) for v in gross.values()] == [(43.19, "white"), (18.99, "red"), (30.0, "blue")]
    assert not {"tax_rate", "colour_label"} & (set(plain["SKU-1"]) | set(gross["SKU-1"]))  # read, never sent


# --- transactions -----------------------------------------------------------------------------------


def orders(day: str = DAY) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    heads = [
        {
            "order_id": f"O{i}",
            "customer_id": i,
            "email": f"person.{i}@example.com",
            "order_date": day,
            "created_at": f"{day} 1{i}:00:00",
            "currency": "EUR",
            "store_view": "fr_fr",
        }
        for i in range(1, 4)
    ]
    lines = [{"order_id": f"O{i}", "line_no": n, "sku": f"SKU-{n}", "quantity": n, "unit_price": 9.99} for i in range(1, 4) for n in range(1, i + 1)]
    return heads, lines


def test_a_rerun_day_does_not_duplicate_events_and_products_arrive_nested(synerise):
    heads, lines = orders()
    other_day, other_lines = orders("2026-10-02")
    synerise.write("orders", heads + [{**o, "order_id": f"N{o['order_id']}"} for o in other_day])
    synerise.write("order_lines", lines + [{**line, "order_id": f"N{line['order_id']}"} for line in other_lines])
    synerise.add("to_transactions", TRANSACTIONS)
    result = synerise.sync("to_transactions", partition=DAY)
    assert (result["added_succeeded"], result["invalid"]) == (3, 0)  # only the day's orders
    counts = {"transaction.charge": 3, "product.buy": 6}
    assert synerise.state("events")["counts"] == counts
    o3 = next(t for t in synerise.state("transactions")["transactions"] if t["orderId"] == "O3")
    assert o3["eventSalt"] == "O3" and o3["client"] == {"customId": "3", "email": "person.3@example.com"}
    assert o3["products"] == [{"sku": f"SKU-{n}", "quantity": n, "finalUnitPrice": {"amount": 9.99, "currency": "EUR"}} for n in (1, 2, 3)]
    assert o3["revenue"] == {"amount": 59.94, "currency": "EUR"} and o3["metadata"] == {"store_view": "fr_fr"}
    assert o3["recordedAt"] == f"{DAY}T13:00:00Z"

    synerise.reset_stats()
    again = synerise.sync("to_transactions", {"full_resync": True}, partition=DAY)
    assert again["unchanged_resent"] == 3
    assert synerise.stats()["items_received"] == 3  # Synerise really received the day's three again
    assert synerise.state("events")["counts"] == counts  # eventSalt = order id: overwritten, not duplicated
    assert len(synerise.state("transactions")["transactions"]) == 3

    # what the salt prevents: the same transaction sent without one is stored twice
    token = requests.post(f"{synerise.sandbox.url}/synerise/v4/auth/login/profile", json={"apiKey": "sandbox-synerise-api-key"}, timeout=5).json()[
        "token"
    ]
    unsalted = {k: v for k, v in o3.items() if k not in ("id", "eventSalt")}
    requests.post(f"{synerise.sandbox.url}/synerise/v4/transactions/batch", json=[unsalted], headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert synerise.state("events")["counts"] == {"transaction.charge": 4, "product.buy": 9}


# --- failures, limits, tokens ---------------------------------------------------------------------------


def test_a_rejected_profile_is_recorded_with_its_message_and_retried_next_run(synerise):
    synerise.add("to_profiles", PROFILES)
    rows = [customer(i) for i in range(1, 5)]
    synerise.write("customers", rows)
    synerise.fault(kind="reject_ids", ids=["3"])
    result = synerise.sync("to_profiles")
    assert (result["status"], result["added_succeeded"], result["added_failed"]) == ("partial", 3, 1)
    status, message = synerise.last_run_records("to_profiles")["3"]
    assert status == "rejected" and message.startswith("HTTP 207: [2].customId:") and "rejected by the platform" in message
    assert set(synerise.profiles()) == {"1", "2", "4"}

    requests.delete(f"{synerise.sandbox.url}/_sandbox/faults", timeout=5).raise_for_status()
    retried = synerise.sync("to_profiles")
    assert (retried["added_planned"], retried["added_succeeded"]) == (1, 1)
    assert synerise.profiles() == {str(i): profile(customer(i)) for i in range(1, 5)}


def test_429_with_retry_after_is_waited_out_and_an_expired_token_replaced(synerise):
    synerise.add("to_profiles", PROFILES, max_items_per_request=2)
    synerise.write("customers", [customer(i) for i in range(1, 5)])
    synerise.fault(kind="status", status=429, retry_after=1, count=1, path_contains="clients")
    synerise.fault(kind="status", status=401, count=1, path_contains="clients")
    started = time.monotonic()
    result = synerise.sync("to_profiles")
    assert (result["added_succeeded"], result["retries"]) == (4, 1)
    assert time.monotonic() - started >= 1.0
    assert result["requests"] == 2 + 2 + 1 + 1  # two logins, two batches, one retry after 429, one replay after 401
    assert synerise.stats()["statuses"].get("429") == 1 and synerise.stats()["statuses"].get("401") == 1
    assert synerise.profiles() == {str(i): profile(customer(i)) for i in range(1, 5)}


def test_profiles_scoped_to_store_views_sync_each_view_as_its_own_partition(synerise):
    synerise.add("to_profiles", PROFILES, scope={"column": "store_view", "values": ["en_gb", "fr_fr"]})
    rows = [customer(i) for i in range(1, 10)]  # 3, 6, 9: en_gb; 1, 4, 7: fr_fr; 2, 5, 8: de_de (not listed)
    synerise.write("customers", rows)
    result = synerise.sync("to_profiles")
    assert result["added_succeeded"] == 6
    assert synerise.profiles() == {str(i): profile(customer(i)) for i in (1, 3, 4, 6, 7, 9)}
    with duckdb.connect(str(synerise.warehouse), read_only=True) as conn:
        assert dict(conn.execute('SELECT partition_key, count(*) FROM activation_state."to_profiles" GROUP BY ALL').fetchall()) == {
            "en_gb": 3,
            "fr_fr": 3,
        }

    # only the French view this time: its change goes out, the British one waits for its own run
    rows = [customer(i, first_name="Renamed") if i in (3, 4) else customer(i) for i in range(1, 10)]
    synerise.write("customers", rows)
    assert synerise.sync("to_profiles", run_config={"scopes": ["fr_fr"]})["changed_succeeded"] == 1
    assert (synerise.profiles()["4"]["firstName"], synerise.profiles()["3"]["firstName"]) == ("Renamed", "First3")
    assert synerise.sync("to_profiles")["changed_succeeded"] == 1
    assert synerise.profiles()["3"]["firstName"] == "Renamed"


def test_a_store_view_partition_on_the_target_changes_nothing_in_the_requests(synerise):
    client = SyneriseResource().client()
    target = SyncTarget("scoped", "scoped", "catalog:fr", partition="fr_fr", options={"labels_as_values": False}, model=PLATFORMS["synerise"].target)
    client.prepare(target)
    record = Record("SKU-1", "SKU-1", {"price": 1.0, "productUrl": None, "parentId": None, "category": "A", "image": None})
    assert [o.status for o in client.send(target, "upsert", [record])] == ["confirmed"]
    assert client.send(target, "delete", [record])[0].status == "confirmed"
    assert synerise.items("fr")["SKU-1"]["deleted"] == 1
    client.close()


def test_one_client_serving_two_catalogs_keeps_each_catalogs_items_in_it(synerise):
    client = SyneriseResource().client()
    shoes, hats = (SyncTarget(name, name, f"catalog:{name}", model=PLATFORMS["synerise"].target) for name in ("shoes", "hats"))
    client.prepare(shoes)
    client.prepare(hats)  # prepared last: a client holding one catalog id would send the shoes to the hats

    def item(sku: str) -> Record:
        return Record(sku, sku, {"price": 9.5, "productUrl": None, "parentId": None, "category": "A", "image": None})

    assert [o.status for o in client.send(shoes, "upsert", [item("SHOE-1"), item("SHOE-2")])] == ["confirmed", "confirmed"]
    assert [o.status for o in client.send(hats, "upsert", [item("HAT-1")])] == ["confirmed"]
    assert [o.status for o in client.send(shoes, "delete", [item("SHOE-2")])] == ["confirmed"]
    shoes_held, hats_held = synerise.items("shoes"), synerise.items("hats")
    assert set(shoes_held) == {"SHOE-1", "SHOE-2"} and set(hats_held) == {"HAT-1"}
    assert (shoes_held["SHOE-1"]["deleted"], shoes_held["SHOE-2"]["deleted"], hats_held["HAT-1"]["deleted"]) == (0, 1, 0)
    client.close()


# --- config -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base, overrides, where, says",
    [
        (PROFILES, {"mapping": {"email": "email", "firstName": "first_name"}}, "mapping", "map lastName"),
        (PROFILES, {"mapping": {**PROFILES["mapping"], "customId": "customer_id"}}, "mapping.customId", "is the identifier"),
        (PROFILES, {"max_items_per_request": 1001}, "max_items_per_request", "synerise's limit of 1000"),
        (PROFILES, {"operation": "mirror"}, "operation", "profiles support upsert"),
        (TRANSACTIONS, {"operation": "mirror"}, "operation", "events cannot be deleted"),
        (SUBSCRIPTIONS, {"operation": "delete_only", "mode": "full_only"}, "operation", "subscriptions support upsert"),
        (PROFILES, {"options": {"tax_inclusive_price": True}}, "options.tax_inclusive_price", "catalog items only"),
        (ITEMS, {"options": {"labels_as_values": "yes"}}, "options.labels_as_values", "true or false"),
        (TRANSACTIONS, {"mapping": {"client.email": "email", "recordedAt": "created_at", "currency": "currency"}}, "mapping", "products"),
        (ITEMS, {"mapping": {"price": "price"}}, "mapping", "map productUrl, parentId, category, image"),
        (ITEMS, {"options": {"tax_inclusive_price": True}}, "mapping", "tax_rate"),
        (ITEMS, {"options": {"labels_as_values": True}}, "options.labels_as_values", "<field>_label"),
        (ITEMS, {"options": {"colours": True}}, "options.colours", "tax_inclusive_price, labels_as_values"),
        (ITEMS, {"object": "catalog:my-products"}, "object", "letters and digits"),
        (SUBSCRIPTIONS, {"identifier": None}, "identifier", "matched by email"),
        (SUBSCRIPTIONS, {"mapping": {"agreements.fax": "subscribed"}}, "mapping.agreements.fax", "unknown agreement"),
    ],
)
def test_activations_synerise_cannot_serve_fail_at_config_load(synerise, base, overrides, where, says):
    synerise.add("bad", base, **overrides)
    with pytest.raises(ConfigError) as error:
        load_config(synerise.config_path)
    assert error.value.entry == "activations.bad" and error.value.field == where and says in str(error.value)
