"""Dotdigital: real materializations against the sandbox's Dotdigital emulator over HTTP.

Lists over three runs (created once, contacts added with their data fields, leavers removed
from the list but kept in the account), data-field names refused at config load, import-report
failures retried, failed jobs, malformed emails, 429s, account-scoped product insight data with
mirror deletes, and contact-scoped orders partitioned by day. Each run's result is checked
against the emulator's whole state, read through its admin endpoint."""

from __future__ import annotations

import time
from collections.abc import Callable

import duckdb
import pytest
import requests

from activation_pipeline.config import ConfigError, load_config
from activation_pipeline_tests.conftest import Project
from activation_pipeline_tests.platform_cases import DOTDIGITAL_COLUMNS as COLUMNS
from activation_pipeline_tests.platform_cases import dotdigital_contact as contact
from activation_pipeline_tests.platform_cases import dotdigital_person as person

STANDARD = {"FIRSTNAME": "String", "LASTNAME": "String", "FULLNAME": "String", "GENDER": "String", "POSTCODE": "String"}


@pytest.fixture
def dd(project_for: Callable[[str], Project]) -> Project:
    """people.csv → segments.people (keyed by email), orders.csv → daily segments, on the demo credentials."""
    return project_for("dotdigital")


FIRST = [person(i) for i in range(1, 6)]
SECOND = [person(1, tier="platinum"), *[person(i) for i in range(2, 5)], person(6)]  # 1 changed, 5 left, 6 added
THIRD = [person(1, tier="platinum"), person(2, first_name="Renamed"), person(4), person(6), person(7)]  # 3 left, 7 added


# --- lists -------------------------------------------------------------------------------------


def test_mirror_creates_the_list_once_and_removes_leavers_from_it_but_not_from_the_account(dd):
    dd.add(operation="mirror")
    first = dd.run(FIRST)
    assert (first["added_succeeded"], first["added_failed"]) == (5, 0)
    assert dd.state()["data_fields"] == {**STANDARD, "TIER": "String", "LTV": "Numeric", "VIP": "Boolean", "SIGNED_UP": "Date"}
    second = dd.run(SECOND)
    assert (second["added_succeeded"], second["changed_succeeded"], second["removed_succeeded"]) == (1, 1, 1)
    third = dd.run(THIRD)
    assert (third["added_succeeded"], third["changed_succeeded"], third["removed_succeeded"]) == (1, 1, 1)

    state = dd.state()
    assert list(state["lists"]) == ["High value customers"]  # one list across three runs
    assert dd.members() == sorted(r["email"] for r in THIRD)
    everyone = {r["email"]: contact(r) for r in [*FIRST, *SECOND, *THIRD]}  # last version of each row wins
    assert dd.contacts() == everyone  # persons 3 and 5 left the list, not the account
    assert dd.snapshot_keys() == {r["email"] for r in THIRD}


def test_mirror_of_a_segment_keyed_by_customer_removes_leavers_by_the_email_it_confirmed(dd):
    """The snapshot keeps each record's identifier: a leaver is removed by the email the list holds."""
    dd.add(segment="people_by_id", identifier="email", operation="mirror")
    for rows in (FIRST, SECOND, THIRD):
        dd.run(rows)
    assert dd.members() == sorted(r["email"] for r in THIRD)
    assert dd.contacts() == {r["email"]: contact(r) for r in [*FIRST, *SECOND, *THIRD]}
    assert dict(dd.sql('SELECT key, identifier FROM activation_state."to_list"')) == {
        r["email"].split(".")[1].split("@")[0]: r["email"] for r in THIRD
    }


def test_a_snapshot_from_before_identifiers_were_kept_gets_them_from_the_segment(dd):
    dd.add(segment="people_by_id", identifier="email", operation="mirror")
    dd.run(FIRST)
    with duckdb.connect(str(dd.warehouse)) as conn:  # as an older version left it: no identifier column values
        conn.execute('UPDATE activation_state."to_list" SET identifier = NULL')
    dd.run(FIRST)  # nothing changed: the diff fills the identifiers in from the segment
    assert dict(dd.sql('SELECT key, identifier FROM activation_state."to_list"')) == {str(i): f"person.{i}@example.com" for i in range(1, 6)}
    assert dd.run(SECOND)["removed_succeeded"] == 1  # person 5 left: removed by its email
    assert dd.members() == sorted(r["email"] for r in SECOND)


def test_upsert_adds_and_updates_contacts_and_leaves_leavers_in_the_list(dd):
    dd.add(operation="upsert")
    for rows in (FIRST, SECOND, THIRD):
        dd.run(rows)
    assert list(dd.state()["lists"]) == ["High value customers"]
    assert dd.members() == sorted({r["email"] for r in [*FIRST, *SECOND, *THIRD]})
    assert dd.contacts() == {r["email"]: contact(r) for r in [*FIRST, *SECOND, *THIRD]}


def test_an_existing_list_of_the_same_name_is_reused_not_duplicated(dd):
    requests.post(f"{dd.sandbox.url}/_sandbox/dotdigital/lists", json=["Other", "High value customers"], timeout=5).raise_for_status()
    dd.add(operation="upsert")
    dd.run(FIRST[:2])
    state = dd.state()
    assert list(state["lists"]) == ["Other", "High value customers"]
    assert state["lists"]["High value customers"]["contacts"] == [FIRST[0]["email"], FIRST[1]["email"]]


def test_a_new_title_is_a_first_sync_of_the_list_it_names_and_the_old_list_keeps_its_contacts(dd):
    """The list is found by its title: a new title is another list, never a silent 'nothing to send'."""
    dd.add(operation="upsert")
    dd.run(FIRST)
    dd.add(operation="upsert", title="Gold customers")
    again = dd.run(FIRST)  # the same rows: only the retarget makes them go to the new list
    assert again["added_succeeded"] == 5
    assert "High value customers" in again["retargeted"] and "Gold customers" in again["retargeted"]
    assert dd.members("Gold customers") == sorted(r["email"] for r in FIRST)
    assert dd.members() == sorted(r["email"] for r in FIRST)  # the old list is left as it was
    assert dd.sql("SELECT target FROM activation_state.sync_runs ORDER BY started_at DESC LIMIT 1")[0][0].count("Gold customers") == 1


def test_a_new_title_on_a_mirror_list_is_refused_until_allowed(dd):
    dd.add(operation="mirror")
    dd.run(FIRST)
    dd.add(operation="mirror", title="Gold customers")
    dd.write("people", FIRST, COLUMNS)
    result = dd.materialize(raise_on_error=False)
    assert not result.success
    assert "Gold customers" not in dd.state()["lists"]  # nothing was sent
    assert dd.snapshot_keys() == {r["email"] for r in FIRST}
    status, error = dd.sql("SELECT status, error FROM activation_state.sync_runs ORDER BY started_at DESC LIMIT 1")[0]
    assert status == "refused" and "allow_retarget: true" in error and "Gold customers" in error


def test_delete_only_removes_the_segments_contacts_from_the_list(dd):
    dd.seed_contacts([{"email": r["email"], "lists": ["High value customers"]} for r in FIRST])
    dd.add(mode="full_only", operation="delete_only", mapping={})
    result = dd.run(FIRST[:2] + [person(9)])  # person 9 is not in the account: nothing to remove
    assert result["added_succeeded"] == 3
    assert dd.members() == sorted(r["email"] for r in FIRST[2:])
    assert set(dd.contacts()) == {r["email"] for r in FIRST}


def test_a_list_activation_without_a_schedule_runs_every_six_hours(dd):
    dd.add()
    assert load_config(dd.config_path).activations["to_list"].cron == ("0 */6 * * *", "UTC")


@pytest.mark.parametrize(
    "mapping, where, says",
    [
        ({"LOYALTY_TIER_FOR_2026X": "tier"}, "mapping.LOYALTY_TIER_FOR_2026X", "at most 20"),
        ({"loyalty-tier": "tier"}, "mapping.loyalty-tier", "letters, digits and underscores"),
        ({"loyalty tier": "tier"}, "mapping.loyalty tier", "letters, digits and underscores"),
        ({"Tier": "tier", "TIER": "first_name"}, "mapping.TIER", "case-insensitively"),
    ],
)
def test_an_invalid_data_field_name_fails_the_config_load_naming_the_field(dd, mapping, where, says):
    dd.add(mapping=mapping)
    with pytest.raises(ConfigError) as error:
        load_config(dd.config_path)
    assert (error.value.entry, error.value.field) == ("activations.to_list", where)
    assert says in error.value.problem


@pytest.mark.parametrize(
    "overrides, where",
    [
        ({"object": "contacts"}, "object"),
        ({"object": "insight:x"}, "object"),  # collection names have at least 2 characters
        ({"options": {"match_identifier": "phone"}}, "options.match_identifier"),
        ({"object": "contact_insight:orders", "options": {"list_id": 3}}, "options.list_id"),
        ({"object": "insight:products", "options": {"contact_email": "email"}}, "options.contact_email"),
        ({"options": {"merge_option": "sometimes"}}, "options.merge_option"),
        ({"options": {"list_id": "3"}}, "options.list_id"),
        ({"operation": "update_only"}, "operation"),
        ({"object": "contact_insight:orders", "operation": "mirror"}, "operation"),  # contact-scoped records: upsert only
    ],
)
def test_activations_dotdigital_cannot_serve_fail_at_config_load(dd, overrides, where):
    dd.add(**overrides)
    with pytest.raises(ConfigError) as error:
        load_config(dd.config_path)
    assert error.value.field == where


def test_an_invalid_collection_name_in_the_destination_fails_the_config_load(dd):
    dd.settings["collections"] = {"products": "1bad name"}
    dd.add()
    with pytest.raises(ConfigError) as error:
        load_config(dd.config_path)
    assert (error.value.entry, error.value.field) == ("destinations.dd", "settings.collections")


def test_malformed_emails_are_invalid_and_never_sent(dd):
    dd.add()
    result = dd.run([person(1), person(2, email="not-an-email"), person(3, email="a@b@example.com")])
    assert (result["added_succeeded"], result["invalid"]) == (1, 2)
    assert set(dd.contacts()) == {"person.1@example.com"}
    records = dd.last_run_records()
    assert records["not-an-email"][0] == "invalid" and "malformed email" in records["not-an-email"][1]


def test_a_contact_the_import_report_fails_is_rejected_and_retried_next_run(dd):
    dd.add()
    dd.fault(kind="reject_ids", ids=["person.2@example.com"])
    first = dd.run(FIRST)
    assert (first["added_succeeded"], first["added_failed"]) == (4, 1)
    status, message = dd.last_run_records()["person.2@example.com"]
    assert status == "rejected" and message.startswith("rejected: Contact rejected by the platform")
    assert "person.2@example.com" not in dd.snapshot_keys() and "person.2@example.com" not in dd.members()
    dd.clear_faults()
    second = dd.run(FIRST)
    assert (second["added_succeeded"], second["unchanged_skipped"]) == (1, 4)
    assert dd.members() == sorted(r["email"] for r in FIRST)


def test_a_value_that_does_not_fit_an_existing_field_is_the_contacts_rejection(dd):
    dd.add(mapping={"FIRSTNAME": "first_name", "GENDER": "ltv"})  # GENDER is a standard text field
    result = dd.run([person(1)])
    assert result["added_failed"] == 1
    assert "invalidDataFieldValue" in dd.last_run_records()["person.1@example.com"][1]


def test_a_failed_import_job_rejects_its_batch_and_the_next_run_resends_it(dd):
    dd.add()
    dd.configure(final_status="RejectedByWatchdog")
    first = dd.run(FIRST[:2])
    assert first["added_failed"] == 2
    assert "ended RejectedByWatchdog" in dd.last_run_records()[FIRST[0]["email"]][1]
    assert dd.snapshot_keys() == set()
    dd.configure(final_status="Finished")
    assert dd.run(FIRST[:2])["added_succeeded"] == 2


def test_an_import_still_running_at_the_poll_timeout_is_no_answer(dd):
    dd.settings["poll_timeout_seconds"] = 0.2
    dd.add()
    dd.configure(polls_before_finished=1000)
    result = dd.run(FIRST[:2])
    assert result["added_failed"] == 2
    status, message = dd.last_run_records()[FIRST[0]["email"]]
    assert status == "no_answer" and "still running" in message


def test_429s_with_retry_after_are_waited_out(dd):
    dd.add()
    dd.fault(kind="status", status=429, retry_after=1, count=2, path_contains="/contacts/v3/import")
    started = time.monotonic()
    result = dd.run(FIRST)
    assert (result["added_succeeded"], result["retries"]) == (5, 2)
    assert dd.stats()["statuses"].get("429") == 2  # Dotdigital did refuse twice
    assert time.monotonic() - started >= 1.0
    assert dd.members() == sorted(r["email"] for r in FIRST)


def test_the_shared_rate_limit_is_honoured(dd):
    requests.post(f"{dd.sandbox.url}/_sandbox/ratelimit", json={"enabled": True, "requests_per_second": 5}, timeout=5).raise_for_status()
    try:
        dd.add(max_items_per_request=2)
        result = dd.run(FIRST)
        assert result["added_succeeded"] == 5 and result["retries"] > 0  # 429s were met and waited out
        assert dd.stats()["statuses"].get("429", 0) > 0  # as Dotdigital answered them
        assert dd.members() == sorted(r["email"] for r in FIRST)
    finally:
        requests.post(f"{dd.sandbox.url}/_sandbox/ratelimit", json={"enabled": False}, timeout=5).raise_for_status()


# --- insight data ------------------------------------------------------------------------------


def test_products_mirror_into_an_account_scoped_collection(dd):
    columns = ["email", "first_name", "tier", "ltv", "vip", "signed_up"]  # reuse people.csv: email as the product key
    dd.add("products", object="insight:products", operation="mirror", mapping={"name": "first_name", "price": "ltv"})
    dd.run(FIRST, "products", columns)
    dd.run(SECOND, "products", columns)
    collection = dd.state()["insight"]["Catalog_Default"]
    assert (collection["scope"], collection["type"]) == ("account", "catalog")
    assert collection["records"] == {"account": {r["email"]: {"name": r["first_name"], "price": r["ltv"]} for r in SECOND}}


def test_orders_go_to_a_contact_scoped_collection_one_day_at_a_time(dd):
    dd.seed_contacts([{"email": "ann@example.com"}, {"email": "bob@example.com"}])
    orders = [
        {"order_id": "O1", "email": "ann@example.com", "order_date": "2026-10-01", "total": 10.5},
        {"order_id": "O2", "email": "bob@example.com", "order_date": "2026-10-01", "total": 20.0},
        {"order_id": "O3", "email": "ann@example.com", "order_date": "2026-10-02", "total": 30.0},
        {"order_id": "O4", "email": "nobody@example.com", "order_date": "2026-10-02", "total": 40.0},
    ]
    dd.write("orders", orders)
    dd.add(
        "orders", segment="daily_orders", object="contact_insight:orders", mapping={"email": "email", "order_date": "order_date", "total": "total"}
    )
    for day in ("2026-10-01", "2026-10-02"):
        event = dd.materialize("orders", partition=day).asset_materializations_for_node("activations__orders")[0]
        assert event.partition == day
    assert dd.state()["insight"] == {
        "Orders": {
            "scope": "contact",
            "type": "orders",
            "records": {
                "ann@example.com": {
                    "O1": {"email": "ann@example.com", "order_date": "2026-10-01", "total": 10.5},
                    "O3": {"email": "ann@example.com", "order_date": "2026-10-02", "total": 30.0},
                },
                "bob@example.com": {"O2": {"email": "bob@example.com", "order_date": "2026-10-01", "total": 20.0}},
            },
        }
    }
    status, message = dd.last_run_records("orders")["O4"]  # the contact does not exist: that record's rejection
    assert status == "rejected" and message.startswith("ContactEmailDoesNotExist")
    assert dd.sql('SELECT partition_key, count(*) FROM activation_state."orders" GROUP BY 1 ORDER BY 1') == [("2026-10-01", 2), ("2026-10-02", 1)]
