"""The generic ``http`` destination through real materializations against the sandbox's sink:
deltas, deletes, a refused batch split until the bad record stands alone, per-item errors, 429s,
auth, secrets and config errors. Every assertion reads what the sink holds or counted."""

from __future__ import annotations

from typing import Any

import pytest
import requests
import yaml

from activation_pipeline.config import load_config
from activation_pipeline.config_file import ConfigError
from activation_pipeline.sandbox import start_sandbox
from activation_pipeline_tests import http_destination_case as case
from activation_pipeline_tests.conftest import Project
from activation_pipeline_tests.test_safeguards_and_secrets import everything_written, failure_message
from activation_pipeline_tests.test_sync_failures import ledger
from activation_pipeline_tests.test_sync_modes import metadata

ROWS = [case.row(i) for i in range(1, 26)]


class HttpProject(Project):
    """The shared harness, its destination the ``http`` platform."""

    def write_config(self) -> None:
        document = {
            "sources": {"products": {"path": "products.csv"}},
            "segments": {"catalog": {"primary_key": "sku", "sql": self.segment_sql}},
            "destinations": {case.DESTINATION: case.destination_entry(**self.destination_settings)},
            "activations": self.activations,
        }
        self.config_path.write_text(yaml.safe_dump(document, sort_keys=False))

    def add_activation(self, name: str = "sync_products", **overrides: Any) -> str:
        self.activations[name] = case.activation(**overrides)
        self.write_config()
        return name

    def fault(self, **fault: Any) -> None:
        requests.post(f"{self.sandbox.url}/_sandbox/faults", json={"platform": "http", **fault}, timeout=5).raise_for_status()

    def sink(self, **knobs: Any) -> None:
        requests.post(f"{self.sandbox.url}/_sandbox/http/config", json=knobs, timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        return requests.get(f"{self.sandbox.url}/_sandbox/stats", timeout=10).json()["http"]

    def reset_stats(self) -> None:
        requests.post(f"{self.sandbox.url}/_sandbox/stats/reset", timeout=10).raise_for_status()

    def run(self, rows: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        self.write_products(rows)
        self.reset_stats()
        return metadata(self.materialize(**kwargs))


@pytest.fixture
def http(tmp_path, sandbox, instance, monkeypatch) -> HttpProject:
    monkeypatch.setenv("HTTP_BASE_URL", f"{sandbox.url}/http")
    monkeypatch.delenv("HTTP_API_TOKEN", raising=False)  # the sink's demo token applies
    return HttpProject(tmp_path, sandbox, instance)


def test_a_first_sync_sends_every_row_and_a_later_run_only_what_changed(http):
    http.add_activation()
    first = http.run(ROWS + [case.invalid_row(50)])
    assert case.held(http) == case.expected(ROWS)  # the infinite price was never sent
    assert (first["added_succeeded"], first["invalid"]) == (25, 1)
    assert (http.stats()["requests"], http.stats()["items_received"]) == ({"/products": 3}, 25)  # 10 + 10 + 5 per request

    changed = [case.row(i, version=1 if i in (3, 4) else 0) for i in range(1, 26)] + [case.row(26)]
    second = http.run(changed + [case.invalid_row(50)])
    assert (second["added_succeeded"], second["changed_succeeded"]) == (1, 2)
    assert http.stats()["items_received"] == 3  # the sink itself saw only the delta
    assert case.held(http) == case.expected(changed)


def test_mirror_deletes_the_records_that_left_the_segment_and_delete_only_removes_the_dataset(http):
    http.add_activation(operation="mirror", max_delete_fraction=0.5)
    http.run(ROWS)
    remaining = [r for r in ROWS if r["sku"] not in ("SKU-0001", "SKU-0002")]
    second = http.run(remaining)
    assert second["removed_succeeded"] == 2
    assert http.stats()["requests"] == {"/products/delete": 1}
    assert case.held(http) == case.expected(remaining)

    http.add_activation("remove_some", mode="full_only", operation="delete_only")
    http.write_products(remaining[:3])
    http.materialize("remove_some")
    assert case.held(http) == case.expected(remaining[3:])


def test_one_record_requests_put_and_delete_by_the_url_quoted_identifier(http):
    http.destination_settings = {
        "upsert": {"method": "PUT", "path": "/{object}/{identifier}", "body": {"title": "{{fields.name}}", "price": "{{fields.price}}"}},
        "delete": {"method": "DELETE", "path": "/{object}/{identifier}"},
    }
    http.add_activation(operation="mirror", max_delete_fraction=0.7)
    rows = [{**case.row(i), "sku": f"SKU {i}/é"} for i in range(1, 4)]
    http.run(rows)
    assert case.held(http) == {r["sku"]: {"title": r["name"], "price": r["price"]} for r in rows}
    assert sum(http.stats()["requests"].values()) == 3

    second = http.run(rows[:1])
    assert second["removed_succeeded"] == 2
    assert list(case.held(http)) == ["SKU 1/é"]


def test_a_refused_batch_is_split_until_the_rejected_record_stands_alone_and_it_is_resent_next_run(http):
    http.add_activation()
    http.fault(kind="reject_ids", ids=["SKU-0007"])
    first = http.run(ROWS)
    assert (first["status"], first["added_succeeded"], first["added_failed"]) == ("partial", 24, 1)
    assert case.held(http) == case.expected([r for r in ROWS if r["sku"] != "SKU-0007"])  # no row lost
    status, message = ledger(http, first["ledger_run_id"])["SKU-0007"]
    assert status == "rejected" and "SKU-0007" in message and "HTTP 400" in message
    assert http.stats()["statuses"]["400"] >= 4  # 10 → 5 → 3 → 2 → 1: the engine split the refused batch

    requests.delete(f"{http.sandbox.url}/_sandbox/faults", timeout=5)
    second = http.run(ROWS)
    assert (second["added_planned"], http.stats()["items_received"]) == (1, 1)
    assert case.held(http) == case.expected(ROWS)


@pytest.mark.parametrize("named_by", [{"index": "index"}, {"index": "position", "id": "id"}])  # the sink names both
def test_per_item_errors_of_a_207_reject_one_record_and_confirm_the_rest_of_its_request(http, named_by):
    http.sink(item_errors=True)
    http.destination_settings = {"item_errors": {"path": "errors[*]", "message": "message", **named_by}}
    http.add_activation()
    http.fault(kind="reject_ids", ids=["SKU-0012"])
    first = http.run(ROWS)
    assert (first["added_succeeded"], first["added_failed"]) == (24, 1)
    assert http.stats()["statuses"] == {"200": 2, "207": 1}  # nothing split, nothing resent
    assert "sandbox fault reject_ids" in ledger(http, first["ledger_run_id"])["SKU-0012"][1]
    assert case.held(http) == case.expected([r for r in ROWS if r["sku"] != "SKU-0012"])

    requests.delete(f"{http.sandbox.url}/_sandbox/faults", timeout=5)
    http.run(ROWS)
    assert http.stats()["items_received"] == 1
    assert case.held(http) == case.expected(ROWS)


def test_requests_stay_within_the_item_and_byte_limits_and_a_refusal_among_them_stays_isolated(http):
    limit = 400  # five records of ~75 bytes in their body
    http.sink(max_items=10, max_bytes=limit)
    http.destination_settings = {"max_items_per_request": 10, "max_bytes_per_request": limit}
    http.add_activation(max_items_per_request=20, concurrency=1)  # one engine batch, several requests
    http.fault(kind="reject_ids", ids=["SKU-0005"])
    rows = ROWS[:20] + [{**case.row(99), "name": "x" * 500}]  # too big for any request: invalid, never sent
    first = http.run(rows)
    assert (first["added_succeeded"], first["added_failed"], first["invalid"]) == (19, 1, 1)
    assert "413" not in http.stats()["statuses"]
    # 400 bytes hold 5 records: 4 requests; only the refused one is split again (5 → 2 + 3 → 1 + 2 → 1 + 1)
    assert (http.stats()["items_received"], http.stats()["requests"]) == (20 + 5 + 3 + 2, {"/products": 10})
    assert case.held(http) == case.expected([r for r in ROWS[:20] if r["sku"] != "SKU-0005"])


def test_a_request_applied_but_never_answered_is_not_confirmed_and_is_resent(http):
    http.add_activation(concurrency=1)
    http.fault(kind="drop_after", count=7, path_contains="/products")  # the first request and its 6 retries
    first = http.run(ROWS)
    assert (first["status"], first["added_succeeded"], first["added_failed"]) == ("partial", 15, 10)
    assert len(case.held(http)) == 25  # the sink stored the dropped request's ten records
    second = http.run(ROWS)
    assert (second["added_succeeded"], http.stats()["items_received"]) == (10, 10)  # exactly those, sent again
    assert case.held(http) == case.expected(ROWS)


def test_a_429_is_waited_out(http):
    http.add_activation(concurrency=1)
    http.fault(kind="status", status=429, retry_after=1, count=2, path_contains="/products")
    result = http.run(ROWS)
    assert (result["status"], http.stats()["statuses"]) == ("succeeded", {"429": 2, "200": 3})
    assert case.held(http) == case.expected(ROWS)


def test_the_auth_header_is_required_and_configurable(http, monkeypatch):
    http.sink(auth_header="X-Api-Key", auth_scheme="")
    http.add_activation()
    http.write_products(ROWS)
    failed = http.materialize(raise_on_error=False)
    assert "http refused the credentials of destinations.http_test (HTTP 401" in failure_message(failed)
    assert "HTTP_API_TOKEN" in failure_message(failed) and case.held(http) == {}

    http.destination_settings = {"auth_header": "X-Api-Key", "auth_scheme": ""}
    http.write_config()
    assert http.run(ROWS)["added_succeeded"] == 25
    assert case.held(http) == case.expected(ROWS)


SECRET = "tok-live-5b1e77c0a9d2"


def test_the_secret_never_reaches_messages_metadata_or_the_ledger(tmp_path, monkeypatch, instance):
    monkeypatch.setenv("SANDBOX_HTTP_TOKEN", SECRET)
    with start_sandbox(port=0, state_path=tmp_path / "private.sqlite", rate_limit=False) as private:
        monkeypatch.setenv("HTTP_BASE_URL", f"{private.url}/http")
        monkeypatch.setenv("HTTP_API_TOKEN", SECRET)
        project = HttpProject(tmp_path, private, instance)
        project.add_activation()
        project.fault(kind="reject_ids", ids=["SKU-0003"])
        assert project.run(ROWS)["added_failed"] == 1
        monkeypatch.setenv("HTTP_API_TOKEN", SECRET + "-wrong")
        project.write_products(ROWS + [case.row(77)])
        failed = project.materialize(raise_on_error=False)
        assert "HTTP 401" in failure_message(failed)
        written = everything_written(project, instance)
    assert SECRET not in written and "SKU-0003" in written  # the scan did read the ledger and logs


@pytest.mark.parametrize(
    "settings, options, where",
    [
        ({"upsert": {"body": {"items": "{{records}}"}, "record": {"id": "{{identifer}}"}}}, {}, "settings.upsert.record"),
        ({"upsert": {"path": "/{object}/{identifier}", "body": {"items": "{{records}}"}}}, {}, "settings.upsert"),
        ({"upsert": {"body": {"items": "{{records}}", "n": "{{fields.name}}"}}}, {}, "settings.upsert.body"),
        ({"delete": {"body": {"ids": "x{{records}}"}}}, {}, "settings.delete.body"),
        ({"item_errors": {"path": "errors[*"}}, {}, "settings.item_errors.path"),
        ({"rejected_statuses": [401]}, {}, "settings.rejected_statuses"),
        ({"max_items_per_request": 0}, {}, "settings.max_items_per_request"),
        ({"retries": 3}, {}, "settings.retries"),
        ({}, {"record": {"id": "{{identifier}"}}, "options.record"),
        ({}, {"record": {"id": "{{identifier}}", "x": "{{fields.colour}}"}}, "options.record"),
    ],
)
def test_a_bad_template_or_setting_fails_the_load_naming_the_field(http, settings, options, where):
    http.destination_settings = settings
    http.add_activation(options=options)
    with pytest.raises(ConfigError) as refused:
        load_config(http.config_path)
    entry = "activations.sync_products" if where.startswith("options") else f"destinations.{case.DESTINATION}"
    assert f"{entry}.{where}:" in str(refused.value)


def test_an_activation_template_shapes_its_records_and_nulls_omit_leaves_the_key_out(http):
    http.add_activation(
        nulls="omit",
        options={
            "record": {"id": "{{identifier}}", "label": "{{fields.name}} ({{fields.brand}})", "price": "{{fields.price}}", "source": "{{object}}"}
        },
    )
    rows = [case.row(1), {**case.row(2), "price": None}]
    http.run(rows)
    assert case.held(http) == {
        "SKU-0001": {"id": "SKU-0001", "label": "Product 1 (Acme)", "price": 11.0, "source": "products"},
        "SKU-0002": {"id": "SKU-0002", "label": "Product 2 (Acme)", "source": "products"},
    }
