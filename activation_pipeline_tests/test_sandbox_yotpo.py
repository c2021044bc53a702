"""The Yotpo emulator over real HTTP: tokens, customers upsert/retrieve, validation, rate limiting, faults, admin.

Uses its own function-scoped sandbox (fixture ``sb``), never the shared session one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from activation_pipeline.sandbox import SandboxServer, start_sandbox
from activation_pipeline_tests.conftest import burst

STORE = "store-test-7c1"
SECRET = "yotpo-secret-9e2b"


@pytest.fixture
def yotpo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_YOTPO_STORE_ID", STORE)
    monkeypatch.setenv("SANDBOX_YOTPO_SECRET", SECRET)
    for name in (
        "SANDBOX_RATE_LIMIT",
        "SANDBOX_YOTPO_TOKEN_TTL_SECONDS",
        "SANDBOX_YOTPO_PATCH_STATUS",
        "SANDBOX_YOTPO_VALIDATION_STATUS",
        "SANDBOX_YOTPO_REQUIRE_EXTERNAL_ID",
        "SANDBOX_YOTPO_UNKNOWN_FIELDS",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sb(tmp_path: Path, yotpo_env: None) -> Iterator[SandboxServer]:
    with start_sandbox(port=0, state_path=tmp_path / "sandbox" / "state.sqlite", rate_limit=False) as server:
        yield server


class Client:
    """A raw Yotpo Core v3 caller over one keep-alive session (no retries, no refresh)."""

    def __init__(self, server: SandboxServer, store: str = STORE) -> None:
        self.server, self.base = server, f"{server.url}/yotpo/core/v3/stores/{store}"
        self.http = requests.Session()

    def token(self, secret: str = SECRET) -> requests.Response:
        return self.http.post(f"{self.base}/access_tokens", json={"secret": secret}, timeout=5)

    def login(self) -> str:
        response = self.token()
        assert response.status_code == 200, response.text
        self.http.headers["X-Yotpo-Token"] = response.json()["access_token"]
        return self.http.headers["X-Yotpo-Token"]

    def patch(self, customer: Any, wrap: bool = True) -> requests.Response:
        return self.http.patch(f"{self.base}/customers", json={"customer": customer} if wrap else customer, timeout=5)

    def get(self, **params: Any) -> requests.Response:
        return self.http.get(f"{self.base}/customers", params=params, timeout=5)

    def admin(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = requests.request(method, f"{self.server.url}/_sandbox{path}", json=body, params=params, timeout=5)
        assert response.status_code < 300, response.text
        return response.json()

    def stored(self) -> dict[str, Any]:
        return self.admin("GET", "/yotpo/customers", store=STORE)["customers"]


@pytest.fixture
def api(sb: SandboxServer) -> Client:
    client = Client(sb)
    client.login()
    return client


def error_of(response: requests.Response) -> tuple[int, str, str | None]:
    (entry,) = response.json()["errors"]
    return response.status_code, entry["code"], entry.get("field")


JANE = {
    "external_id": "c-1",
    "email": "jane@example.com",
    "phone_number": "+14155552671",
    "first_name": "Jane",
    "last_name": "Doe",
    "gender": "F",
    "account_created_at": "2020-09-08T08:43:27Z",
    "account_status": "enabled",
    "default_language": "en",
    "default_currency": "USD",
    "tags": "vipgold,loyal",
    "address": {"address1": "1 Main St", "address2": "", "city": "SF", "company": None, "state": "CA", "zip": "94105", "country_code": "US"},
    "accepts_sms_marketing": True,
    "accepts_email_marketing": False,
    "custom_properties": {"loyalty_tier": "gold", "points": 120, "vip": True},
}


# --------------------------------------------------------------------------- auth


def test_token_issue_and_401_on_bad_credentials_or_token(sb: SandboxServer) -> None:
    client = Client(sb)
    assert error_of(client.token("wrong-secret-41d8"))[:2] == (401, "unauthorized")
    assert error_of(Client(sb, "other-store").token())[:2] == (401, "unauthorized")
    missing = client.http.post(f"{client.base}/access_tokens", json={}, timeout=5)
    assert error_of(missing) == (400, "invalid_field", "secret")
    form = client.http.post(f"{client.base}/access_tokens", data={"secret": SECRET}, timeout=5)
    assert form.status_code == 415  # Content-Type must be application/json
    assert error_of(client.get())[:2] == (401, "unauthorized")  # no token
    client.http.headers["X-Yotpo-Token"] = "made-up-token-77aa"
    assert error_of(client.get())[:2] == (401, "unauthorized")
    assert error_of(client.patch(JANE))[:2] == (401, "unauthorized")
    first = client.login()
    assert client.get().status_code == 200
    second = client.login()
    assert second != first and client.get().status_code == 200
    client.http.headers["X-Yotpo-Token"] = first  # earlier tokens stay valid until they expire
    assert client.get().status_code == 200
    other = Client(sb, "other-store")
    other.http.headers["X-Yotpo-Token"] = first  # a token is bound to its store
    assert error_of(other.get())[:2] == (401, "unauthorized")
    assert client.stored() == {}
    stats = requests.get(f"{sb.url}/_sandbox/stats", timeout=5).text
    for secret in (SECRET, "wrong-secret-41d8", first, second, "made-up-token-77aa"):
        assert secret not in stats


def test_expired_token_is_401_and_a_refresh_replays(api: Client) -> None:
    api.login()  # a token that lives an hour: the patch is in time however slow the machine
    assert api.patch(JANE).status_code == 200
    assert api.admin("POST", "/yotpo/config", {"token_ttl_seconds": 60})["token_ttl_seconds"] == 60
    api.login()
    api.admin("POST", "/clock", {"advance_seconds": 61})  # the sandbox's own clock: past the token's lifetime, no sleep
    assert error_of(api.patch({**JANE, "first_name": "Janet"}))[:2] == (401, "unauthorized")
    api.admin("POST", "/yotpo/config", {"token_ttl_seconds": 3600})
    api.login()  # refresh once, replay
    assert api.patch({**JANE, "first_name": "Janet"}).status_code == 200
    assert api.stored()["c-1"]["first_name"] == "Janet"
    api.login()
    assert api.admin("POST", "/yotpo/tokens/expire")["expired"] >= 1
    assert error_of(api.get())[:2] == (401, "unauthorized")


# --------------------------------------------------------------------------- customers


def test_create_update_and_retrieve_by_external_id_email_phone(api: Client) -> None:
    created = api.patch(JANE)
    assert created.status_code == 200
    customer = created.json()["customer"]
    assert customer["external_id"] == "c-1" and isinstance(customer["yotpo_id"], int)
    assert customer["address"]["country_code"] == "US" and "company" not in customer["address"]
    assert customer["custom_properties"] == {"loyalty_tier": "gold", "points": 120, "vip": True}

    update = {
        "external_id": "c-1",
        "first_name": "Janet",
        "email": None,
        "address": {"city": "LA"},
        "custom_properties": {"loyalty_tier": "", "points": 150},
    }
    updated = api.patch(update).json()["customer"]
    assert updated["yotpo_id"] == customer["yotpo_id"] and updated["created_at"] == customer["created_at"]
    assert updated["first_name"] == "Janet" and updated["last_name"] == "Doe"
    assert updated["email"] == "jane@example.com"  # null means "leave as is"
    assert updated["address"]["city"] == "LA" and updated["address"]["zip"] == "94105"
    assert updated["custom_properties"] == {"points": 150, "vip": True}  # "" removes a property

    assert api.patch({"external_id": "c-2", "email": "bob@example.com", "phone_number": "+442071838750"}).ok
    assert api.patch({"external_id": "c-3", "email": "JANE@example.com"}).ok
    stored = api.stored()
    assert set(stored) == {"c-1", "c-2", "c-3"} and stored["c-1"] == updated

    def ids(response: requests.Response) -> list[str]:
        assert response.status_code == 200, response.text
        return [c["external_id"] for c in response.json()["customers"]]

    assert ids(api.get(external_ids="c-1")) == ["c-1"]
    assert ids(api.get(external_ids="c-3,c-2,nope")) == ["c-2", "c-3"]
    assert ids(api.get(emails="jane@EXAMPLE.com")) == ["c-1", "c-3"]  # case-insensitive
    assert ids(api.get(phone_numbers="+442071838750")) == ["c-2"]
    assert ids(api.get(email="jane@example.com", external_ids="c-3")) == ["c-3"]  # filters AND
    assert ids(api.get(external_ids="unknown")) == []
    assert error_of(api.get(externalIds="c-1")) == (400, "invalid_field", "externalIds")

    page = api.get(limit=2)
    assert ids(page) == ["c-1", "c-2"]
    cursor = page.json()["pagination"]["next_page_info"]
    rest = api.get(limit=2, page_info=cursor)
    assert ids(rest) == ["c-3"] and rest.json()["pagination"]["next_page_info"] is None
    filtered = api.get(emails="jane@example.com", limit=1)
    assert ids(api.get(page_info=filtered.json()["pagination"]["next_page_info"])) == ["c-3"]
    assert error_of(api.get(page_info=cursor, emails="x@y.co"))[2] == "emails"
    assert error_of(api.get(page_info="garbage!"))[2] == "page_info"
    assert error_of(api.get(limit=101))[2] == "limit"


def test_identity_without_external_id(api: Client) -> None:
    first = api.patch({"email": "solo@example.com", "first_name": "Solo"}).json()["customer"]
    again = api.patch({"email": "SOLO@example.com", "last_name": "Han"}).json()["customer"]
    assert again["yotpo_id"] == first["yotpo_id"] and again["first_name"] == "Solo" and again["last_name"] == "Han"
    assert api.patch({"phone_number": "+33612345678"}).status_code == 200
    admin = api.admin("GET", "/yotpo/customers", store=STORE)
    assert admin["customers"] == {} and len(admin["without_external_id"]) == 2
    both = api.patch({"email": "a@example.com", "phone_number": "+33612345678"})
    assert error_of(both) == (400, "invalid_field", "customer.external_id")
    assert error_of(api.patch({"first_name": "Nobody"})) == (400, "invalid_field", "customer.external_id")
    api.admin("POST", "/yotpo/config", {"require_external_id": True})
    assert error_of(api.patch({"email": "solo@example.com"})) == (400, "invalid_field", "customer.external_id")


@pytest.mark.parametrize(
    ("customer", "field"),
    [
        ({"external_id": "x", "email": "not-an-email"}, "customer.email"),
        ({"external_id": "x", "email": "a b@example.com"}, "customer.email"),
        ({"external_id": "x", "phone_number": "4155552671"}, "customer.phone_number"),
        ({"external_id": "x", "phone_number": "+1 415 555 2671"}, "customer.phone_number"),
        ({"external_id": 42, "email": "a@example.com"}, "customer.external_id"),
        ({"external_id": ""}, "customer.external_id"),
        ({"external_id": "x" * 256}, "customer.external_id"),
        ({"external_id": "x", "first_name": 7}, "customer.first_name"),
        ({"external_id": "x", "gender": "female"}, "customer.gender"),
        ({"external_id": "x", "account_status": "active"}, "customer.account_status"),
        ({"external_id": "x", "account_created_at": "08/09/2020"}, "customer.account_created_at"),
        ({"external_id": "x", "default_language": "eng"}, "customer.default_language"),
        ({"external_id": "x", "default_currency": "US$"}, "customer.default_currency"),
        ({"external_id": "x", "tags": ["vip", "loyal"]}, "customer.tags"),
        ({"external_id": "x", "accepts_sms_marketing": "true"}, "customer.accepts_sms_marketing"),
        ({"external_id": "x", "address": {"country_code": "USA"}}, "customer.address.country_code"),
        ({"external_id": "x", "address": {"street": "1 Main"}}, "customer.address.street"),
        ({"external_id": "x", "custom_properties": {"tier": None}}, "customer.custom_properties.tier"),
        ({"external_id": "x", "custom_properties": {"Loyalty Tier": "gold"}}, "customer.custom_properties.Loyalty Tier"),
        ({"external_id": "x", "custom_properties": {"t": {"nested": 1}}}, "customer.custom_properties.t"),
        ({"external_id": "x", "custom_properties": {"t": "v" * 256}}, "customer.custom_properties.t"),
        ({"external_id": "x", "shoe_size": 42}, "customer.shoe_size"),
    ],
)
def test_invalid_customer_is_rejected_naming_the_field(api: Client, customer: dict[str, Any], field: str) -> None:
    response = api.patch(customer)
    assert error_of(response) == (400, "invalid_field", field)
    assert field in response.json()["errors"][0]["message"]
    assert api.stored() == {}


def test_body_shape_content_type_and_configurable_statuses(api: Client) -> None:
    assert error_of(api.patch({"external_id": "x"}, wrap=False)) == (400, "invalid_field", "external_id")
    assert error_of(api.patch({}, wrap=False)) == (400, "invalid_field", "customer")
    assert error_of(api.patch([JANE], wrap=False))[:2] == (400, "invalid_request")  # one customer per request
    raw = api.http.patch(f"{api.base}/customers", data=b'{"customer": {', timeout=5, headers={"Content-Type": "application/json"})
    assert error_of(raw)[:2] == (400, "invalid_json")
    no_type = api.http.patch(f"{api.base}/customers", data=b'{"customer": {"external_id": "x"}}', timeout=5)
    assert error_of(no_type)[:2] == (415, "unsupported_media_type")
    assert api.stored() == {}

    assert api.admin("POST", "/yotpo/config", {"validation_status": 422, "patch_status": 204}) == {
        "token_ttl_seconds": 1209600.0,
        "patch_status": 204,
        "validation_status": 422,
        "require_external_id": False,
        "unknown_fields": "reject",
    }
    assert error_of(api.patch({"external_id": "x", "email": "nope"})) == (422, "invalid_field", "customer.email")
    empty = api.patch(JANE)
    assert empty.status_code == 204 and empty.content == b""
    api.admin("POST", "/yotpo/config", {"patch_status": 201, "unknown_fields": "ignore"})
    assert api.patch({"external_id": "y", "shoe_size": 42}).status_code == 201
    assert "shoe_size" not in api.stored()["y"]
    for bad in ({"patch_status": 202}, {"token_ttl_seconds": -1}, {"nope": 1}, {"require_external_id": "yes"}):
        assert requests.post(f"{api.server.url}/_sandbox/yotpo/config", json=bad, timeout=5).status_code == 400


def test_unknown_routes_and_methods(api: Client) -> None:
    assert error_of(api.http.get(f"{api.base}/orders", timeout=5))[:2] == (404, "not_found")
    assert error_of(api.http.get(f"{api.server.url}/yotpo/core/v1/stores/{STORE}/customers", timeout=5))[0] == 404
    wrong = api.http.post(f"{api.base}/customers", json={"customer": JANE}, timeout=5)
    assert error_of(wrong)[:2] == (405, "method_not_allowed") and wrong.headers["Allow"] == "PATCH, GET"
    assert api.stored() == {}


# --------------------------------------------------------------------------- rate limiting, faults


def test_rate_limit_429_with_retry_after_per_store(api: Client) -> None:
    api.admin("POST", "/ratelimit", {"enabled": True, "requests_per_second": 5})
    remaining = []
    for i in range(5):
        response = api.patch({"external_id": f"r{i}"})
        assert response.status_code == 200, response.text
        remaining.append(int(response.headers["RateLimit-Remaining"]))
    # counts down from 4 (a slow machine may refill a token between two of them, never add more)
    assert remaining[0] == 4 and remaining == sorted(remaining, reverse=True)
    # three seconds' worth at once, PATCHes and GETs: at most a bucket's 5 pass, however long the five above took
    answers = burst(lambda i: api.patch({"external_id": "r5"}) if i % 2 else api.get(), 15)
    assert sum(a.status_code == 200 for a in answers) <= 5
    limited = next(a for i, a in enumerate(answers) if i % 2 and a.status_code == 429)
    assert error_of(limited)[:2] == (429, "too_many_requests")
    assert int(limited.headers["Retry-After"]) >= 1 and limited.headers["RateLimit-Remaining"] == "0"
    assert limited.headers["RateLimit-Reset"] == limited.headers["Retry-After"]
    assert any(error_of(a)[0] == 429 for i, a in enumerate(answers) if not i % 2)  # every endpoint of the store counts
    other = Client(api.server, "other-store")
    assert error_of(other.token())[0] == 401  # another store has its own bucket (and no credentials here)
    time.sleep(int(limited.headers["Retry-After"]))
    assert api.patch({"external_id": "r5"}).status_code == 200
    assert set(api.stored()) == {f"r{i}" for i in range(6)}
    api.admin("POST", "/ratelimit", {"enabled": False})
    assert all(api.patch({"external_id": f"s{i}"}).status_code == 200 for i in range(12))


def test_faults_apply_to_yotpo_requests(api: Client) -> None:
    api.admin("POST", "/faults", {"platform": "batch", "kind": "status", "status": 500})
    api.admin("POST", "/faults", {"platform": "yotpo", "kind": "status", "status": 503, "retry_after": 2, "path_contains": "/customers"})
    failed = api.patch(JANE)
    assert error_of(failed)[:2] == (503, "service_unavailable") and failed.headers["Retry-After"] == "2"
    assert api.stored() == {}
    assert api.patch(JANE).status_code == 200  # consumed; the batch fault does not match yotpo
    assert [f["platform"] for f in api.admin("GET", "/faults")["faults"]] == ["batch"]

    api.admin("POST", "/faults", {"platform": "yotpo", "kind": "reject_ids", "ids": ["c-bad", "x@example.com"]})
    assert error_of(api.patch({"external_id": "c-bad"})) == (400, "customer_rejected", "customer.external_id")
    assert error_of(api.patch({"email": "x@example.com"})) == (400, "customer_rejected", "customer.email")
    assert api.patch({"external_id": "c-ok"}).status_code == 200
    api.admin("POST", "/faults", {"platform": "yotpo", "kind": "drop_before"})
    with pytest.raises(requests.ConnectionError):
        api.patch({"external_id": "c-dropped"})
    api.admin("DELETE", "/faults")
    assert set(api.stored()) == {"c-1", "c-ok"}
    stats = api.admin("GET", "/stats")["yotpo"]
    assert stats["statuses"]["503"] == 1 and stats["dropped"] == 1 and stats["faults_injected"] == 2
    assert stats["items_applied"] == 2


# --------------------------------------------------------------------------- admin, reset, persistence


def test_admin_precreate_inspect_reset_and_health(api: Client, tmp_path: Path) -> None:
    health = requests.get(f"{api.server.url}/_sandbox/health", timeout=5).json()
    assert "yotpo" in health["platforms"]
    created = api.admin(
        "POST", "/yotpo/customers", [{"external_id": "pre-1", "email": "p1@example.com"}, {"external_id": "pre-2", "first_name": "Pat"}]
    )
    assert set(created["customers"]) == {"pre-1", "pre-2"}
    bad = requests.post(f"{api.server.url}/_sandbox/yotpo/customers", timeout=5, json=[{"external_id": "ok"}, {"external_id": "b", "email": "nope"}])
    assert bad.status_code == 400 and "customers[1]" in bad.text and "customer.email" in bad.text
    api.admin("POST", "/yotpo/customers", {"store": "elsewhere", "customers": [{"external_id": "e-1"}]})
    assert set(api.admin("GET", "/yotpo/customers", store="elsewhere")["customers"]) == {"e-1"}
    assert [c["external_id"] for c in api.get(external_ids="pre-2").json()["customers"]] == ["pre-2"]
    assert api.patch({"external_id": "pre-2", "last_name": "Lee"}).json()["customer"]["first_name"] == "Pat"
    assert set(api.stored()) == {"pre-1", "pre-2"}

    api.admin("POST", "/yotpo/config", {"patch_status": 201})
    stats = api.admin("GET", "/stats")["yotpo"]
    assert stats["total_requests"] == 3 and stats["items_received"] == 1  # token, GET, PATCH
    assert api.admin("POST", "/reset") == {"ok": True}
    assert api.stored() == {} and api.admin("GET", "/stats")["yotpo"]["total_requests"] == 0
    assert api.admin("GET", "/yotpo/config")["patch_status"] == 200  # settings back to env defaults
    assert error_of(api.get())[0] == 401  # tokens are gone too
    api.login()
    api.admin("POST", "/yotpo/customers", [{"external_id": "pre-3"}])
    assert api.admin("DELETE", "/yotpo/customers", store=STORE) == {"customers": {}}


def test_customers_and_tokens_persist_across_restarts(tmp_path: Path, yotpo_env: None) -> None:
    state = tmp_path / "state.sqlite"
    with start_sandbox(port=0, state_path=state, rate_limit=False) as first:
        client = Client(first)
        token = client.login()
        assert client.patch(JANE).status_code == 200
    with start_sandbox(port=0, state_path=state, rate_limit=False) as second:
        client = Client(second)
        client.http.headers["X-Yotpo-Token"] = token
        (customer,) = client.get(external_ids="c-1").json()["customers"]
        assert customer["email"] == JANE["email"]
    files = [p for p in tmp_path.iterdir() if p.name.startswith("state.sqlite")]
    assert files and not any(token.encode() in p.read_bytes() for p in files)  # only a hash is stored
