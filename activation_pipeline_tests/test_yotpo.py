"""Yotpo customers: real materializations against the sandbox's Yotpo emulator over HTTP.

Upsert (insert mode on) over three runs, update_only (insert mode off) with skipped
customers picked up once they exist, each identifier (external_id, email, phone), invalid
emails and phones never sent, a per-customer rejection with Yotpo's message, 429s waited
out, a token refreshed after a 401, and the secret kept out of logs, metadata and ledger.
Every run's result is checked against the emulator's customers, read through its admin
endpoint."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from activation_pipeline.config import ConfigError, load_config
from activation_pipeline.platforms import PLATFORMS
from activation_pipeline.platforms.base import Record, SyncTarget
from activation_pipeline.platforms.yotpo import YotpoClient, YotpoResource
from activation_pipeline.sandbox import start_sandbox
from activation_pipeline_tests.conftest import Project
from activation_pipeline_tests.platform_cases import YOTPO
from activation_pipeline_tests.platform_cases import YOTPO_STORE as STORE
from activation_pipeline_tests.platform_cases import yotpo_by_email as by_email
from activation_pipeline_tests.platform_cases import yotpo_person as person


@pytest.fixture
def yotpo(project_for: Callable[[str], Project]) -> Project:
    """customers.csv → segments.people → Yotpo activations, on the sandbox's demo credentials."""
    return project_for("yotpo")


# --- upsert (insert mode on) ---------------------------------------------------------------

FIRST = [person(i) for i in range(1, 11)]
# run 2: 1-2 leave the segment (left in Yotpo), 3-4 renamed, 5 changes tier, 11-12 arrive
SECOND = [
    person(i, first_name=f"Renamed{i}" if i in (3, 4) else f"First{i}", tier="platinum" if i == 5 else ("gold" if i % 2 else "silver"))
    for i in range(3, 13)
]
# run 3: 6 loses its tier (the custom property is removed), 1 comes back unchanged
THIRD = [person(1)] + [person(6, tier=None) if r["customer_id"] == 6 else r for r in SECOND]


def test_upsert_creates_customers_then_sends_only_adds_and_changes(yotpo):
    yotpo.add_activation()
    first = yotpo.run(FIRST)
    assert (first["added_planned"], first["added_succeeded"], first["invalid"], first["skipped"]) == (10, 10, 0, 0)
    assert first["requests"] == 11  # one access token + one PATCH per customer (no bulk endpoint)
    assert (yotpo.stats()["total_requests"], yotpo.stats()["items_received"]) == (11, 10)  # as Yotpo counted them
    assert yotpo.customers() == by_email(FIRST)

    yotpo.reset_stats()
    second = yotpo.run(SECOND)
    assert (second["added_planned"], second["changed_planned"], second["unchanged_skipped"]) == (2, 3, 5)
    assert (second["added_succeeded"], second["changed_succeeded"], second["removed_left_in_platform"]) == (2, 3, 2)
    assert second["requests"] == 1 + 5  # only what changed is sent
    assert yotpo.stats()["items_received"] == 5
    assert yotpo.customers() == {**by_email(FIRST), **by_email(SECOND)}

    third = yotpo.run(THIRD)
    assert (third["added_planned"], third["changed_planned"], third["changed_succeeded"]) == (0, 1, 1)
    expected = {**by_email(FIRST), **by_email(SECOND)}
    expected["email:person.6@example.com"]["custom_properties"] = {"ltv": 106.0}  # "" removed the tier property
    assert yotpo.customers() == expected
    assert yotpo.snapshot_keys() == {str(i) for i in range(1, 13)}
    payload = yotpo.sql("SELECT payload FROM activation_state.sync_records WHERE key = '3' ORDER BY recorded_at DESC, seq DESC LIMIT 1")[0][0]
    assert json.loads(payload)["first_name"] == "Renamed3"


@pytest.mark.parametrize(
    "kind, identifier, key_of",
    [
        ("external_id", "external_id", lambda r: r["external_id"]),
        ("email", "email", lambda r: f"email:{r['email']}"),
        ("phone", "phone", lambda r: f"phone:{r['phone']}"),
    ],
)
def test_each_identifier_matches_customers_by_that_field_only(yotpo, kind, identifier, key_of):
    yotpo.add_activation(object=kind, identifier=identifier, mapping={"first_name": "first_name"}, custom_attributes=["tier"])
    rows = [person(i) for i in range(1, 5)]
    assert yotpo.run(rows)["added_succeeded"] == 4
    wire = {"external_id": "external_id", "email": "email", "phone": "phone_number"}[kind]
    expected = {key_of(r): {wire: r[identifier], "first_name": r["first_name"], "custom_properties": {"tier": r["tier"]}} for r in rows}
    assert yotpo.customers() == expected
    # a second run with a change updates the same customer instead of creating another
    rows[0] = person(1, first_name="Again")
    assert yotpo.run(rows)["changed_succeeded"] == 1
    expected[key_of(rows[0])]["first_name"] = "Again"
    assert yotpo.customers() == expected


def test_external_id_activations_may_send_email_phone_and_standard_fields(yotpo):
    yotpo.add_activation(
        object="external_id",
        identifier="external_id",
        custom_attributes=[],
        mapping={"email": "email", "phone_number": "phone", "first_name": "first_name", "account_created_at": "signed_up", "address.city": "tier"},
    )
    yotpo.run([person(1)])
    assert yotpo.customers() == {
        "C00001": {
            "external_id": "C00001",
            "email": "person.1@example.com",
            "phone_number": "+447700900001",
            "first_name": "First1",
            "account_created_at": "2025-01-02T03:04:05Z",
            "address": {"city": "gold"},
        }
    }


# --- update_only (insert mode off) ---------------------------------------------------------


def test_update_only_updates_existing_customers_and_skips_the_rest_until_they_exist(yotpo):
    yotpo.precreate([{"external_id": f"C{i:05d}", "email": f"old.{i}@example.com", "first_name": "Old"} for i in (1, 2, 3)])
    yotpo.add_activation(object="external_id", identifier="external_id", operation="update_only")
    rows = [person(i) for i in range(1, 7)]

    first = yotpo.run(rows)
    assert (first["added_planned"], first["added_succeeded"], first["skipped"], first["added_failed"]) == (6, 3, 3, 0)
    assert first["status"] == "succeeded"
    customers = yotpo.customers()
    assert set(customers) == {"C00001", "C00002", "C00003"}  # nobody was created
    assert customers["C00002"] == {
        "external_id": "C00002",
        "email": "old.2@example.com",
        "first_name": "First2",
        "last_name": "Last2",
        "custom_properties": {"tier": "silver", "ltv": 102.0},
    }
    records = yotpo.last_run_records()
    assert records["4"] == ("skipped", "no Yotpo customer with external_id C00004; insert mode is off (update_only)")
    assert {k for k, (status, _) in records.items() if status == "confirmed"} == {"1", "2", "3"}

    yotpo.precreate([{"external_id": "C00005", "first_name": "Later"}])  # created in Yotpo meanwhile
    second = yotpo.run(rows)
    assert second["skipped"] == 2  # 4 and 6 are still unknown to Yotpo
    assert yotpo.last_run_records()["5"][0] == "confirmed"
    customers = yotpo.customers()
    assert set(customers) == {"C00001", "C00002", "C00003", "C00005"}
    assert customers["C00005"] == {
        "external_id": "C00005",
        "first_name": "First5",
        "last_name": "Last5",
        "custom_properties": {"tier": "gold", "ltv": 105.0},
    }


def test_update_only_confirmed_updates_advance_the_snapshot_and_skipped_ones_do_not(yotpo):
    yotpo.precreate([{"external_id": f"C{i:05d}"} for i in (1, 2, 3)])
    yotpo.add_activation(object="external_id", identifier="external_id", operation="update_only")
    rows = [person(i) for i in range(1, 7)]
    yotpo.run(rows)
    assert yotpo.snapshot_keys() == {"1", "2", "3"}  # skipped is not confirmed: tried again next run
    yotpo.precreate([{"external_id": "C00005"}])
    second = yotpo.run(rows)
    assert (second["added_planned"], second["added_succeeded"], second["skipped"]) == (3, 1, 2)
    assert yotpo.snapshot_keys() == {"1", "2", "3", "5"}


def test_update_only_by_email_reads_the_store_once_and_updates_only_known_emails(yotpo):
    yotpo.precreate([{"external_id": "SHOP-1", "email": "person.1@example.com"}, {"email": "person.3@example.com"}])
    yotpo.add_activation(operation="update_only", custom_attributes=["tier"])
    result = yotpo.run([person(i) for i in range(1, 5)])
    assert (result["added_succeeded"], result["skipped"]) == (2, 2)
    assert result["requests"] == 1 + 1 + 2  # token, one page of the store's customers, two PATCHes
    assert yotpo.stats()["total_requests"] == 4  # as Yotpo counted them
    assert yotpo.customers() == {
        "SHOP-1": {
            "external_id": "SHOP-1",
            "email": "person.1@example.com",
            "first_name": "First1",
            "last_name": "Last1",
            "custom_properties": {"tier": "gold"},
        },
        "email:person.3@example.com": {
            "email": "person.3@example.com",
            "first_name": "First3",
            "last_name": "Last3",
            "custom_properties": {"tier": "gold"},
        },
    }
    assert yotpo.last_run_records()["2"][0] == "skipped"


# --- what is never sent, and what Yotpo refuses --------------------------------------------


def test_malformed_or_missing_emails_and_phones_are_invalid_and_never_sent(yotpo):
    rows = [
        person(1),
        person(7, email="person.7.example.com"),
        person(8, email="person 8@example.com"),
        person(9, email=None),
        person(13, phone="+44 12"),
        person(14, phone="07700900014"),
        person(15, phone="+447700"),
    ]
    yotpo.add_activation()
    result = yotpo.run(rows)
    assert (result["added_succeeded"], result["invalid"]) == (4, 3)
    assert result["requests"] == 1 + 4
    assert yotpo.stats()["items_received"] == 4  # Yotpo never received the three invalid ones
    records = yotpo.last_run_records()
    assert {k: v[0] for k, v in records.items()} == {
        "1": "confirmed",
        "7": "invalid",
        "8": "invalid",
        "9": "invalid",
        "13": "confirmed",
        "14": "confirmed",
        "15": "confirmed",
    }
    assert "malformed email 'person.7.example.com'" in records["7"][1]
    assert set(yotpo.customers()) == {f"email:person.{i}@example.com" for i in (1, 13, 14, 15)}

    yotpo.add_activation("by_phone", object="phone", identifier="phone", mapping={}, custom_attributes=[])
    by_phone = yotpo.run(rows, "by_phone")
    assert (by_phone["added_succeeded"], by_phone["invalid"]) == (4, 3)
    records = yotpo.last_run_records("by_phone")
    assert records["13"] == ("invalid", "phone '+44 12' is not in E.164 format (+, then 7 to 15 digits)")
    assert records["14"][0] == records["15"][0] == "invalid"  # no country code; too short to be a number
    phones = {k for k in yotpo.customers() if k.startswith("phone:")}
    assert phones == {f"phone:{person(i)['phone']}" for i in (1, 7, 8, 9)}


def test_a_customer_yotpo_rejects_is_recorded_with_its_message_and_retried_next_run(yotpo):
    yotpo.add_activation(mapping={"first_name": "first_name", "gender": "last_name"}, custom_attributes=[])
    rows = [person(i, last_name="F") for i in range(1, 6)]
    yotpo.fault(kind="reject_ids", ids=["person.3@example.com"])
    result = yotpo.run(rows)
    assert (result["status"], result["added_succeeded"], result["added_failed"]) == ("partial", 4, 1)
    status, message = yotpo.last_run_records()["3"]
    assert status == "rejected" and message.startswith("HTTP 4") and len(message) > len("HTTP 400: ")
    assert [r.data["message"] for r in result["failed_records"].records] == [message]
    assert "email:person.3@example.com" not in yotpo.customers()

    requests.delete(f"{yotpo.sandbox.url}/_sandbox/faults", timeout=5).raise_for_status()
    retried = yotpo.run(rows)
    assert (retried["added_planned"], retried["added_succeeded"]) == (1, 1)
    assert yotpo.customers()["email:person.3@example.com"]["gender"] == "F"


def test_a_value_yotpo_refuses_is_rejected_with_the_platform_message(yotpo):
    yotpo.add_activation(object="external_id", identifier="external_id", mapping={"account_created_at": "tier"}, custom_attributes=[])
    result = yotpo.run([person(1), person(2)])
    assert result["added_failed"] == 2  # "gold"/"silver" are not ISO 8601 dates: only Yotpo says so
    status, message = yotpo.last_run_records()["1"]
    assert status == "rejected" and "account_created_at" in message


# --- rate limits, tokens, secrets -----------------------------------------------------------


def test_429_with_retry_after_is_waited_out(yotpo):
    yotpo.add_activation()
    yotpo.fault(kind="status", status=429, retry_after=1, count=2, path_contains="customers")
    started = time.monotonic()
    result = yotpo.run([person(i) for i in range(1, 4)])
    assert (result["added_succeeded"], result["retries"]) == (3, 2)
    assert yotpo.stats()["statuses"].get("429") == 2  # Yotpo did refuse twice
    assert time.monotonic() - started >= 1.0  # Retry-After: 1 was honoured
    assert yotpo.customers() == by_email([person(i) for i in range(1, 4)])


def test_the_emulators_5_per_second_limit_is_respected_by_client_pacing(yotpo):
    requests.post(f"{yotpo.sandbox.url}/_sandbox/ratelimit", json={"enabled": True, "requests_per_second": 5}, timeout=5).raise_for_status()
    try:
        yotpo.settings["requests_per_second"] = 5
        yotpo.add_activation(concurrency=4)
        rows = [person(i) for i in range(1, 13)]
        started = time.monotonic()
        result = yotpo.run(rows)
        assert result["added_succeeded"] == 12
        assert time.monotonic() - started >= 12 / 5 - 1.5  # paced, not bursting
        assert yotpo.customers() == by_email(rows)
    finally:
        requests.post(f"{yotpo.sandbox.url}/_sandbox/ratelimit", json={"enabled": False}, timeout=5).raise_for_status()


def test_a_store_limit_shared_with_another_client_is_still_honoured(yotpo):
    """Another process (a second activation, the shop's own integration) spends the same store's
    5 requests/s: 429s come back, the client slows down and every customer still arrives."""
    import threading

    requests.post(f"{yotpo.sandbox.url}/_sandbox/ratelimit", json={"enabled": True, "requests_per_second": 5}, timeout=5).raise_for_status()
    stop = threading.Event()

    def neighbour() -> None:
        while not stop.is_set():  # ~3 of the store's 5 requests/s
            requests.post(f"{yotpo.sandbox.url}/yotpo/core/v3/stores/{STORE}/access_tokens", json={"secret": "x"}, timeout=5)
            stop.wait(0.3)

    other = threading.Thread(target=neighbour, daemon=True)
    try:
        other.start()
        yotpo.settings["requests_per_second"] = 5
        yotpo.settings["backoff_seconds"] = 0.25
        yotpo.add_activation(concurrency=4)
        rows = [person(i) for i in range(1, 13)]
        result = yotpo.run(rows)
        assert (result["status"], result["added_succeeded"]) == ("succeeded", 12)
        assert result["retries"] > 0  # the limit was really hit
        assert yotpo.stats()["statuses"].get("429", 0) > 0  # as Yotpo answered it
        assert yotpo.customers() == by_email(rows)
    finally:
        stop.set()
        other.join(timeout=5)
        requests.post(f"{yotpo.sandbox.url}/_sandbox/ratelimit", json={"enabled": False}, timeout=5).raise_for_status()


def test_an_expired_token_is_replaced_once_and_the_request_replayed(yotpo):
    yotpo.add_activation()
    yotpo.fault(kind="status", status=401, count=1, path_contains="customers")
    result = yotpo.run([person(i) for i in range(1, 4)])
    assert result["added_succeeded"] == 3
    assert result["requests"] == 2 + 3 + 1  # two tokens, three PATCHes, one replay
    assert yotpo.stats()["statuses"] == {"200": 5, "401": 1}  # as Yotpo answered them
    assert yotpo.customers() == by_email([person(i) for i in range(1, 4)])


def test_a_token_refused_even_when_fresh_fails_the_run_with_the_reason(yotpo):
    yotpo.add_activation()
    yotpo.fault(kind="status", status=401, count=2, path_contains="customers")
    yotpo.write_customers([person(1)])
    failed = yotpo.materialize(raise_on_error=False)
    assert not failed.success
    failure = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"][0].step_failure_data.error.message
    assert "refused a fresh access token" in failure


def test_tokens_are_scrubbed_from_every_message_of_the_session(sandbox, monkeypatch):
    monkeypatch.setenv("YOTPO_BASE_URL", f"{sandbox.url}/yotpo/core/v3/stores/{{store_id}}")
    client: YotpoClient = YotpoResource(requests_per_second=0).client()
    client.prepare(SyncTarget("unit", "unit", "email", model=PLATFORMS["yotpo"].target))
    token = client._tokens.current()
    assert token and token not in client.session.redact(f"header X-Yotpo-Token: {token}")
    assert "sandbox-yotpo-secret" not in client.session.redact("secret sandbox-yotpo-secret")
    assert (
        client.invalid_reason(SyncTarget("unit", "unit", "email", model=PLATFORMS["yotpo"].target), Record("1", "a@b.co", {"gender": "X"}), "upsert")
        == "gender: 'X' is not one of F, M, Other"
    )
    client.close()


SECRET = "yotpo-secret-9c41e7b2d5"
PRIVATE_STORE = "private-store-77"


@pytest.fixture
def private_sandbox(tmp_path, monkeypatch):
    monkeypatch.setenv("SANDBOX_YOTPO_SECRET", SECRET)
    monkeypatch.setenv("SANDBOX_YOTPO_STORE_ID", PRIVATE_STORE)
    server = start_sandbox(port=0, state_path=tmp_path / "private.sqlite", rate_limit=False)
    yield server
    server.stop()


def test_the_secret_never_reaches_logs_metadata_or_the_ledger(tmp_path, private_sandbox, monkeypatch, instance):
    monkeypatch.setenv("YOTPO_BASE_URL", f"{private_sandbox.url}/yotpo/core/v3/stores/{{store_id}}")
    monkeypatch.setenv("YOTPO_STORE_ID", PRIVATE_STORE)
    monkeypatch.setenv("YOTPO_SECRET", SECRET)
    project = Project(tmp_path, private_sandbox, instance, YOTPO)
    project.add_activation()
    requests.post(
        f"{private_sandbox.url}/_sandbox/faults", json={"platform": "yotpo", "kind": "reject_ids", "ids": ["person.2@example.com"]}, timeout=5
    ).raise_for_status()
    requests.post(
        f"{private_sandbox.url}/_sandbox/faults",
        json={"platform": "yotpo", "kind": "status", "status": 401, "count": 1, "path_contains": "customers"},
        timeout=5,
    ).raise_for_status()
    result = project.run([person(i) for i in range(1, 5)] + [person(5, email="broken")])
    assert (result["added_succeeded"], result["added_failed"], result["invalid"]) == (3, 1, 1)
    assert len(project.customers(PRIVATE_STORE)) == 3
    # a wrong secret: the failure says so without echoing what was sent
    monkeypatch.setenv("YOTPO_SECRET", SECRET + "-wrong")
    project.write_customers([person(i) for i in range(1, 7)])
    failed = project.materialize(raise_on_error=False)
    failure = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"][0].step_failure_data.error.message
    assert "refused the API secret" in failure and "401" in failure

    logs = []
    for run in instance.get_runs():
        for record in instance.all_logs(run.run_id):
            logs.append(str(record.user_message))
            logs.append(str(record.dagster_event))
    written = (
        "\n".join(logs)
        + str(project.sql("SELECT * FROM activation_state.sync_records"))
        + str(project.sql("SELECT * FROM activation_state.sync_runs"))
    )
    assert SECRET not in written
    assert "person.2@example.com" in written and "refused the API secret" in written  # the scan did read them


# --- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, where, says",
    [
        ({"object": "customers"}, "object", "external_id, email or phone"),
        ({"identifier": None}, "identifier", "needs `identifier:`"),
        ({"mapping": {"phone_number": "phone"}}, "mapping.phone_number", "exactly one of email or phone_number"),
        ({"mapping": {"external_id": "external_id"}}, "mapping.external_id", "may not also send external_id"),
        ({"mapping": {"email": "email"}}, "mapping.email", "is the identifier here"),
        ({"mapping": {"loyalty": "tier"}}, "mapping.loyalty", "not a Yotpo customer field"),
        ({"mapping": {"address.planet": "tier"}}, "mapping.address.planet", "not a Yotpo address field"),
        ({"custom_attributes": ["first_name"]}, "custom_attributes", "standard Yotpo customer field"),
        ({"custom_attributes": ["a_very_long_custom_property_name_x"]}, "custom_attributes", "1-32 lowercase"),
        ({"operation": "mirror"}, "operation", "yotpo supports update_only, upsert"),
        ({"max_items_per_request": 2}, "max_items_per_request", "yotpo's limit of 1"),
    ],
)
def test_activations_yotpo_cannot_serve_fail_at_config_load(yotpo, overrides, where, says):
    yotpo.add_activation(**overrides)
    with pytest.raises(ConfigError) as error:
        load_config(yotpo.config_path)
    assert error.value.entry == "activations.to_yotpo" and error.value.field == where and says in str(error.value)


def test_unknown_destination_settings_fail_at_config_load(yotpo):
    yotpo.settings["batch_size"] = 10
    yotpo.add_activation()
    with pytest.raises(ConfigError) as error:
        load_config(yotpo.config_path)
    assert "destinations.yotpo_test" in str(error.value) and "batch_size" in str(error.value)


def test_the_demo_datas_malformed_emails_and_phones_are_caught_before_sending():
    demo = Path(__file__).resolve().parents[1] / "data" / "demo" / "customers.csv"
    client = YotpoClient.__new__(YotpoClient)  # invalid_reason needs no session
    with open(demo, newline="") as handle:
        rows = list(csv.DictReader(handle))
    flagged = {}
    for kind, column in (("email", "email"), ("phone", "phone")):
        target = SyncTarget("demo", "demo", kind, model=PLATFORMS["yotpo"].target)
        flagged[kind] = {int(r["customer_id"]) for r in rows if client.invalid_reason(target, Record(r["customer_id"], r[column], {}), "upsert")}
    assert flagged["email"] == {int(r["customer_id"]) for r in rows if int(r["customer_id"]) % 200 == 7}
    assert flagged["phone"] == {int(r["customer_id"]) for r in rows if int(r["customer_id"]) % 200 == 13}
    assert load_config(Path(__file__).resolve().parents[1] / "data" / "activations.yaml").activations["high_value_to_yotpo"].object == "email"


@pytest.mark.parametrize("body_prefix", ["x" * 290, "x" * 495, ""])
def test_an_echoed_secret_is_scrubbed_before_the_message_is_cut(body_prefix):
    from types import SimpleNamespace

    from activation_pipeline.platforms.http import redact
    from activation_pipeline.platforms.yotpo import error_message

    for text in (body_prefix + SECRET + "y" * 600, '{"errors": [{"message": "' + body_prefix + SECRET + '"}]}'):
        message = error_message(SimpleNamespace(status_code=400, text=text), lambda t: redact(t, [SECRET]))
        assert SECRET[:6] not in message and message.startswith("HTTP 400: ")
