"""The sandbox's Connectif emulator over real HTTP: auth and scopes, payload validation in
Connectif's problem-JSON shape, patch-or-create semantics, reads, the hypothetical DELETE,
the admin endpoints that change products behind a client's back, faults and the rate limit; the bulk
CSV import (form, asynchronous application on the sandbox's clock, error report, scopes, rate limit)."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest
import requests

from activation_pipeline.sandbox import Clock, start_sandbox
from activation_pipeline_tests.conftest import burst

KEY = "sandbox-connectif-key:sandbox-connectif-secret"
AUTH = {"Authorization": f"apiKey {KEY}"}
BOOT = {
    "name": "Trail Boot",
    "productDetailUrl": "https://shop.example.com/p/boot",
    "unitPrice": 89.5,
    "categories": ["Women/Shoes/Boots"],
    "availability": "instock",
    "brand": "Acme",
}


def patch(sandbox: Any, product_id: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.patch(
        f"{sandbox.url}/connectif/products/product-id/{product_id}", json=body, headers=headers if headers is not None else AUTH, timeout=10
    )


def get(sandbox: Any, product_id: str) -> requests.Response:
    return requests.get(f"{sandbox.url}/connectif/products/product-id/{product_id}", headers=AUTH, timeout=10)


def admin(sandbox: Any, method: str, path: str, **kwargs: Any) -> requests.Response:
    return requests.request(method, f"{sandbox.url}/_sandbox/connectif/{path}", timeout=10, **kwargs)


def test_auth_needs_the_api_key_in_connectif_form(sandbox):
    assert patch(sandbox, "P1", BOOT, headers={}).status_code == 401
    assert patch(sandbox, "P1", BOOT, headers={"Authorization": "Bearer " + KEY}).status_code == 401
    wrong = patch(sandbox, "P1", BOOT, headers={"Authorization": "apiKey sandbox-connectif-key:nope"})
    assert wrong.status_code == 401 and wrong.json()["title"] == "Unauthorized" and "nope" not in wrong.text
    admin(sandbox, "POST", "config", json={"scopes": ["products:read"]}).raise_for_status()
    refused = patch(sandbox, "P1", BOOT)
    assert refused.status_code == 403 and "products:write" in refused.json()["detail"]
    assert get(sandbox, "P1").status_code == 404  # reading is still allowed


def test_patch_creates_then_merges_and_reads_back_by_both_ids(sandbox):
    created = patch(sandbox, "P1", BOOT)
    assert created.status_code == 201
    product = created.json()
    assert product["productId"] == "P1" and len(product["id"]) == 24 and product["createdAt"] == product["updatedAt"]
    updated = patch(sandbox, "P1", {"unitPrice": 79.0, "availability": "outofstock", "brand": None})
    assert updated.status_code == 200
    body = get(sandbox, "P1").json()
    assert (body["unitPrice"], body["availability"], body["brand"], body["name"]) == (79.0, "outofstock", "Acme", "Trail Boot")
    by_id = requests.get(f"{sandbox.url}/connectif/products/{product['id']}", headers=AUTH, timeout=10)
    assert by_id.status_code == 200 and by_id.json()["productId"] == "P1"
    missing = get(sandbox, "nope")
    assert missing.status_code == 404 and missing.json()["status"] == 404 and "nope" in missing.json()["detail"]


def test_validation_names_every_bad_field_in_validation_errors(sandbox):
    bad = patch(
        sandbox,
        "P2",
        {
            "name": 5,
            "unitPrice": -1,
            "productDetailUrl": "/relative",
            "availability": "preorder",
            "categories": "Women/Shoes",
            "inStockUnits": 1.5,
            "colour": "red",
        },
    )
    assert bad.status_code == 422
    errors = {e["path"]: e["reason"] for e in bad.json()["validationErrors"]}
    assert set(errors) == {"name", "unitPrice", "productDetailUrl", "availability", "categories", "inStockUnits", "colour"}
    assert "instock" in errors["availability"] and "writable" in errors["colour"]
    new = patch(sandbox, "P3", {"name": "No price"})
    assert new.status_code == 422
    assert {e["path"] for e in new.json()["validationErrors"]} == {"productDetailUrl", "unitPrice"}
    not_json = requests.patch(f"{sandbox.url}/connectif/products/product-id/P3", data="x", headers=AUTH, timeout=10)
    assert not_json.status_code == 415
    assert admin(sandbox, "GET", "products").json() == {"products": {}}


def test_discontinued_is_writable_unless_configured_strict(sandbox):
    assert patch(sandbox, "P4", {**BOOT, "availability": "discontinued"}).status_code == 201
    admin(sandbox, "POST", "config", json={"accept_discontinued": False}).raise_for_status()
    strict = patch(sandbox, "P4", {"availability": "discontinued"})
    assert strict.status_code == 422 and strict.json()["validationErrors"][0]["path"] == "availability"


def test_delete_exists_only_when_enabled(sandbox):
    patch(sandbox, "P5", BOOT).raise_for_status()
    url = f"{sandbox.url}/connectif/products/product-id/P5"
    off = requests.delete(url, headers=AUTH, timeout=10)
    assert off.status_code == 405 and off.headers["Allow"] == "GET, PATCH"
    admin(sandbox, "POST", "config", json={"allow_delete": True}).raise_for_status()
    assert requests.delete(url, headers=AUTH, timeout=10).status_code == 204
    assert requests.delete(url, headers=AUTH, timeout=10).status_code == 404
    assert get(sandbox, "P5").status_code == 404


def test_unauthorised_domain_is_refused_with_e0103(sandbox):
    admin(sandbox, "POST", "config", json={"allowed_domains": ["https://www.mysite.com"]}).raise_for_status()
    refused = patch(sandbox, "P6", BOOT)
    assert refused.status_code == 400
    assert refused.json()["code"] == "E0103" and refused.json()["productsId"] == ["P6"]
    assert patch(sandbox, "P6", {**BOOT, "productDetailUrl": "https://www.mysite.com/p/6"}).status_code == 201


def test_admin_preseeds_changes_and_deletes_products_behind_the_clients_back(sandbox):
    admin(sandbox, "POST", "products", json=[{"productId": "A", **BOOT}, {"productId": "B", **BOOT, "unitPrice": 5.0}]).raise_for_status()
    assert set(admin(sandbox, "GET", "products").json()["products"]) == {"A", "B"}
    changed = admin(sandbox, "POST", "products/A", json={"unitPrice": 17.5, "availability": "unverified"})
    assert changed.status_code == 200 and changed.json()["unitPrice"] == 17.5
    assert get(sandbox, "A").json()["availability"] == "unverified"
    assert admin(sandbox, "DELETE", "products/B").status_code == 200
    assert get(sandbox, "B").status_code == 404
    assert admin(sandbox, "POST", "products/B", json={"name": "x"}).status_code == 404
    assert admin(sandbox, "POST", "products", json=[{"productId": "C", "name": "no url"}]).status_code == 400


def test_reject_ids_fault_rejects_that_product_in_connectif_shape(sandbox):
    requests.post(
        f"{sandbox.url}/_sandbox/faults", json={"platform": "connectif", "kind": "reject_ids", "ids": ["BAD"]}, timeout=5
    ).raise_for_status()
    rejected = patch(sandbox, "BAD", BOOT)
    assert rejected.status_code == 400
    assert rejected.json()["code"] == "E0101" and rejected.json()["productsId"] == ["BAD"]
    assert patch(sandbox, "GOOD", BOOT).status_code == 201
    status_fault = {"platform": "connectif", "kind": "status", "status": 503, "retry_after": 2}
    requests.post(f"{sandbox.url}/_sandbox/faults", json=status_fault, timeout=5).raise_for_status()
    unavailable = get(sandbox, "GOOD")
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"] == "2"
    assert unavailable.json()["detail"]


@pytest.fixture
def clock() -> Clock:
    return Clock(frozen=True)  # the bucket refills only when the test advances it: no race with a busy machine


@pytest.fixture
def limited(tmp_path, clock):
    server = start_sandbox(port=0, state_path=tmp_path / "state.sqlite", rate_limit=True, requests_per_second=2, clock=clock)
    yield server
    server.stop()


def test_rate_limit_answers_429_with_retry_after_and_rate_headers(limited, clock):
    answers = [patch(limited, f"R{i}", BOOT) for i in range(2)]
    assert [a.status_code for a in answers[:2]] == [201, 201]  # the bucket starts full: a burst of 2
    assert answers[0].headers["X-RateLimit-Limit"] == "2"
    assert int(answers[0].headers["X-RateLimit-Reset"]) >= int(time.time()) - 1
    # three seconds' worth at once: at most a bucket's 2 pass, however long the two above took
    answers = burst(lambda i: patch(limited, "R2", BOOT), 6)
    throttled = next(a for a in answers if a.status_code == 429)
    assert throttled.status_code == 429 and throttled.json()["detail"] == "Requests rate limit reached"
    assert int(throttled.headers["Retry-After"]) >= 1 and throttled.headers["X-RateLimit-Remaining"] == "0"
    clock.advance(1.1)  # a second later the bucket holds a request again
    assert patch(limited, "R9", BOOT).status_code == 201


# --- the bulk product import ------------------------------------------------------------------------
FORM = {"type": "products", "overrideExisting": "true", "updateOnlyEmptyFields": "false", "delimiter": ","}
CSV = (
    "productId,name,productDetailUrl,unitPrice,categories,availability\r\n"
    "I1,Boot,https://shop.example.com/p/1,12.5,Women/Shoes|Sale,instock\r\n"
    "I2,,https://shop.example.com/p/2,3,,\r\n"  # new, without a name
    "I3,Sock,https://shop.example.com/p/3,cheap,,\r\n"  # a price that is no number
    "I4,Hat,https://shop.example.com/p/4,4,,preorder\r\n"  # an availability Connectif does not have
)


def submit(sandbox: Any, text: str | bytes = CSV, form: dict[str, str] | None = None, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(
        f"{sandbox.url}/connectif/imports/",
        data=FORM if form is None else form,
        files={"file": ("products.csv", text, "text/csv")},
        headers=AUTH if headers is None else headers,
        timeout=30,
    )


def poll(sandbox: Any, import_id: str) -> dict[str, Any]:
    response = requests.get(f"{sandbox.url}/connectif/imports/{import_id}", headers=AUTH, timeout=10)
    response.raise_for_status()
    return response.json()


@pytest.fixture
def frozen(tmp_path, clock):
    server = start_sandbox(port=0, state_path=tmp_path / "state.sqlite", rate_limit=False, clock=clock)
    yield server
    server.stop()


def test_an_import_is_processing_until_its_time_then_applies_each_row_as_a_patch_would(frozen, clock):
    admin(frozen, "POST", "products", json=[{"productId": "I2", **BOOT}]).raise_for_status()  # I2 exists: no name needed
    accepted = submit(frozen)
    assert accepted.status_code == 201
    body = accepted.json()
    assert (body["status"], body["total"]) == ("processing", 4) and body["id"]
    assert poll(frozen, body["id"])["status"] == "processing"
    assert get(frozen, "I1").status_code == 404  # nothing applied yet
    clock.advance(0.5)
    done = poll(frozen, body["id"])
    assert (done["status"], done["total"], done["success"], done["errors"]) == ("finished", 4, 2, 2)
    assert get(frozen, "I1").json()["categories"] == ["Women/Shoes", "Sale"] and get(frozen, "I1").json()["unitPrice"] == 12.5
    assert get(frozen, "I2").json()["unitPrice"] == 3.0 and get(frozen, "I2").json()["name"] == "Trail Boot"  # an empty cell leaves it
    report = requests.get(done["errorReportFileUrl"], headers=AUTH, timeout=10)
    assert report.status_code == 200 and report.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(report.text)))
    assert {r["productId"]: r["reason"] for r in rows} == {
        "I3": "unitPrice: must be a number",
        "I4": "availability: must be one of instock, outofstock, discontinued",
    }
    assert requests.get(done["errorReportFileUrl"], timeout=10).status_code == 401  # the report needs the key too


def test_a_new_product_row_needs_the_required_columns_and_import_outcome_error_applies_nothing(frozen, clock):
    accepted = submit(frozen, "productId,name\r\nN1,Only a name\r\n").json()
    clock.advance(1)
    done = poll(frozen, accepted["id"])
    assert (done["success"], done["errors"]) == (0, 1)
    reason = list(csv.DictReader(io.StringIO(requests.get(done["errorReportFileUrl"], headers=AUTH, timeout=10).text)))[0]["reason"]
    assert "productDetailUrl: is required" in reason and "unitPrice: is required" in reason
    admin(frozen, "POST", "config", json={"import_outcome": "error"}).raise_for_status()
    failed = submit(frozen).json()
    clock.advance(1)
    assert poll(frozen, failed["id"])["status"] == "error" and poll(frozen, failed["id"])["errorReportFileUrl"] is None
    assert admin(frozen, "GET", "products").json() == {"products": {}}


def test_the_import_form_is_checked_field_by_field(sandbox):
    assert submit(sandbox, form={**FORM, "delimiter": ";"}, text=CSV.replace(",", ";")).status_code == 201
    bad = submit(sandbox, form={"type": "coupons", "overrideExisting": "yes", "updateOnlyEmptyFields": "true", "delimiter": "|"})
    assert bad.status_code == 422
    assert {e["path"] for e in bad.json()["validationErrors"]} == {"type", "overrideExisting", "updateOnlyEmptyFields", "delimiter"}
    unknown = submit(sandbox, "productId,colour\r\nX,red\r\n")
    assert unknown.status_code == 422 and unknown.json()["validationErrors"][0]["path"] == "file.colour"
    no_id = submit(sandbox, "name\r\nX\r\n")
    assert no_id.status_code == 422 and "productId" in no_id.json()["validationErrors"][0]["reason"]
    not_utf8 = submit(sandbox, "productId,name\r\nX,caf\xe9\r\n".encode("latin-1"))
    assert not_utf8.status_code == 422 and not_utf8.json()["validationErrors"][0]["path"] == "file"
    as_json = requests.post(f"{sandbox.url}/connectif/imports/", json=FORM, headers=AUTH, timeout=10)
    assert as_json.status_code == 415
    too_big = submit(sandbox, b"productId,name\r\n" + b"X" * (50 * 1024 * 1024 + 1))
    assert too_big.status_code == 413
    assert requests.get(f"{sandbox.url}/connectif/imports/nope", headers=AUTH, timeout=10).status_code == 404


def test_imports_need_the_key_and_the_imports_scopes(sandbox):
    assert submit(sandbox, headers={}).status_code == 401
    admin(sandbox, "POST", "config", json={"scopes": ["products:read", "products:write", "imports:read"]}).raise_for_status()
    refused = submit(sandbox)
    assert refused.status_code == 403 and "imports:write" in refused.json()["detail"]
    admin(sandbox, "POST", "config", json={"scopes": ["imports:write"]}).raise_for_status()
    accepted = submit(sandbox).json()
    unread = requests.get(f"{sandbox.url}/connectif/imports/{accepted['id']}", headers=AUTH, timeout=10)
    assert unread.status_code == 403 and "imports:read" in unread.json()["detail"]


def test_an_import_counts_against_the_same_rate_limit(limited, clock):
    answers = burst(lambda i: submit(limited), 4)
    assert sorted(a.status_code for a in answers) == [201, 201, 429, 429]
    throttled = next(a for a in answers if a.status_code == 429)
    assert throttled.json()["detail"] == "Requests rate limit reached" and int(throttled.headers["Retry-After"]) >= 1
    accepted = next(a for a in answers if a.status_code == 201)
    assert accepted.headers["X-RateLimit-Limit"] == "2" and "X-RateLimit-Remaining" in accepted.headers
    clock.advance(1.1)
    assert submit(limited).status_code == 201
