"""The Batch emulator over real HTTP: contract, validation, rate limiting, faults, persistence.

Uses its own function-scoped sandbox (fixture ``sb``), never the shared session one.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from activation_pipeline.sandbox import SandboxServer, start_sandbox
from activation_pipeline_tests.conftest import burst

REST_KEY = "test-rest-key-5f0e"
PROJECT = "project_test"
AUTH = {"Authorization": f"Bearer {REST_KEY}", "X-Batch-Project": PROJECT}
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def batch_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SANDBOX_BATCH_REST_API_KEY", REST_KEY)
    monkeypatch.setenv("SANDBOX_BATCH_PROJECT_KEY", PROJECT)
    monkeypatch.delenv("SANDBOX_RATE_LIMIT", raising=False)


@pytest.fixture
def sb(tmp_path: Path, batch_env: None) -> Iterator[SandboxServer]:
    with start_sandbox(port=0, state_path=tmp_path / "sandbox" / "state.sqlite", rate_limit=False) as server:
        yield server


class Client:
    """Thin helper over one keep-alive session."""

    def __init__(self, server: SandboxServer) -> None:
        self.server, self.base = server, f"{server.url}/batch/2.11"
        self.http = requests.Session()
        self.http.headers.update(AUTH)

    def post(self, path: str, body: Any, **kw: Any) -> requests.Response:
        return self.http.post(self.base + path, json=body, timeout=10, **kw)

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(self.base + path, params=params, timeout=10)

    def create(self, name: str = "products", fields: list[dict[str, str]] | None = None) -> requests.Response:
        return self.post("/catalogs/create", {"name": name, "fields": fields or [{"name": "price", "type": "float"}]})

    def edit(self, items: list[dict[str, Any]], name: str = "products") -> requests.Response:
        return self.post("/catalogs/items/edit", {"name": name, "items": items})

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, f"{self.server.url}/_sandbox{path}", json=body, timeout=10)
        assert response.status_code < 300, response.text
        return response.json()

    def stored(self, name: str = "products") -> dict[str, Any]:
        response = requests.get(f"{self.server.url}/_sandbox/batch/catalogs/{name}/items", params={"project": PROJECT}, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()["items"]


@pytest.fixture
def api(sb: SandboxServer) -> Client:
    return Client(sb)


@pytest.fixture
def catalog(api: Client) -> Client:
    assert api.create().status_code == 201
    return api


def add(item_id: str, **attributes: Any) -> dict[str, Any]:
    return {"id": item_id, "action": "add", "attributes": attributes}


def error_of(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error_code"], body["error_message"]


# --------------------------------------------------------------------------- auth and routing


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": f"Bearer {REST_KEY}"},
        {"X-Batch-Project": PROJECT},
        {"Authorization": f"Bearer {REST_KEY}", "X-Batch-Project": "project_other"},
        {"Authorization": "Bearer wrong-key-d41d8", "X-Batch-Project": PROJECT},
        {"Authorization": REST_KEY, "X-Batch-Project": PROJECT},
    ],
)
def test_auth_is_required_on_every_request(sb: SandboxServer, headers: dict[str, str]) -> None:
    for method, path in (("GET", "/catalogs/list"), ("POST", "/catalogs/items/edit")):
        response = requests.request(method, f"{sb.url}/batch/2.11{path}", headers=headers, json={}, timeout=5)
        assert error_of(response) == (401, "AUTHENTICATION_INVALID", "The Rest API Key is not valid for this project")
        assert "wrong-key-d41d8" not in response.text and REST_KEY not in response.text
    stats = requests.get(f"{sb.url}/_sandbox/stats", timeout=5).text
    assert "wrong-key-d41d8" not in stats and REST_KEY not in stats


def test_any_version_is_accepted_and_unknown_paths_are_404(api: Client) -> None:
    assert api.http.get(f"{api.server.url}/batch/2.9/catalogs/list", timeout=5).status_code == 200
    for path in ("/batch/latest/catalogs/list", "/batch/2.11/catalogs/nope", "/nowhere"):
        assert error_of(api.http.get(api.server.url + path, timeout=5))[:2] == (404, "NOT_FOUND")
    health = requests.get(f"{api.server.url}/_sandbox/health", timeout=5).json()
    assert health["ok"] is True and "batch" in health["platforms"]


# --------------------------------------------------------------------------- catalogs


def test_create_view_list_update_remove_catalog(api: Client) -> None:
    fields = [{"name": "price", "type": "float"}, {"name": "tags", "type": "array"}]
    response = api.create("products", fields)
    assert (response.status_code, response.json()) == (201, {})
    assert error_of(api.create("products"))[:2] == (400, "CATALOG_ALREADY_EXISTS")

    view = api.get("/catalogs/view", name="products").json()
    assert view["name"] == "products" and view["fields"] == fields
    assert (view["items"], view["size"]) == (0, 0)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", view["created"])
    assert "indexing_state" not in view  # only returned for an indexing_token
    assert error_of(api.get("/catalogs/view", name="missing"))[:2] == (404, "CATALOG_NOT_FOUND")

    for name in ("c_a", "c_b", "c_c", "c_d"):
        assert api.create(name).status_code == 201
    code, error, message = error_of(api.create("c_e"))
    assert (code, error) == (400, "INVALID_PARAMETER") and "5" in message

    first = api.get("/catalogs/list", limit=2).json()
    assert [c["name"] for c in first["catalogs"]] == ["c_a", "c_b"]
    assert (first["count"], first["has_more"]) == (5, True)
    second = api.get("/catalogs/list", limit=2, **{"from": first["next_from"]}).json()
    assert [c["name"] for c in second["catalogs"]] == ["c_c", "c_d"] and "count" not in second
    third = api.get("/catalogs/list", limit=2, **{"from": second["next_from"]}).json()
    assert [c["name"] for c in third["catalogs"]] == ["products"]
    assert third["has_more"] is False and "next_from" not in third
    assert len(api.get("/catalogs/list").json()["catalogs"]) == 5
    assert api.get("/catalogs/list", limit=101).status_code == 400

    update = api.post(
        "/catalogs/update",
        {"name": "products", "fields": [{"name": "brand", "type": "string", "action": "add"}, {"name": "tags", "action": "remove"}]},
    )
    assert (update.status_code, update.json()) == (202, {})
    assert api.get("/catalogs/view", name="products").json()["fields"] == [{"name": "price", "type": "float"}, {"name": "brand", "type": "string"}]

    assert api.edit([add("a", price=1.0)]).status_code == 202
    assert api.post("/catalogs/remove", {"name": "products"}).status_code == 202
    assert api.get("/catalogs/view", name="products").status_code == 404
    assert api.post("/catalogs/remove", {"name": "products"}).status_code == 404
    assert api.create("products").status_code == 201
    assert api.stored() == {}


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Products", "fields": [{"name": "price", "type": "float"}]},
        {"name": "x" * 101, "fields": [{"name": "price", "type": "float"}]},
        {"name": "products\n", "fields": [{"name": "price", "type": "float"}]},
        {"name": "products", "fields": [{"name": "price\n", "type": "float"}]},
        {"name": "products", "fields": [{"name": "price", "type": "float"}, {"name": "price", "type": "string"}]},
        {"name": "products", "fields": []},
        {"name": "products", "fields": [{"name": "price", "type": "money"}]},
        {"name": "products", "fields": [{"name": "Price", "type": "float"}]},
        {"name": "products", "fields": [{"name": f"f{i}", "type": "string"} for i in range(26)]},
    ],
)
def test_invalid_catalog_definitions_are_400(api: Client, body: dict[str, Any]) -> None:
    assert error_of(api.post("/catalogs/create", body))[:2] == (400, "INVALID_PARAMETER")
    assert api.get("/catalogs/list").json()["catalogs"] == []


def test_malformed_json_is_400(api: Client) -> None:
    response = api.http.post(f"{api.base}/catalogs/create", data=b"{not json", timeout=5)
    assert error_of(response)[:2] == (400, "MALFORMED_JSON")


# --------------------------------------------------------------------------- items


def test_items_add_update_delete_leave_exact_state(catalog: Client) -> None:
    api = catalog
    response = api.edit(
        [
            add("SKU-1", price=1.5, title="One", tags=["a", "b"]),
            add("SKU-2", price=2.0, **{"url(link)": "https://example.com/2"}),
            add("SKU-3", price=3.0, **{"date(launch)": "2023-08-01T12:00:00Z"}),
            {"id": "SKU-4", "action": "upsert", "attributes": {"price": 4, "stock": None}},
        ]
    )
    assert response.status_code == 202
    token = response.json()["indexing_token"]
    assert re.fullmatch(r"[0-9a-f]{40}", token) and set(response.json()) == {"indexing_token"}

    response = api.edit(
        [
            {"id": "SKU-1", "action": "update", "attributes": {"price": 1.25, "brand": "Acme"}},  # merge
            {"id": "SKU-404", "action": "update", "attributes": {"price": 9.0}},  # missing: ignored
            {"id": "SKU-2", "action": "delete"},
            {"id": "SKU-999", "action": "remove"},  # missing delete: no-op
            {"id": "SKU-3", "action": "add", "attributes": {"price": 3.5, "date(launch)": 1690891200}},  # replace
            {"id": "SKU-5", "action": "add", "attributes": {"price": 5.0}},
            {"id": "SKU-5", "action": "update", "attributes": {"title": "Five"}},  # sees the add above
        ]
    )
    assert response.status_code == 202 and response.json()["ignored_ids"] == ["SKU-404"]

    assert api.stored() == {
        "SKU-1": {"price": 1.25, "title": "One", "tags": ["a", "b"], "brand": "Acme"},
        "SKU-3": {"price": 3.5, "date(launch)": 1690891200},
        "SKU-4": {"price": 4, "stock": None},
        "SKU-5": {"price": 5.0, "title": "Five"},
    }
    first = api.get("/catalogs/view", name="products", indexing_token=token).json()
    again = api.get("/catalogs/view", name="products", indexing_token=token).json()
    assert (first["indexing_state"], again["indexing_state"]) == ("IN_PROGRESS", "APPLIED")
    expected_size = sum(len(json.dumps(a, separators=(",", ":"), ensure_ascii=False).encode()) for a in api.stored().values())
    assert (first["items"], first["size"]) == (4, expected_size)
    assert api.get("/catalogs/view", name="products", indexing_token="0" * 40).status_code == 400
    listed = requests.get(f"{api.server.url}/_sandbox/batch/catalogs", timeout=5).json()["catalogs"]
    assert listed == [{"project": PROJECT, "name": "products", "fields": [{"name": "price", "type": "float"}], "items": 4}]


def test_items_on_unknown_catalog_are_404(catalog: Client) -> None:
    assert error_of(catalog.edit([add("a", price=1.0)], name="nope"))[:2] == (404, "CATALOG_NOT_FOUND")


@pytest.mark.parametrize("count", [0, 201])
def test_item_count_outside_1_to_200_is_rejected(catalog: Client, count: int) -> None:
    code, error, message = error_of(catalog.edit([add(f"SKU-{i}", price=1.0) for i in range(count)]))
    assert (code, error) == (400, "INVALID_PARAMETER")
    assert "200" in message and str(count) in message
    assert catalog.stored() == {}


def test_200_items_are_accepted(catalog: Client) -> None:
    assert catalog.edit([add(f"SKU-{i}", price=float(i)) for i in range(200)]).status_code == 202
    assert len(catalog.stored()) == 200


def test_one_invalid_item_rejects_the_whole_request(catalog: Client) -> None:
    items = [add(f"SKU-{i}", price=float(i)) for i in range(6)]
    items[3] = add("SKU-9", price={"amount": 3})
    code, error, message = error_of(catalog.edit(items))
    assert (code, error) == (400, "INVALID_PARAMETER")
    assert message.startswith('items[3] (id "SKU-9"): attribute "price"')
    assert catalog.stored() == {}


def test_nan_and_infinite_prices_are_rejected(catalog: Client) -> None:
    raw = '{"name":"products","items":[{"id":"SKU-1","action":"add","attributes":{"price":NaN}}]}'
    response = catalog.http.post(f"{catalog.base}/catalogs/items/edit", data=raw.encode(), headers={"Content-Type": "application/json"}, timeout=5)
    assert error_of(response)[:2] == (400, "MALFORMED_JSON")
    raw = raw.replace("NaN", "1e400")  # valid JSON, overflows to infinity
    response = catalog.http.post(f"{catalog.base}/catalogs/items/edit", data=raw.encode(), timeout=5)
    assert error_of(response) == (400, "INVALID_PARAMETER", 'items[0] (id "SKU-1"): attribute "price" must be a finite number')
    assert catalog.stored() == {}


@pytest.mark.parametrize(
    "item, rule",
    [
        ({"id": "", "action": "add", "attributes": {}}, '"id"'),
        ({"id": 42, "action": "add", "attributes": {}}, '"id"'),
        ({"id": "x" * 513, "action": "add", "attributes": {}}, "512"),
        ({"id": "a", "action": "insert", "attributes": {}}, '"action"'),
        ({"id": "a", "action": "add"}, '"attributes"'),
        (add("a", **{"Price": 1}), "key"),
        (add("a", **{"price\n": 1}), "key"),
        (add("a", price=[["nested"]]), "string"),
        (add("a", **{"date(at)": "2023-08-01T12:00:00Z\n"}), "RFC 3339"),
        (add("a", **{"url(link)": "not a url"}), "URL"),
        (add("a", **{"url(link)": "ftp://example.com/x"}), "URL"),
        (add("a", **{"date(at)": "2023-13-01T00:00:00Z"}), "RFC 3339"),
        (add("a", **{"date(at)": "yesterday"}), "RFC 3339"),
        (add("a", **{"date(at)": 1.5}), "RFC 3339"),
        (add("a", title="x" * 10_001), "10000"),
        (add("a", tags=[str(i) for i in range(16)]), "15"),
        (add("a", tags=["x" * 65]), "64"),
        (add("a", tags=[1, 2]), "string"),
        (add("a", qty=2**63), "64-bit"),
    ],
)
def test_invalid_items_name_the_rule(catalog: Client, item: dict[str, Any], rule: str) -> None:
    code, error, message = error_of(catalog.edit([add("ok", price=1.0), item]))
    assert (code, error) == (400, "INVALID_PARAMETER")
    assert message.startswith("items[1]") and rule in message
    assert catalog.stored() == {}


def test_boundary_values_are_accepted(catalog: Client) -> None:
    attributes = {
        "title": "x" * 10_000,
        "tags": ["y" * 64] * 15,
        "qty": 2**63 - 1,
        "on": False,
        "gone": None,
        "url(link)": "http://example.com/a?b=c",
        "date(at)": "2023-08-01T12:00:00.123+02:00",
    }
    assert catalog.edit([add("z" * 512, **attributes)]).status_code == 202
    assert catalog.stored() == {"z" * 512: attributes}


# --------------------------------------------------------------------------- rate limiting


def test_rate_limit_429_with_retry_after_then_recovers(catalog: Client) -> None:
    settings = catalog.admin("POST", "/ratelimit", {"enabled": True, "requests_per_second": 5, "items_per_second": 1000})
    assert settings == {"enabled": True, "requests_per_second": 5.0, "items_per_second": 1000.0}
    statuses = [catalog.edit([add(f"r{i}", price=1.0)]).status_code for i in range(5)]
    assert statuses == [202] * 5  # the bucket starts full: a burst of 5
    # three seconds' worth at once: at most a bucket's 5 pass, however long the five above took
    answers = burst(lambda i: catalog.edit([add("r5", price=1.0)]), 15)
    assert sum(a.status_code == 202 for a in answers) <= 5
    limited = next(a for a in answers if a.status_code == 429)
    assert error_of(limited)[:2] == (429, "TOO_MANY_REQUESTS")
    retry_after = int(limited.headers["Retry-After"])
    assert retry_after >= 1
    assert catalog.get("/catalogs/list").status_code == 200  # only items/edit is limited
    time.sleep(retry_after)
    assert catalog.edit([add("r5", price=1.0)]).status_code == 202
    assert "r5" in catalog.stored()

    # 200 items against 100 a second: admitted on a full bucket, which it leaves 100 in debt for 2 s
    catalog.admin("POST", "/ratelimit", {"requests_per_second": 100, "items_per_second": 100})
    assert catalog.edit([add(f"b{i}", price=1.0) for i in range(200)]).status_code == 202
    limited = catalog.edit([add(f"c{i}", price=1.0) for i in range(200)])
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert not any(k.startswith("c") for k in catalog.stored())
    catalog.admin("POST", "/ratelimit", {"enabled": False})
    assert catalog.edit([add(f"c{i}", price=1.0) for i in range(200)]).status_code == 202


# --------------------------------------------------------------------------- faults


def test_status_fault_answers_without_applying(catalog: Client) -> None:
    catalog.admin(
        "POST", "/faults", {"platform": "batch", "kind": "status", "status": 503, "count": 2, "retry_after": 1, "path_contains": "items/edit"}
    )
    assert catalog.get("/catalogs/list").status_code == 200  # path filter
    for _ in range(2):
        response = catalog.edit([add("a", price=1.0)])
        assert error_of(response)[:2] == (503, "SERVICE_UNAVAILABLE") and response.headers["Retry-After"] == "1"
    assert catalog.stored() == {}
    assert catalog.admin("GET", "/faults") == {"faults": []}
    assert catalog.edit([add("a", price=1.0)]).status_code == 202
    assert catalog.stored() == {"a": {"price": 1.0}}


def test_drop_before_closes_without_applying(catalog: Client) -> None:
    catalog.admin("POST", "/faults", {"kind": "drop_before"})
    with pytest.raises(requests.ConnectionError):
        catalog.edit([add("a", price=1.0)])
    assert catalog.stored() == {}
    assert catalog.edit([add("a", price=1.0)]).status_code == 202


def test_drop_after_applies_but_the_client_never_learns(catalog: Client) -> None:
    catalog.admin("POST", "/faults", {"platform": "batch", "kind": "drop_after", "count": 1})
    with pytest.raises(requests.ConnectionError):
        catalog.edit([add("a", price=1.0)])
    assert catalog.stored() == {"a": {"price": 1.0}}
    stats = catalog.admin("GET", "/stats")["batch"]
    assert stats["dropped"] == 1 and stats["items_applied"] == 1


def test_reject_ids_persists_until_cleared(catalog: Client) -> None:
    listed = catalog.admin("POST", "/faults", {"kind": "reject_ids", "ids": ["SKU-2"]})
    assert listed["faults"][0]["ids"] == ["SKU-2"]
    for _ in range(2):
        code, error, message = error_of(catalog.edit([add("SKU-1", price=1.0), add("SKU-2", price=2.0)]))
        assert (code, error) == (400, "INVALID_PARAMETER") and 'items[1] (id "SKU-2")' in message
    assert catalog.stored() == {}
    assert catalog.edit([add("SKU-1", price=1.0)]).status_code == 202
    catalog.admin("DELETE", "/faults")
    assert catalog.edit([add("SKU-2", price=2.0)]).status_code == 202
    assert set(catalog.stored()) == {"SKU-1", "SKU-2"}


def test_slow_fault_delays_then_handles(catalog: Client) -> None:
    catalog.admin("POST", "/faults", {"kind": "slow", "seconds": 0.3})
    started = time.monotonic()
    assert catalog.edit([add("a", price=1.0)]).status_code == 202
    assert time.monotonic() - started >= 0.3


def test_invalid_fault_specs_are_400(sb: SandboxServer) -> None:
    for spec in ({"kind": "explode"}, {"kind": "status"}, {"kind": "reject_ids", "ids": []}, {"kind": "slow", "platform": "nowhere"}):
        assert requests.post(f"{sb.url}/_sandbox/faults", json=spec, timeout=5).status_code == 400


# --------------------------------------------------------------------------- stats, reset, persistence


def test_stats_and_reset(catalog: Client) -> None:
    catalog.edit([add("a", price=1.0), add("b", price=2.0)])
    catalog.edit([add("c", price={"amount": 3})])  # received, rejected
    stats = catalog.admin("GET", "/stats")["batch"]
    assert stats["requests"] == {"/catalogs/create": 1, "/catalogs/items/edit": 2}
    assert stats["statuses"] == {"201": 1, "202": 1, "400": 1}
    assert (stats["items_received"], stats["items_applied"]) == (3, 2)
    catalog.admin("POST", "/stats/reset")
    assert catalog.admin("GET", "/stats")["batch"]["requests"] == {}
    catalog.admin("POST", "/faults", {"kind": "slow", "seconds": 5})
    catalog.admin("POST", "/reset")
    assert catalog.admin("GET", "/faults") == {"faults": []}
    assert catalog.get("/catalogs/list").json()["catalogs"] == []


def test_state_survives_a_restart_on_the_same_file(tmp_path: Path, batch_env: None) -> None:
    state = tmp_path / "deep" / "dir" / "state.sqlite"
    with start_sandbox(port=0, state_path=state, rate_limit=False) as first:
        api = Client(first)
        assert api.create().status_code == 201
        assert api.edit([add("SKU-1", price=1.0, tags=["x"])]).status_code == 202
        token = api.edit([add("SKU-2", price=2.0)]).json()["indexing_token"]
    assert state.exists()
    with start_sandbox(port=0, state_path=state, rate_limit=False) as second:
        api = Client(second)
        assert api.stored() == {"SKU-1": {"price": 1.0, "tags": ["x"]}, "SKU-2": {"price": 2.0}}
        view = api.get("/catalogs/view", name="products", indexing_token=token).json()
        assert (view["items"], view["indexing_state"]) == (2, "IN_PROGRESS")


def test_50_requests_of_200_items_are_fast(catalog: Client) -> None:
    started = time.perf_counter()
    for r in range(50):
        items = [
            add(
                f"SKU-{r * 200 + i:06d}",
                price=i + 0.5,
                title=f"Product {i}",
                tags=["a", "b"],
                in_stock=bool(i % 2),
                **{"url(link)": f"https://example.com/p/{i}"},
            )
            for i in range(200)
        ]
        assert catalog.edit(items).status_code == 202
    elapsed = time.perf_counter() - started
    assert elapsed < 10, f"50 x 200 items took {elapsed:.1f}s"
    assert catalog.get("/catalogs/view", name="products").json()["items"] == 10_000
    assert len(catalog.stored()) == 10_000
    timings = [r["ms"] for r in catalog.admin("GET", "/stats")["recent"] if r["path"] == "/catalogs/items/edit"]
    assert sorted(timings)[len(timings) // 2] < 50, timings


def test_module_entry_point_prints_its_address(tmp_path: Path) -> None:
    state = tmp_path / "cli" / "state.sqlite"
    process = subprocess.Popen(
        [sys.executable, "-m", "activation_pipeline.sandbox", "--port", "0", "--state", str(state)], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        match = re.fullmatch(r"sandbox listening on (http://127\.0\.0\.1:(\d+)) \(state: (.+)\)", line)
        assert match and match.group(3) == str(state), line
        assert requests.get(f"{match.group(1)}/_sandbox/health", timeout=5).json()["ok"] is True
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
    assert state.exists()  # parent directories were created
