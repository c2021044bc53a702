"""A platform is reached through the proxy the environment names (HTTP_PROXY / HTTPS_PROXY, NO_PROXY
honoured), as requests would on its own: the session reads those variables once, when it is made,
instead of on every request."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from activation_pipeline.platforms.base import NoAnswer
from activation_pipeline.platforms.http import PlatformSession


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[str]]]:
    """A forward proxy on 127.0.0.1 that answers every request itself, noting the URL it was asked for."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            seen.append(self.path)  # a proxy is sent the absolute URL
            body = json.dumps({"ok": True}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


def session() -> PlatformSession:
    return PlatformSession("http://platform.invalid/api", {}, [], max_retries=0, timeout=5)


def test_requests_go_through_the_proxy_the_environment_names(proxy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, seen = proxy
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = session()
    try:
        assert client.request("GET", "/ping").json() == {"ok": True}
        assert client.request("GET", "/ping").json() == {"ok": True}
    finally:
        client.close()
    assert seen == ["http://platform.invalid/api/ping"] * 2


def test_a_host_in_no_proxy_is_reached_directly(proxy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, seen = proxy
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.setenv("NO_PROXY", "platform.invalid")
    client = session()
    try:
        with pytest.raises(NoAnswer):  # straight to a host that does not resolve
            client.request("GET", "/ping")
    finally:
        client.close()
    assert seen == []
