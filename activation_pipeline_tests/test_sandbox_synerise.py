"""The Synerise emulator on its own, over real HTTP: auth and token expiry, payload checks,
per-request limits, upsert and null semantics, catalogs, transactions with their derived
events and eventSalt deduplication, per-item rejections (207) and the shared rate limit."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests

from activation_pipeline_tests.conftest import burst

KEY = "sandbox-synerise-api-key"


@pytest.fixture
def api(sandbox):
    return Api(sandbox.url)


class Api:
    def __init__(self, url: str):
        self.url, self.admin_url = f"{url}/synerise", f"{url}/_sandbox/synerise"
        self.sandbox_url = url
        self.token = self.login().json()["token"]

    def login(self, key: str = KEY) -> requests.Response:
        return requests.post(f"{self.url}/v4/auth/login/profile", json={"apiKey": key}, headers={"Api-Version": "4.4"}, timeout=5)

    def post(self, path: str, body: Any, **headers: str) -> requests.Response:
        return requests.post(
            f"{self.url}{path}", json=body, timeout=10, headers={"Authorization": f"Bearer {self.token}", "Api-Version": "4.4", **headers}
        )

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(f"{self.url}{path}", params=params, headers={"Authorization": f"Bearer {self.token}"}, timeout=5)

    def state(self, what: str) -> Any:
        return requests.get(f"{self.admin_url}/{what}", timeout=5).json()


def order(order_id: str, salt: str | None = None, skus: tuple[str, ...] = ("A", "B")) -> dict[str, Any]:
    body = {
        "client": {"customId": "1", "email": "jane@example.com"},
        "orderId": order_id,
        "recordedAt": "2026-10-01T10:00:00Z",
        "products": [{"sku": s, "quantity": 1, "finalUnitPrice": {"amount": 5.0, "currency": "EUR"}} for s in skus],
        "revenue": {"amount": 5.0 * len(skus), "currency": "EUR"},
    }
    return {**body, "eventSalt": salt} if salt else body


def test_login_gives_a_bearer_token_and_a_wrong_key_is_refused(api):
    assert api.login("wrong").status_code == 401
    assert requests.post(f"{api.url}/uauth/v2/auth/login/profile", json={"apiKey": KEY}, timeout=5).json()["token"]
    assert api.post("/v4/clients/batch", [{"customId": "1"}]).status_code == 202
    assert requests.post(f"{api.url}/v4/clients/batch", json=[{"customId": "1"}], timeout=5).status_code == 401
    basic = base64.b64encode(f"workspace-guid:{KEY}".encode()).decode()
    assert (
        requests.post(f"{api.url}/v4/clients/batch", json=[{"customId": "2"}], headers={"Authorization": f"Basic {basic}"}, timeout=5).status_code
        == 202
    )


def test_an_expired_token_answers_401_token_expired(api):
    requests.post(f"{api.admin_url}/tokens/expire", timeout=5).raise_for_status()
    answer = api.post("/v4/clients/batch", [{"customId": "1"}])
    assert answer.status_code == 401 and answer.json()["error"] == "Token expired."


def test_api_version_can_be_required(api):
    requests.post(f"{api.admin_url}/config", json={"require_api_version": True}, timeout=5).raise_for_status()
    no_version = requests.post(f"{api.url}/v4/clients/batch", json=[{"customId": "1"}], headers={"Authorization": f"Bearer {api.token}"}, timeout=5)
    assert no_version.status_code == 400 and "Api-Version" in no_version.json()["message"]
    assert api.post("/v4/clients/batch", [{"customId": "1"}]).status_code == 202


def test_invalid_profiles_are_refused_whole_and_each_is_named(api):
    answer = api.post(
        "/v4/clients/batch",
        [
            {"customId": "1", "email": "ok@example.com"},
            {"customId": "2", "email": "broken"},
            {"customId": "3", "phone": "+44OO"},
            {"firstName": "anonymous"},
        ],
    )
    assert answer.status_code == 400
    assert [e["field"] for e in answer.json()["errors"]] == ["[1].email", "[2].phone", "[3]"]
    assert api.state("profiles")["profiles"] == []


def test_batches_over_1000_items_or_1_mb_are_refused(api):
    assert api.post("/v4/clients/batch", [{"customId": str(i)} for i in range(1001)]).status_code == 400
    big = [{"customId": str(i), "attributes": {"blob": "x" * 2000}} for i in range(600)]
    assert api.post("/v4/clients/batch", big).status_code == 413
    assert api.post("/v4/clients/batch", [{"customId": str(i)} for i in range(1000)]).status_code == 202


def test_profiles_upsert_by_custom_id_then_email_and_null_deletes_an_attribute(api):
    api.post(
        "/v4/clients/batch",
        [{"customId": "1", "email": "Jane@example.com", "firstName": "Jane", "attributes": {"tier": "gold", "ltv": 10, "email": "ignored"}}],
    )
    api.post(
        "/v4/clients/batch",
        [{"email": "jane@example.com", "agreements": {"email": True}}, {"customId": "1", "firstName": None, "attributes": {"tier": None}}],
    )
    assert [{k: v for k, v in p.items() if k != "clientId"} for p in api.state("profiles")["profiles"]] == [
        {"customId": "1", "email": "jane@example.com", "attributes": {"ltv": 10}, "agreements": {"email": True}}
    ]


def test_catalogs_are_found_by_name_and_items_read_back_with_value_as_json_text(api):
    created = api.post("/catalogs/bags", {"name": "store1"}).json()["data"]
    assert api.post("/catalogs/bags", {"name": "store1"}).status_code == 409
    assert api.post("/catalogs/bags", {"name": "not valid"}).status_code == 400
    assert [b["id"] for b in api.get("/catalogs/bags", searchBy="store1").json()["data"]] == [created["id"]]
    items = f"/catalogs/bags/{created['id']}/items"
    assert api.post(f"{items}/batch", [{"itemKey": "SKU-1", "value": {"itemId": "SKU-1", "price": 9.5}}]).json() is True
    api.post(f"{items}/batch", [{"itemKey": "SKU-1", "value": {"itemId": "SKU-1", "deleted": 1}}])
    read = api.get(f"{items}/itemKey/SKU-1").json()["data"]
    assert read["value"] == '{"itemId":"SKU-1","deleted":1}'  # replaced whole, returned as a string
    assert api.get(f"{items}/itemKey/SKU-2").status_code == 404
    assert api.post("/catalogs/bags/999/items/batch", [{"itemKey": "x", "value": {}}]).status_code == 404
    assert api.post(f"{items}/batch", [{"itemKey": "x", "value": {"bad name": 1}}]).json()["errors"][0]["field"] == "[0].value.bad name"


def test_transactions_derive_charge_and_buy_events_and_a_repeated_salt_overwrites(api):
    assert api.post("/v4/transactions/batch", [order("O1", "O1"), order("O2", "O2", ("C",))]).status_code == 202
    assert api.state("events")["counts"] == {"transaction.charge": 2, "product.buy": 3}
    api.post("/v4/transactions/batch", [order("O1", "O1")])  # same salt: overwritten
    assert api.state("events")["counts"] == {"transaction.charge": 2, "product.buy": 3}
    api.post("/v4/transactions", order("O2"))  # the same orderId without a salt: a duplicate
    api.post("/v4/transactions", order("O2"))
    assert api.state("events")["counts"] == {"transaction.charge": 4, "product.buy": 7}
    assert len(api.state("transactions")["transactions"]) == 4


def test_transactions_with_mixed_currencies_or_no_buyer_are_refused(api):
    mixed = order("O1")
    mixed["revenue"]["currency"] = "USD"
    nobody = {**order("O2"), "client": {}}
    answer = api.post("/v4/transactions/batch", [mixed, nobody, {**order("O3"), "discountAmount": {"amount": 0, "currency": "EUR"}}])
    assert [e["field"] for e in answer.json()["errors"]] == ["[0]", "[1].client", "[2].discountAmount.amount"]


def test_reject_ids_rejects_only_those_items_with_a_207(api, sandbox):
    requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"platform": "synerise", "kind": "reject_ids", "ids": ["2", "O2"]}, timeout=5
    ).raise_for_status()
    answer = api.post("/v4/clients/batch", [{"customId": "1"}, {"customId": "2"}, {"customId": "3"}])
    assert answer.status_code == 207
    assert [(e["field"], e["rejectedValue"]) for e in answer.json()["errors"]] == [("[1].customId", "2")]
    assert sorted(p["customId"] for p in api.state("profiles")["profiles"]) == ["1", "3"]
    assert api.post("/v4/transactions/batch", [order("O1", "O1"), order("O2", "O2")]).status_code == 207
    assert [t["orderId"] for t in api.state("transactions")["transactions"]] == ["O1"]


def test_the_shared_rate_limit_answers_429_with_retry_after(api, sandbox):
    requests.post(f"{sandbox.url}/_sandbox/ratelimit", json={"enabled": True, "requests_per_second": 2}, timeout=5).raise_for_status()
    try:
        answers = burst(lambda i: api.post("/v4/clients/batch", [{"customId": "1"}]), 6)  # three seconds' worth at once
        limited = [a for a in answers if a.status_code == 429]
        assert limited and int(limited[0].headers["Retry-After"]) >= 1
    finally:
        requests.post(f"{sandbox.url}/_sandbox/ratelimit", json={"enabled": False}, timeout=5).raise_for_status()
