"""The sandbox's Dotdigital emulator over HTTP: Basic auth, lists and data fields (v2), async
contact and insight imports (v3) with their reports, concurrency caps, the shared rate limit,
fault injection, and the admin endpoints."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from activation_pipeline_tests.conftest import burst

AUTH = ("apiuser-sandbox@apiconnector.com", "sandbox-dotdigital-password")


@pytest.fixture
def dd(sandbox: Any) -> Api:
    return Api(sandbox.url)


class Api:
    def __init__(self, url: str):
        self.url, self.base = url, f"{url}/dotdigital"

    def call(self, method: str, path: str, auth: Any = AUTH, **kwargs: Any) -> requests.Response:
        return requests.request(method, f"{self.base}{path}", auth=auth, timeout=10, **kwargs)

    def state(self) -> dict[str, Any]:
        return requests.get(f"{self.url}/_sandbox/dotdigital/state", timeout=10).json()

    def config(self, **settings: Any) -> None:
        requests.post(f"{self.url}/_sandbox/dotdigital/config", json=settings, timeout=5).raise_for_status()

    def wait(self, service: str, import_id: str) -> tuple[list[str], dict[str, Any]]:
        statuses = []
        for _ in range(20):
            body = self.call("GET", f"/{service}/v3/import/{import_id}").json()
            statuses.append(body["status"])
            if body["status"] not in ("NotFinished", "NotStarted"):
                return statuses, body
        raise AssertionError(statuses)

    def new_list(self, name: str = "Buyers") -> int:
        response = self.call("POST", "/v2/address-books", json={"name": name})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def import_contacts(self, contacts: list[dict[str, Any]]) -> requests.Response:
        return self.call("PUT", "/contacts/v3/import", json={"contacts": contacts})


def contact(email: str, list_id: int | None = None, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"matchIdentifier": "email", "identifiers": {"email": email}, "dataFields": fields}
    if list_id is not None:
        out["lists"] = [list_id]
    return out


@pytest.mark.parametrize("auth", [None, ("apiuser-sandbox@apiconnector.com", "wrong"), ("someone@else.com", AUTH[1])])
def test_every_call_needs_the_api_users_basic_credentials(dd, auth):
    for method, path in (("GET", "/v2/address-books"), ("PUT", "/contacts/v3/import"), ("GET", "/insightData/v3/import/x")):
        response = dd.call(method, path, auth=auth, json={})
        assert response.status_code == 401
        assert response.json() == {"message": "Authorization has been denied for this request."}


def test_lists_are_created_listed_in_pages_and_unique_by_name(dd):
    ids = [dd.new_list(f"List {i}") for i in range(3)]
    duplicate = dd.call("POST", "/v2/address-books", json={"name": "list 1"})
    assert duplicate.status_code == 400 and "ERROR_ADDRESSBOOK_DUPLICATE" in duplicate.json()["message"]
    page = dd.call("GET", "/v2/address-books", params={"select": 2, "skip": 1}).json()
    assert [(b["id"], b["name"], b["visibility"], b["contacts"]) for b in page] == [
        (ids[1], "List 1", "Private", 0),
        (ids[2], "List 2", "Private", 0),
    ]
    assert dd.call("GET", "/v2/address-books", params={"select": 1001}).status_code == 400
    assert "ERROR_ADDRESSBOOK_NOT_FOUND" in dd.call("GET", "/v2/address-books/999").json()["message"]
    assert dd.call("POST", "/v2/address-books", json={"name": "x" * 129}).status_code == 400


@pytest.mark.parametrize(
    "name, type_, code",
    [
        ("A" * 21, "String", "ERROR_DATAFIELD_INVALID"),
        ("has space", "String", "ERROR_DATAFIELD_INVALID"),
        ("TIER", "Text", "ERROR_DATAFIELD_INVALID"),
        ("firstname", "String", "ERROR_NON_UNIQUE_DATAFIELD"),  # FIRSTNAME exists: names are case-insensitive
    ],
)
def test_data_field_names_and_types_are_checked(dd, name, type_, code):
    response = dd.call("POST", "/v2/data-fields", json={"name": name, "type": type_, "visibility": "Private"})
    assert response.status_code == 400 and code in response.json()["message"]


def test_a_data_field_is_created_once_and_listed(dd):
    body = {"name": "LOYALTY_TIER", "type": "String", "visibility": "Private", "defaultValue": None}
    assert dd.call("POST", "/v2/data-fields", json=body).status_code == 201
    assert dd.call("POST", "/v2/data-fields", json={**body, "name": "loyalty_tier"}).status_code == 400
    names = [f["name"] for f in dd.call("GET", "/v2/data-fields").json()]
    assert names == ["FIRSTNAME", "FULLNAME", "GENDER", "LASTNAME", "LOYALTY_TIER", "POSTCODE"]


def test_a_contact_import_is_asynchronous_and_reports_each_contact(dd):
    dd.config(polls_before_finished=3)
    list_id = dd.new_list()
    dd.call("POST", "/v2/data-fields", json={"name": "LTV", "type": "Numeric"})
    submitted = dd.import_contacts(
        [
            contact("ann@example.com", list_id, FIRSTNAME="Ann", ltv=3.5),
            contact("bad@example@com", list_id),
            contact("ANN@example.com", list_id),
            contact("bob@example.com", list_id, UNKNOWN="x"),
            contact("cy@example.com", list_id, LTV="many"),
        ]
    )
    assert submitted.status_code == 202
    statuses, report = dd.wait("contacts", submitted.json()["importId"])
    assert statuses == ["NotFinished"] * 3 + ["Finished"]
    assert [c["identifiers"]["email"] for c in report["created"]] == ["ann@example.com"] and report["updated"] == []
    assert [(f["identifiers"]["email"], f["failures"][0]["failureCode"]) for f in report["failures"]] == [
        ("bad@example@com", "invalidEmail"),
        ("ANN@example.com", "duplicateIdentifier"),
        ("bob@example.com", "invalidDataField"),
        ("cy@example.com", "invalidDataFieldValue"),
    ]
    assert report["summary"] == {"newContacts": 1, "updatedContacts": 0, "globallySuppressed": 0, "invalidEntries": 4, "duplicateIdentifiers": 1}
    assert dd.state()["contacts"] == {"ann@example.com": {"contactId": 1, "mobileNumber": None, "dataFields": {"FIRSTNAME": "Ann", "LTV": 3.5}}}
    again = dd.import_contacts([contact("ann@example.com", list_id, FIRSTNAME=None)])
    _, report = dd.wait("contacts", again.json()["importId"])
    assert [c["contactId"] for c in report["updated"]] == [1]
    assert dd.state()["contacts"]["ann@example.com"]["dataFields"] == {"LTV": 3.5}  # null cleared the field


@pytest.mark.parametrize(
    "body, code",
    [
        ({"contacts": []}, "contacts:noContactsSpecified"),
        ({"contacts": [{"identifiers": {"email": "a@b.co"}}]}, "contacts:badRequest"),
        ({"contacts": [{"matchIdentifier": "email"}]}, "contacts:badRequest"),
        ({"mergeOption": "sometimes", "contacts": [contact("a@b.co")]}, "contacts:badRequest"),
        ({"contacts": [contact("a@b.co", 12345)]}, "contacts:badRequest"),  # no such list
    ],
)
def test_a_malformed_contact_import_is_refused_whole(dd, body, code):
    response = dd.call("PUT", "/contacts/v3/import", json=body)
    assert response.status_code == 400 and response.json()["errorCode"] == code


def test_an_unknown_import_id_is_404(dd):
    response = dd.call("GET", "/contacts/v3/import/nope")
    assert response.status_code == 404 and response.json()["errorCode"] == "contacts:importNotFound"


def test_at_most_25_contact_imports_and_5_insight_imports_run_at_once(dd):
    for _ in range(25):
        assert dd.import_contacts([contact("a@example.com")]).status_code == 202
    refused = dd.import_contacts([contact("a@example.com")])
    assert refused.status_code == 429 and refused.json()["errorCode"] == "contacts:tooManyActiveImports"
    record = {"collectionName": "Catalog", "collectionScope": "account", "collectionType": "catalog", "records": [{"key": "1", "json": {"a": 1}}]}
    ids = [dd.call("PUT", "/insightData/v3/import", json=record).json()["importId"] for _ in range(5)]
    assert dd.call("PUT", "/insightData/v3/import", json=record).status_code == 429
    dd.wait("insightData", ids[0])  # a finished import frees its slot
    assert dd.call("PUT", "/insightData/v3/import", json=record).status_code == 202


def test_a_contact_leaves_a_list_but_stays_in_the_account(dd):
    list_id = dd.new_list()
    dd.wait("contacts", dd.import_contacts([contact("ann@example.com", list_id), contact("bob@example.com", list_id)]).json()["importId"])
    ann = dd.call("GET", "/contacts/v3/email/ann@example.com").json()
    assert ann["lists"] == [{"id": list_id, "name": "Buyers", "status": "subscribed"}]
    removed = dd.call("POST", f"/v2/address-books/{list_id}/contacts/delete", json=[ann["contactId"]])
    assert removed.status_code == 202 and removed.json()["status"] == "Started"
    assert dd.call("GET", "/contacts/v3/email/ann@example.com").json()["lists"] == []
    assert dd.state()["lists"]["Buyers"]["contacts"] == ["bob@example.com"]
    assert set(dd.state()["contacts"]) == {"ann@example.com", "bob@example.com"}
    missing = dd.call("GET", "/contacts/v3/email/nobody@example.com")
    assert missing.status_code == 404 and missing.json()["errorCode"] == "contacts:contactNotFound"


def test_insight_imports_fill_collections_and_report_refused_records(dd):
    requests.post(f"{dd.url}/_sandbox/dotdigital/contacts", json=[{"email": "ann@example.com"}], timeout=5).raise_for_status()
    body = {
        "collectionName": "Orders",
        "collectionScope": "contact",
        "collectionType": "orders",
        "records": [
            {"key": "1", "contactIdentity": {"identifier": "email", "value": "ann@example.com"}, "json": {"total": 1}},
            {"key": "2", "contactIdentity": {"identifier": "email", "value": "nobody@example.com"}, "json": {"total": 2}},
            {"key": "3", "contactIdentity": {"identifier": "email", "value": "ann@example.com"}, "json": {"lines": [[1]]}},
        ],
    }
    statuses, report = dd.wait("insightData", dd.call("PUT", "/insightData/v3/import", json=body).json()["importId"])
    assert statuses == ["NotStarted", "NotStarted", "Finished"]
    assert report["summary"] == {"totalRecords": 3, "totalImported": 1, "totalRejected": 2}
    assert [(f["key"], f["failureReason"]) for f in report["failures"]] == [("2", "ContactEmailDoesNotExist"), ("3", "JsonContainsNestedArray")]
    assert dd.state()["insight"] == {"Orders": {"scope": "contact", "type": "orders", "records": {"ann@example.com": {"1": {"total": 1}}}}}
    no_identity = {**body, "records": [{"key": "9", "json": {}}]}
    assert dd.call("PUT", "/insightData/v3/import", json=no_identity).json()["errorCode"] == "insightData:badRequest"


def test_account_records_are_deleted_by_key(dd):
    body = {
        "collectionName": "Catalog_Default",
        "collectionScope": "account",
        "collectionType": "catalog",
        "records": [{"key": k, "json": {"sku": k}} for k in ("A", "B")],
    }
    dd.wait("insightData", dd.call("PUT", "/insightData/v3/import", json=body).json()["importId"])
    assert dd.call("GET", "/insightData/v3/account/Catalog_Default/A").json() == {"key": "A", "json": {"sku": "A"}}
    deleted = dd.call("DELETE", "/insightData/v3/accounts/Catalog_Default/deleteRecords", json={"keys": ["A", "Z"]})
    assert deleted.json() == {"summary": {"totalRecords": 2, "totalDeleted": 1, "totalNotFound": 1}, "notFound": ["Z"]}
    assert dd.state()["insight"]["Catalog_Default"]["records"] == {"account": {"B": {"sku": "B"}}}
    unknown = dd.call("DELETE", "/insightData/v3/accounts/Nope/deleteRecords", json={"keys": ["A"]})
    assert unknown.status_code == 404 and unknown.json()["errorCode"] == "insightData:collectionNotFound"


def test_reject_ids_fails_that_contact_in_the_report(dd, sandbox):
    requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"platform": "dotdigital", "kind": "reject_ids", "ids": ["bob@example.com"]}, timeout=5
    ).raise_for_status()
    _, report = dd.wait("contacts", dd.import_contacts([contact("ann@example.com"), contact("bob@example.com")]).json()["importId"])
    assert [c["identifiers"]["email"] for c in report["created"]] == ["ann@example.com"]
    assert report["failures"][0]["identifiers"] == {"email": "bob@example.com"}
    assert report["failures"][0]["failures"][0]["failureCode"] == "rejected"


def test_a_failed_job_applies_nothing_visible_in_its_report(dd):
    dd.config(final_status="Failed", polls_before_finished=0)
    _, report = dd.wait("contacts", dd.import_contacts([contact("ann@example.com")]).json()["importId"])
    assert report == {"importId": report["importId"], "status": "Failed"}


def test_the_shared_rate_limit_answers_429_with_dotdigitals_headers(dd, sandbox):
    requests.post(f"{sandbox.url}/_sandbox/ratelimit", json={"enabled": True, "requests_per_second": 2}, timeout=5).raise_for_status()
    try:
        answers = burst(lambda i: dd.call("GET", "/v2/data-fields"), 6)  # three seconds' worth at once
    finally:
        requests.post(f"{sandbox.url}/_sandbox/ratelimit", json={"enabled": False}, timeout=5).raise_for_status()
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    headers = limited[0].headers
    assert int(headers["Retry-After"]) >= 1 and headers["x-ratelimit-reset"] == headers["Retry-After"]
    assert headers["x-ratelimit-scope"] == "account" and "x-ratelimit-limit" in headers


def test_reset_clears_everything_but_the_standard_fields(dd, sandbox):
    dd.new_list()
    requests.post(f"{sandbox.url}/_sandbox/reset", timeout=5).raise_for_status()
    state = dd.state()
    assert (state["lists"], state["contacts"], state["insight"]) == ({}, {}, {})
    assert set(state["data_fields"]) == {"FIRSTNAME", "LASTNAME", "FULLNAME", "GENDER", "POSTCODE"}
