"""Security: credentials only travel over https or stay on this machine, the platform
(sandbox) refuses requests without valid credentials, and a server that echoes the
Authorization header back never gets the key into an exception message.

Nothing here contacts a host other than 127.0.0.1: the resolution of an external base URL
is checked without sending a request, and every name lookup of a non-loopback host made
during a test is recorded and refused (``external_lookups``).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import yaml
from dagster import DagsterInvalidConfigError

from activation_pipeline.config import ConfigError
from activation_pipeline.platforms import PLATFORMS
from activation_pipeline.platforms.base import BatchRejected, NoAnswer, PlatformError, Record, SyncTarget
from activation_pipeline.platforms.batch import BatchClient, BatchResource
from activation_pipeline.platforms.http import PlatformSession
from activation_pipeline.platforms.resource import resolve_base_url
from activation_pipeline_tests.conftest import product
from activation_pipeline_tests.test_safeguards_and_secrets import failure_message

KEY = "sk_live_Zq8Xv3Lm9Tp2Rw7Ny4Kb6Hd1Gf5Js0Qa"
PROJECT = "project_7c1e9a3f5b2d"


@pytest.fixture
def external_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Refuse, and record, any name lookup of a host that is not on the loopback interface."""
    looked_up: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host: Any, *args: Any, **kwargs: Any):
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            loopback = name == "localhost" or ipaddress.ip_address(name.strip("[]")).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            looked_up.append(name)
            raise socket.gaierror(socket.EAI_NONAME, f"tests never contact {name}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    return looked_up


def set_base_url(project, url: str) -> None:
    document = yaml.safe_load(project.config_path.read_text())
    document["destinations"]["batch_test"]["base_url"] = url
    project.config_path.write_text(yaml.safe_dump(document, sort_keys=False))


# --------------------------------------------------------------------------- https or loopback


def test_a_plain_http_base_url_off_this_machine_fails_the_load_before_any_request(project, external_lookups):
    project.add_activation()
    set_base_url(project, "http://api.example.com/2.11")
    project.write_products([product(i) for i in range(1, 4)])
    with pytest.raises(ConfigError) as error:  # the load refuses it: no run starts
        project.materialize()
    assert str(error.value).startswith(f"{project.config_path}: destinations.batch_test.base_url: ")
    assert "'http://api.example.com/2.11': a non-loopback base URL must use https" in str(error.value)
    assert external_lookups == []  # refused before any connection was even attempted
    assert project.catalog() == {}


def test_the_refusal_of_a_plain_http_url_names_the_config_field_it_came_from(project, external_lookups):
    project.add_activation()
    set_base_url(project, "http://api.example.com/2.11")
    project.write_products([product(1)])
    with pytest.raises(ConfigError) as error:
        project.materialize()
    assert "base_url" in str(error.value) and "BATCH_BASE_URL" not in str(error.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://api.example.com",
        "http://10.0.0.5:8765/batch/2.11",
        "http://0.0.0.0:8765",
        "ftp://api.example.com",
        "http://127.0.0.1@api.example.com/2.11",  # userinfo: the host is api.example.com
        "HTTP://api.example.com",
        "api.example.com/2.11",
    ],
)
def test_base_urls_that_would_carry_the_key_off_this_machine_in_clear_are_refused(url, monkeypatch, external_lookups):
    monkeypatch.setenv("BATCH_REST_API_KEY", KEY)
    monkeypatch.setenv("BATCH_PROJECT_KEY", PROJECT)
    with pytest.raises(PlatformError, match="must use https"):
        BatchResource(base_url=url).client()
    assert external_lookups == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:8765/batch/2.11", "http://localhost:8765/batch/2.11", "http://[::1]:8765/batch/2.11"])
def test_plain_http_is_accepted_on_the_loopback_interface(url, external_lookups):
    client = BatchResource(base_url=url).client()
    assert client.session.base_url == url
    assert external_lookups == []


def test_an_https_base_url_is_accepted_with_the_keys_from_the_environment_without_contacting_it(monkeypatch, external_lookups):
    monkeypatch.setenv("BATCH_REST_API_KEY", KEY)
    monkeypatch.setenv("BATCH_PROJECT_KEY", PROJECT)
    client = BatchResource(base_url="https://api.example.com/2.11/").client()
    assert client.session.base_url == "https://api.example.com/2.11"
    assert client.session._session.headers["Authorization"] == f"Bearer {KEY}"
    assert client.session._session.headers["X-Batch-Project"] == PROJECT
    assert resolve_base_url("BATCH_BASE_URL", "https://api.batch.com/2.11", "/batch/2.11") == "https://api.batch.com/2.11"
    assert external_lookups == []


def test_an_https_destination_without_its_keys_never_falls_back_to_the_sandbox_credentials(monkeypatch, external_lookups):
    with pytest.raises(PlatformError, match="environment variable BATCH_REST_API_KEY is not set"):
        BatchResource(base_url="https://api.example.com/2.11").client()
    monkeypatch.setenv("BATCH_REST_API_KEY", KEY)
    with pytest.raises(PlatformError, match="environment variable BATCH_PROJECT_KEY is not set"):
        BatchResource(base_url="https://api.example.com/2.11").client()
    assert external_lookups == []


def test_a_real_platform_whose_variable_is_unset_is_refused_before_the_run_naming_the_variable_and_the_destination(
    project, monkeypatch, external_lookups
):
    project.add_activation()
    set_base_url(project, "https://api.example.com/2.11")
    monkeypatch.setenv("BATCH_REST_API_KEY", KEY)  # set; BATCH_PROJECT_KEY is not
    project.write_products([product(i) for i in range(1, 4)])
    with pytest.raises(DagsterInvalidConfigError) as refused:  # Dagster resolves the EnvVar when the run would start
        project.materialize(raise_on_error=False)
    message = str(refused.value)
    assert "resources:destination_batch_test:config:project_key" in message
    assert 'environment variable "BATCH_PROJECT_KEY" which is not set' in message
    assert KEY not in message and "project_sandbox" not in message  # neither the other secret nor the demo credential
    assert external_lookups == []  # nothing was contacted
    assert project.instance.get_runs() == []  # no run started: nothing was sent, nothing recorded


@pytest.mark.parametrize("url", ["http://127.0.0.1.example.com/2.11", "http://127.attacker.example/2.11"])
def test_a_public_host_name_that_merely_starts_with_127_is_not_trusted_as_loopback(url, monkeypatch, external_lookups):
    monkeypatch.setenv("BATCH_REST_API_KEY", KEY)
    monkeypatch.setenv("BATCH_PROJECT_KEY", PROJECT)
    with pytest.raises(PlatformError, match="must use https"):
        BatchResource(base_url=url).client()


# --------------------------------------------------------------------------- credentials at the platform


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": f"Bearer {KEY}", "X-Batch-Project": "project_sandbox"},
        {"Authorization": "Bearer sandbox-batch-rest-key", "X-Batch-Project": PROJECT},
        {"Authorization": "sandbox-batch-rest-key", "X-Batch-Project": "project_sandbox"},
    ],
)
def test_the_sandbox_refuses_edits_without_valid_credentials_and_stores_nothing(sandbox, headers):
    body = {"name": "products", "items": [{"id": "SKU-1", "action": "add", "attributes": {"name": "x"}}]}
    for method, path, payload in (
        ("POST", "/catalogs/create", {"name": "products", "fields": [{"name": "name", "type": "string"}]}),
        ("POST", "/catalogs/items/edit", body),
    ):
        response = requests.request(method, f"{sandbox.url}/batch/2.11{path}", headers=headers, json=payload, timeout=5)
        assert response.status_code == 401
        assert response.json()["error_code"] == "AUTHENTICATION_INVALID"
        assert KEY not in response.text
    assert requests.get(f"{sandbox.url}/_sandbox/batch/catalogs", timeout=5).json()["catalogs"] == []


def test_an_activation_with_a_wrong_key_fails_naming_the_refusal_and_never_the_key(project, monkeypatch):
    monkeypatch.setenv("BATCH_REST_API_KEY", KEY)  # not the sandbox's key
    project.add_activation()
    project.write_products([product(i) for i in range(1, 4)])
    result = project.materialize(raise_on_error=False)
    message = failure_message(result)
    assert "401" in message and "AUTHENTICATION_INVALID" in message
    assert KEY not in message
    assert project.catalog() == {}
    assert project.sql("SELECT status, error LIKE '%AUTHENTICATION_INVALID%', error LIKE ? FROM activation_state.sync_runs", [f"%{KEY}%"]) == [
        ("failed", True, False)
    ]


# --------------------------------------------------------------------------- echoed secrets


class EchoServer:
    """127.0.0.1 only: answers every request with ``status`` and a body echoing its
    credentials, after ``padding`` characters (to place them anywhere in the body)."""

    def __init__(self) -> None:
        self.status, self.padding, self.as_json = 500, 0, True
        self.json_key = "error_message"  # the key the echo is written under (another shape: a key no reader knows)
        echo = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                echoed = (
                    f"Authorization: {self.headers.get('Authorization')}; X-Batch-Project: {self.headers.get('X-Batch-Project')}; path {self.path}"
                )
                text = "." * echo.padding + echoed
                shaped = {"error_code": "ECHO", "error_message": text} if echo.json_key == "error_message" else {echo.json_key: text}
                body = json.dumps(shaped) if echo.as_json else text
                data = body.encode()
                self.send_response(echo.status)
                self.send_header("Content-Type", "application/json" if echo.as_json else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.stop()


def session_to(echo: EchoServer) -> PlatformSession:
    return PlatformSession(
        echo.url, {"Authorization": f"Bearer {KEY}", "X-Batch-Project": PROJECT}, secrets=(KEY, PROJECT), max_retries=1, backoff_factor=0.0, timeout=5
    )


def raised_by(echo: EchoServer, how: str) -> BaseException:
    session = session_to(echo)
    client = BatchClient(session)
    target = SyncTarget(activation="sync_products", title="t", object="products", field_types={"name": "string"}, model=PLATFORMS["batch"].target)
    try:
        if how == "session.request":  # 5xx after retries: NoAnswer
            session.request("POST", "/catalogs/items/edit", json={})
        elif how == "session.fail":  # any unexpected answer: PlatformError
            raise session.fail(session.request("GET", "/catalogs/view"), "view catalog 'products'")
        elif how == "client.prepare":  # 401 at the start of a sync
            client.prepare(target)
        elif how == "client.send":  # 400 on items/edit: BatchRejected, then split by the engine
            client.send(target, "upsert", [Record("SKU-1", "SKU-1", {"name": "x"})])
    except (PlatformError, BatchRejected, NoAnswer) as exc:
        return exc
    finally:
        session.close()
    raise AssertionError(f"{how} raised nothing")


@pytest.mark.parametrize(
    "status, how, raised",
    [
        (500, "session.request", NoAnswer),
        (503, "session.request", NoAnswer),
        (400, "session.fail", PlatformError),
        (401, "client.prepare", PlatformError),
        (403, "client.prepare", PlatformError),
        (400, "client.send", BatchRejected),
        (422, "client.send", BatchRejected),
    ],
)
@pytest.mark.parametrize("as_json", [True, False])
def test_a_server_echoing_the_authorization_header_never_gets_the_key_into_an_error(echo, status, how, raised, as_json):
    echo.status, echo.as_json = status, as_json
    error = raised_by(echo, how)
    message = str(error)
    assert isinstance(error, raised)
    assert "***" in message  # the echo was in the message, scrubbed
    assert KEY not in message and PROJECT not in message
    assert "Authorization: Bearer ***" in message


def fragments(secret: str, size: int = 8) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


@pytest.mark.parametrize("status, how, cut", [(500, "session.request", 300), (400, "session.fail", 500)])
def test_no_fragment_of_the_key_leaks_when_the_echo_straddles_the_truncation(echo, status, how, cut):
    echo.status, echo.as_json = status, False
    echo.padding = cut - len("Authorization: Bearer ") - 20  # 20 characters of the key before the cut
    message = str(raised_by(echo, how))
    assert "Authorization: Bearer " in message  # the echo did reach the message
    assert not [f for f in fragments(KEY) if f in message]


@pytest.mark.parametrize("how", ["session.fail", "client.send"])
def test_an_error_body_in_a_shape_no_reader_knows_keeps_the_platforms_words_scrubbed(echo, how):
    echo.status, echo.json_key = 400, "error_description"  # not a key the kit or Batch's reader looks for
    message = str(raised_by(echo, how))
    assert "error_description" in message and "path /catalogs/" in message  # the body as the platform wrote it
    assert "***" in message and KEY not in message and PROJECT not in message
