"""The sandbox's clock over real HTTP: token expiry, rate-limit buckets and import windows move
with it, so none of these tests sleeps or depends on how fast the machine is.

Each test has its own sandbox whose clock stands still (``Clock(frozen=True)``) unless advanced.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from activation_pipeline.sandbox import Clock, SandboxServer, start_sandbox

YOTPO_STORE, YOTPO_SECRET = "store-clock-1", "yotpo-secret-clock"
CONNECTIF_KEY = "clock-key:clock-secret"
DOTDIGITAL_AUTH = ("apiuser-clock@apiconnector.com", "dotdigital-clock-password")


@pytest.fixture
def clock() -> Clock:
    return Clock(frozen=True)


@pytest.fixture
def sb(tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[SandboxServer]:
    for name, value in (
        ("SANDBOX_YOTPO_STORE_ID", YOTPO_STORE),
        ("SANDBOX_YOTPO_SECRET", YOTPO_SECRET),
        ("SANDBOX_CONNECTIF_API_KEY", CONNECTIF_KEY),
        ("SANDBOX_DOTDIGITAL_API_USER", DOTDIGITAL_AUTH[0]),
        ("SANDBOX_DOTDIGITAL_API_PASSWORD", DOTDIGITAL_AUTH[1]),
    ):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SANDBOX_RATE_LIMIT", raising=False)
    with start_sandbox(port=0, state_path=tmp_path / "state.sqlite", requests_per_second=2, clock=clock) as server:
        admin(server, "POST", "ratelimit", {"enabled": False})
        yield server


def admin(server: SandboxServer, method: str, path: str, body: Any = None) -> Any:
    answer = requests.request(method, f"{server.url}/_sandbox/{path}", json=body, timeout=5)
    assert answer.status_code < 300, answer.text
    return answer.json()


def yotpo_patch(server: SandboxServer, token: str, external_id: str) -> requests.Response:
    return requests.patch(
        f"{server.url}/yotpo/core/v3/stores/{YOTPO_STORE}/customers",
        timeout=5,
        headers={"X-Yotpo-Token": token},
        json={"customer": {"external_id": external_id}},
    )


def yotpo_login(server: SandboxServer) -> str:
    answer = requests.post(f"{server.url}/yotpo/core/v3/stores/{YOTPO_STORE}/access_tokens", json={"secret": YOTPO_SECRET}, timeout=5)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


def test_a_token_expires_when_the_clock_passes_its_lifetime(sb: SandboxServer, clock: Clock) -> None:
    admin(sb, "POST", "yotpo/config", {"token_ttl_seconds": 60})
    token = yotpo_login(sb)
    assert yotpo_patch(sb, token, "c-1").status_code == 200
    clock.advance(59.5)
    assert yotpo_patch(sb, token, "c-2").status_code == 200  # still within its 60 s
    clock.advance(1)
    expired = yotpo_patch(sb, token, "c-3")
    assert expired.status_code == 401 and expired.json()["errors"][0]["code"] == "unauthorized"
    assert yotpo_patch(sb, yotpo_login(sb), "c-3").status_code == 200  # a fresh token works again
    assert sorted(admin(sb, "GET", "yotpo/customers")["customers"]) == ["c-1", "c-2", "c-3"]


def test_the_clock_is_advanced_over_http_and_reset_with_the_sandbox(sb: SandboxServer) -> None:
    admin(sb, "POST", "synerise/config", {"token_ttl_seconds": 3600})
    login = requests.post(f"{sb.url}/synerise/v4/auth/login/profile", json={"apiKey": "sandbox-synerise-api-key"}, timeout=5)
    token = login.json()["token"]
    moved = admin(sb, "POST", "clock", {"advance_seconds": 3601})
    assert moved["offset_seconds"] == 3601
    refused = requests.post(f"{sb.url}/synerise/v4/clients/batch", json=[{"customId": "u1"}], timeout=5, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401 and refused.json()["error"] == "Token expired."
    assert admin(sb, "GET", "synerise/profiles")["profiles"] == []
    bad = requests.post(f"{sb.url}/_sandbox/clock", json={"advance_seconds": -1}, timeout=5)
    assert bad.status_code == 400 and admin(sb, "GET", "clock")["offset_seconds"] == 3601  # it never goes back
    admin(sb, "POST", "reset")
    assert admin(sb, "GET", "clock")["offset_seconds"] == 0


def test_a_rate_limited_client_is_let_through_once_the_clock_refills_the_bucket(sb: SandboxServer, clock: Clock) -> None:
    admin(sb, "POST", "ratelimit", {"enabled": True, "requests_per_second": 2})
    url, headers = f"{sb.url}/connectif/products/product-id/P1", {"Authorization": f"apiKey {CONNECTIF_KEY}"}
    answers = [requests.get(url, headers=headers, timeout=5) for _ in range(3)]
    assert [a.status_code for a in answers] == [404, 404, 429]  # the frozen clock refills nothing
    assert answers[2].headers["Retry-After"] == "1"
    clock.advance(0.5)  # one request's worth at 2 per second
    assert requests.get(url, headers=headers, timeout=5).status_code == 404
    assert requests.get(url, headers=headers, timeout=5).status_code == 429
    stats = admin(sb, "GET", "stats")["connectif"]
    assert stats["statuses"] == {"404": 3, "429": 2}


def test_an_unpolled_import_stops_counting_as_active_after_its_window(sb: SandboxServer, clock: Clock) -> None:
    admin(sb, "POST", "dotdigital/config", {"max_active_contact_imports": 1, "active_import_seconds": 30})

    def import_contact(email: str) -> requests.Response:
        body = {"contacts": [{"matchIdentifier": "email", "identifiers": {"email": email}}]}
        return requests.put(f"{sb.url}/dotdigital/contacts/v3/import", json=body, auth=DOTDIGITAL_AUTH, timeout=5)

    assert import_contact("a@example.com").status_code == 202
    busy = import_contact("b@example.com")
    assert busy.status_code == 429 and busy.json()["errorCode"] == "contacts:tooManyActiveImports"
    clock.advance(31)
    assert import_contact("b@example.com").status_code == 202
    assert sorted(admin(sb, "GET", "dotdigital/state")["contacts"]) == ["a@example.com", "b@example.com"]
