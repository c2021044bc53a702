"""Errors a user acts on: a refused key names the platform, the destination entry and the env
vars to check; every secret (a store id too) is scrubbed from messages, ledger, metadata and
logs; the ledger command before any run says there is nothing yet and how to make it; run
config `keys:` that match no segment row are listed in a warning and in the metadata."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import yaml
from dagster import AssetKey, materialize

from activation_pipeline.config import load_config
from activation_pipeline.definitions import build_definitions
from activation_pipeline_tests.conftest import product
from activation_pipeline_tests.test_nulls import held, project_maker, row
from activation_pipeline_tests.test_safeguards_and_secrets import everything_written, failure_message
from activation_pipeline_tests.test_sync_modes import metadata

WRONG_KEY = "sk-live-wrong-5d1c08e2aa"


@pytest.fixture
def platform_project(tmp_path, sandbox, instance, monkeypatch):
    """``platform_project(platform)``: a one-activation project on that platform's emulator (test_nulls.py)."""
    return project_maker(tmp_path, sandbox, instance, monkeypatch)


# --------------------------------------------------------------------------- 401 / 403


def test_a_refused_key_names_the_platform_the_destination_entry_and_the_env_vars_to_check(project, monkeypatch):
    project.add_activation()
    project.write_products([product(i) for i in range(1, 4)])
    project.materialize()
    before = project.catalog()
    monkeypatch.setenv("BATCH_REST_API_KEY", WRONG_KEY)
    project.write_products([product(1, price=99.0), product(2), product(3)])
    message = failure_message(project.materialize(raise_on_error=False))
    assert "batch refused the credentials of destinations.batch_test (HTTP 401: wrong credentials)" in message
    assert "BATCH_REST_API_KEY (secrets.rest_api_key, set)" in message
    assert "BATCH_PROJECT_KEY (secrets.project_key, not set)" in message
    assert "AUTHENTICATION_INVALID" in message  # the platform's own words follow
    assert WRONG_KEY not in message
    assert project.catalog() == before  # nothing confirmed changed
    assert project.snapshot_keys() == {"SKU-0001", "SKU-0002", "SKU-0003"}


@pytest.mark.parametrize(
    "platform, variable, secret, wrong",
    [
        ("batch", "BATCH_REST_API_KEY", "rest_api_key", WRONG_KEY),
        ("yotpo", "YOTPO_SECRET", "secret", WRONG_KEY),
        ("dotdigital", "DOTDIGITAL_API_PASSWORD", "api_password", WRONG_KEY),
        ("connectif", "CONNECTIF_API_KEY", "api_key", f"sandbox-connectif-key:{WRONG_KEY}"),
        ("synerise", "SYNERISE_API_KEY", "api_key", WRONG_KEY),
    ],
)
def test_every_platform_names_itself_the_destination_and_the_variable_when_it_refuses_a_key(
    platform_project, monkeypatch, platform, variable, secret, wrong
):
    project = platform_project(platform)
    project.configure(None)
    monkeypatch.setenv(variable, wrong)
    with pytest.raises(Exception) as raised:
        project.run([row(1, "gold")])
    message = str(raised.value)
    assert f"activations.sync: {platform} refused the credentials of destinations.dest (HTTP 401: wrong credentials)" in message
    assert f"{variable} (secrets.{secret}, set)" in message
    assert WRONG_KEY not in message
    assert held(platform, project.sandbox.url) == {}  # nothing reached the platform
    assert project.sql("SELECT status, error LIKE '%' || ? || '%' FROM activation_state.sync_runs", [WRONG_KEY]) == [("failed", False)]


def test_the_env_vars_named_are_the_ones_the_destination_declares(platform_project, monkeypatch):
    project = platform_project("yotpo")
    project.configure(None)
    document = yaml.safe_load(project.config_path.read_text())
    document["destinations"]["dest"]["secrets"] = {"store_id": "SHOP_STORE_ID", "secret": "SHOP_YOTPO_SECRET"}
    project.config_path.write_text(yaml.safe_dump(document, sort_keys=False))
    monkeypatch.delenv("SHOP_STORE_ID", raising=False)
    monkeypatch.setenv("SHOP_YOTPO_SECRET", WRONG_KEY)
    with pytest.raises(Exception) as raised:
        project.run([row(1, "gold")])
    message = str(raised.value)
    assert "yotpo refused the credentials of destinations.dest (HTTP 401" in message
    assert "SHOP_STORE_ID (secrets.store_id, not set)" in message and "SHOP_YOTPO_SECRET (secrets.secret, set)" in message
    assert WRONG_KEY not in message and "sandbox-store" not in message


def test_a_key_without_a_permission_is_told_apart_from_a_wrong_key(platform_project):
    project = platform_project("connectif")
    project.configure(None)
    requests.post(f"{project.sandbox.url}/_sandbox/connectif/config", json={"scopes": ["products:read"]}, timeout=5).raise_for_status()
    with pytest.raises(Exception) as raised:
        project.run([row(1, "gold")])
    message = str(raised.value)
    assert "connectif refused the credentials of destinations.dest (HTTP 403: wrong credentials, or a key without a permission" in message
    assert "CONNECTIF_API_KEY (secrets.api_key, not set)" in message and "products:write" in message
    assert requests.get(f"{project.sandbox.url}/_sandbox/connectif/products", timeout=5).json()["products"] == {}


# --------------------------------------------------------------------------- secrets echoed back

STORE_ID = "acme store/7f3a91"  # sent URL-quoted in every path: acme%20store%2F7f3a91
SECRET = "ys-4be0c2d9e11f"


class EchoingYotpo:
    """A Yotpo look-alike on 127.0.0.1 whose errors echo the request path (with the store id) and the secret."""

    def __init__(self) -> None:
        self.refuse_tokens = False
        echo = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                echoed = f"store path {self.path}, secret {SECRET}, store {STORE_ID}"
                if self.path.endswith("/access_tokens"):
                    status, body = (
                        (401, {"errors": [{"message": f"refused: {echoed}"}]}) if echo.refuse_tokens else (200, {"access_token": "tok-0a1b2c3d"})
                    )
                else:
                    status, body = 400, {"errors": [{"message": f"customer refused: {echoed}"}]}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def echoing_yotpo() -> Iterator[EchoingYotpo]:
    server = EchoingYotpo()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_a_store_id_and_secret_echoed_by_the_platform_never_reach_ledger_metadata_logs_or_the_error(
    platform_project, echoing_yotpo, monkeypatch, instance
):
    project = platform_project("yotpo")
    monkeypatch.setenv("YOTPO_BASE_URL", f"{echoing_yotpo.url}/core/v3/stores/{{store_id}}")
    monkeypatch.setenv("YOTPO_STORE_ID", STORE_ID)
    monkeypatch.setenv("YOTPO_SECRET", SECRET)
    project.configure(None)
    # each customer is refused with a message echoing the store id (in the path) and the secret
    result = project.run([row(1, "gold"), row(2, "silver")])
    assert (result["added_failed"], result["status"]) == (2, "partial")
    messages = [r.data["message"] for r in result["failed_records"].records]
    assert len(messages) == 2 and all("customer refused: store path /core/v3/stores/***/customers, secret ***, store ***" in m for m in messages)
    # then the token request is refused with the same echo: the run fails
    echoing_yotpo.refuse_tokens = True
    with pytest.raises(Exception) as raised:
        project.run([row(1, "gold"), row(2, "silver"), row(3, "gold")])
    message = str(raised.value)
    assert "yotpo refused the credentials of destinations.dest" in message and "secret ***" in message
    written = everything_written(project, instance) + message + str(result)
    for leak in (STORE_ID, "acme%20store%2F7f3a91", "acme+store%2F7f3a91", SECRET):
        assert leak not in written
    assert "customer refused" in written and "P1" in written  # the scan did read ledger and logs


# --------------------------------------------------------------------------- the ledger before any run


def ledger_command(warehouse: os.PathLike, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ACTIVATION_WAREHOUSE": str(warehouse), "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "activation_pipeline.cli", "ledger", *args], env=env, capture_output=True, text=True)


def test_the_ledger_before_any_run_says_there_is_nothing_yet_and_how_to_make_it(tmp_path):
    missing = tmp_path / "nowhere" / "warehouse.duckdb"
    answer = ledger_command(missing, "sync_products")
    assert answer.returncode == 1 and "Traceback" not in answer.stderr
    assert f"nothing recorded yet: no warehouse at {missing}" in answer.stderr
    assert "dagster asset materialize -m activation_pipeline.definitions --select activations/sync_products" in answer.stderr
    assert not missing.exists() and not missing.parent.exists()  # asking created nothing


def test_the_ledger_of_a_warehouse_without_runs_says_so_and_how_to_make_them(project):
    project.add_activation()
    project.write_products([product(1)])
    defs = build_definitions(load_config(project.config_path), warehouse=project.warehouse)
    materialize(
        list(defs.assets),
        selection=[AssetKey(["sources", "products"]), AssetKey(["segments", "catalog"])],
        resources=defs.resources,
        instance=project.instance,
    )
    answer = ledger_command(project.warehouse, "sync_products")
    assert answer.returncode == 1 and "Traceback" not in answer.stderr and "Catalog Error" not in answer.stderr
    assert "nothing recorded yet for activation 'sync_products'" in answer.stderr and "known: none yet" in answer.stderr
    assert "--select activations/sync_products" in answer.stderr


def test_the_ledger_of_an_activation_that_never_ran_names_the_ones_that_did(project):
    project.add_activation()
    project.write_products([product(1)])
    project.materialize()
    answer = ledger_command(project.warehouse, "no_such_sync", "SKU-0001")
    assert answer.returncode == 1 and "Traceback" not in answer.stderr
    assert "nothing recorded yet for activation 'no_such_sync'" in answer.stderr and "known: sync_products" in answer.stderr


# --------------------------------------------------------------------------- keys that match nothing


def test_run_config_keys_that_match_no_row_are_listed_and_the_others_still_sync(project):
    project.add_activation()
    project.write_products([product(i) for i in range(1, 4)])
    project.materialize()
    project.write_products([product(1, price=50.0), product(2, price=77.0), product(3)])
    result = project.materialize(run_config={"keys": ["SKU-0002", "SKU-0404", "nope"]})
    found = metadata(result)
    assert found["keys_not_found"] == ["SKU-0404", "nope"]
    assert (found["added_succeeded"], found["added_failed"]) == (1, 0)  # keys: are resent whatever the snapshot says
    warnings = [e.message for e in project.instance.all_logs(result.run_id) if e.level == 30]  # logging.WARNING
    assert any("run config keys not in the segment, not synced: SKU-0404, nope" in w for w in warnings)
    catalog = project.catalog()
    assert catalog["SKU-0002"]["price"] == 77.0
    assert catalog["SKU-0001"]["price"] == 11.0  # not among the keys: left as confirmed
    assert project.snapshot_keys() == {"SKU-0001", "SKU-0002", "SKU-0003"}


def test_keys_that_all_match_leave_no_warning(project):
    project.add_activation()
    project.write_products([product(i) for i in range(1, 3)])
    project.materialize()
    result = project.materialize(run_config={"keys": ["SKU-0001"]})
    assert "keys_not_found" not in metadata(result)
    assert not [e for e in project.instance.all_logs(result.run_id) if e.level == 30 and "run config keys" in e.message]
    assert project.catalog()["SKU-0001"]["price"] == 11.0


def test_a_verification_refused_by_the_platform_names_the_variable_to_check(platform_project, monkeypatch):
    project = platform_project("connectif")
    project.configure(None)
    project.run([row(1, "gold")])
    monkeypatch.setenv("CONNECTIF_API_KEY", f"sandbox-connectif-key:{WRONG_KEY}")
    defs = build_definitions(load_config(project.config_path), warehouse=project.warehouse)
    result = defs.resolve_job_def("verify_sync_all").execute_in_process(instance=project.instance, raise_on_error=False)
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "platform_matches"]
    assert not evaluation.passed
    assert "connectif refused the credentials of destinations.dest (HTTP 401" in evaluation.description
    assert "CONNECTIF_API_KEY (secrets.api_key, set)" in evaluation.description and WRONG_KEY not in evaluation.description
    assert held("connectif", project.sandbox.url) == {"P1": "gold"}
