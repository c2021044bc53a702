"""The transport kit every platform client is built from (nothing here knows a platform).

- ``PlatformSession``: a pooled requests session with urllib3 ``Retry`` on 429/500/502/503/504
  and connection/read errors (exponential backoff with jitter, ``Retry-After`` honoured). Every
  call the clients make is idempotent (upserts and deletes by key), so POST/PUT/PATCH are retried
  too. It counts requests and retries for the run's metadata, and scrubs secret values from every
  message it raises: a key never reaches a log line, metadata entry, ledger row or exception.
- ``TokenAuth``: a short-lived access token shared by a client's threads, renewed once when the
  platform refuses it (one login even when many threads see the refusal).
- pacing (``platforms/pacing.py``): a session given its account's ``Pacer`` sends every request in
  the pacer's turn and tells it of every 429 the moment it arrives, before retrying it.
- ``error_text``: one reader of the platforms' error bodies.
- ``utc_wire``: one UTC wire format for dates and times; ``json_value``: any record value as JSON.
- ``pages``: one pagination loop (cursor or offset), safe against a cursor that repeats.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from activation_pipeline.platforms.base import (
    CredentialsRefused,
    NoAnswer,
    PlatformError,
    answer_error,
)
from activation_pipeline.platforms.pacing import Pacer, release_pacer

RETRY_STATUSES = (429, 500, 502, 503, 504)
Send = Callable[..., requests.Response]


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            # as written, and as it appears in a URL path or query (a store id in the path) or inside JSON
            for form in dict.fromkeys((secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1])):
                text = text.replace(form, "***")
    return text


class WatchedRetry(Retry):
    """urllib3's ``Retry`` telling ``watch(status, headers)`` of each answer it is about to retry (a 429 and
    its ``Retry-After``), so the account's pacer holds every thread, not only the one that was refused."""

    watch: Callable[[int, Any], None] | None = None

    def new(self, **kw: Any) -> WatchedRetry:
        retry = super().new(**kw)
        retry.watch = self.watch
        return retry

    def increment(self, method: str | None = None, url: str | None = None, response: Any = None, *args: Any, **kwargs: Any) -> WatchedRetry:
        if response is not None and self.watch is not None:
            self.watch(response.status, response.headers)
        return super().increment(method, url, response, *args, **kwargs)


class PlatformSession:
    """A pooled, retrying requests session bound to one platform account."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        secrets: Iterable[str],
        *,
        max_retries: int = 6,
        backoff_factor: float = 0.25,
        backoff_max: float = 30.0,
        timeout: float = 30.0,
        pool_size: int = 16,
        pacer: Pacer | None = None,
        account: str | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._secrets = tuple(s for s in secrets if s)
        self._lock = threading.Lock()
        self.requests_sent = 0
        self.retries = 0
        # the account's pacer (shared with its other clients; released on close under ``account``)
        self.pacer, self._account = pacer, account
        retry = WatchedRetry(
            total=max_retries,
            connect=max_retries,
            read=max_retries,
            status=max_retries,
            other=max_retries,
            allowed_methods=None,
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff_factor,
            backoff_max=backoff_max,
            backoff_jitter=backoff_factor,
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        retry.watch = pacer.observe if pacer is not None else None
        self._session = requests.Session()
        adapter = HTTPAdapter(max_retries=retry, pool_connections=pool_size, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update(headers)
        # requests reads proxies and CA bundles from the environment on every request, walking os.environ
        # twice each time (measured: the largest Python cost of a request after building its body). They
        # are read once here instead, for this session's one base URL (NO_PROXY honoured), with the same effect.
        self._session.trust_env = False
        self._session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            self._session.verify = bundle

    def add_secret(self, secret: str) -> None:
        """Scrub a value learnt at run time (an access token) from every later message."""
        if secret and secret not in self._secrets:
            self._secrets = (*self._secrets, secret)

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def request(self, method: str, path: str, *, items: int = 0, **kwargs: Any) -> requests.Response:
        """Send with retries, in the account's turn (``items``: the records it carries, for an items budget);
        raise NoAnswer (redacted, with the last status) when no usable answer came back."""
        if self.pacer is not None:
            return self.pacer.request(self._send, method, path, items=items, **kwargs)
        return self._send(method, path, **kwargs)

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.base_url}{path}"
        kwargs.setdefault("timeout", self.timeout)
        try:
            response = self._session.request(method, url, **kwargs)
        except requests.RequestException as exc:
            with self._lock:
                self.requests_sent += 1
            raise NoAnswer(self.redact(f"{method} {path}: no answer after retries ({type(exc).__name__}: {exc})")) from None
        retried = len(getattr(getattr(response.raw, "retries", None), "history", ()) or ())  # timeouts and statuses alike
        with self._lock:
            self.requests_sent += 1 + retried
            self.retries += retried
        if response.status_code in RETRY_STATUSES:
            raise NoAnswer(
                self.redact(f"{method} {path}: HTTP {response.status_code} after {retried} retries: ") + self.redact(response.text)[:300],
                status=response.status_code,
            )
        return response

    def fail(self, response: requests.Response, what: str) -> PlatformError:
        """A redacted PlatformError describing an unexpected answer."""
        return answer_error(response.status_code, f"{what}: {error_text(response, self.redact)}")

    def close(self) -> None:
        self._session.close()
        if self._account is not None:
            release_pacer(self._account)
            self._account = None


class SessionClient:
    """What every HTTP client shares: the counters of its ``PlatformSession`` and closing it."""

    session: PlatformSession

    @property
    def requests_sent(self) -> int:
        return self.session.requests_sent

    @property
    def retries(self) -> int:
        return self.session.retries

    def close(self) -> None:
        self.session.close()


# --- error bodies ---------------------------------------------------------------------------
MESSAGE_KEYS = ("error_message", "message", "error", "detail", "title", "description", "error_code", "code")  # words, then codes
LIST_KEYS = ("errors", "validationErrors", "details")
PLACE_KEYS = ("field", "path", "property", "key", "index", "item")  # "item": Dotdigital v3 details
TEXT_KEYS = ("message", "reason", "detail", "description", "error", "error_message")


def body_parts(body: Any) -> list[str]:
    """What an error body says, in order: its top-level messages, then each listed error as ``place: message``."""
    if isinstance(body, str):
        return [body] if body.strip() else []
    if isinstance(body, list):
        return [part for item in body for part in body_parts(item)]
    if not isinstance(body, dict):
        return [] if body is None else [str(body)]
    parts = [str(body[key]) for key in MESSAGE_KEYS if isinstance(body.get(key), (str, int)) and str(body[key]).strip()]
    if isinstance(body.get("error"), dict):
        parts += body_parts(body["error"])
    for key in LIST_KEYS:
        for item in body.get(key) or [] if isinstance(body.get(key), list) else []:
            if isinstance(item, dict):
                place = next((str(item[k]) for k in PLACE_KEYS if item.get(k) not in (None, "")), "")
                text = next((str(item[k]) for k in TEXT_KEYS if item.get(k) not in (None, "")), "")
                parts.append(f"{place}: {text}" if place and text else place or text)
            elif item not in (None, ""):
                parts.append(str(item))
    return [part for part in parts if part]


def error_text(
    response: requests.Response,
    scrub: Callable[[str], str] = lambda text: text,
    *,
    limit: int = 500,
    status: bool = True,
    separator: str = "; ",
    read: Callable[[Any], list[str]] = body_parts,
) -> str:
    """``HTTP <status>: <what the body says>``, scrubbed before it is cut (a key cut in half would no longer match).

    ``status=False`` leaves the status out when the body is a JSON error that speaks for itself
    (Batch's ``CODE: message``); a body that is not JSON always keeps it. ``read`` turns a JSON body
    into its parts: a platform whose messages come in their own order passes its reader (Connectif's
    ``detail``, then ``validationErrors``, then ``code``)."""
    raw = scrub(response.text or "")
    try:
        parts, is_json = read(json.loads(raw)), True
    except ValueError:
        parts, is_json = [raw.strip()], False
    said = separator.join(dict.fromkeys(part for part in parts if part))[:limit]
    if not said and raw.strip():  # a JSON body in a shape no reader knows: its own words, as sent
        said, is_json = raw.strip()[:limit], False
    if not said:
        return f"HTTP {response.status_code}"
    return said if is_json and not status else f"HTTP {response.status_code}: {said}"


def json_object(response: requests.Response) -> dict[str, Any]:
    """The answer's JSON object, or {} when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# --- token auth -------------------------------------------------------------------------------
class TokenAuth:
    """A short-lived access token (Yotpo, Synerise): fetched on first use, and when the platform refuses
    it (``refused`` statuses), fetched again once and the request replayed; refused again, the
    credentials are wrong. One login even when many threads see the refusal."""

    def __init__(
        self,
        login: Callable[[], str],
        headers: Callable[[str], dict[str, str]],
        *,
        refused: tuple[int, ...] = (401,),
        platform: str = "the platform",
        describe: Callable[[requests.Response], str] = error_text,
    ):
        self._login, self._headers, self.refused = login, headers, refused
        self._platform, self._describe = platform, describe
        self._token: str | None = None
        self._lock = threading.Lock()

    def current(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = self._login()
            return self._token

    def renew(self, rejected: str) -> str:
        with self._lock:
            if self._token in (None, rejected):  # another thread may have renewed it already
                self._token = self._login()
            return self._token

    def request(self, send: Send, method: str, path: str, **kwargs: Any) -> requests.Response:
        """``send(method, path, headers=…, **kwargs)`` with the token; renewed and replayed once on a refusal."""
        extra = kwargs.pop("headers", None) or {}
        token = self.current()
        response = send(method, path, headers={**extra, **self._headers(token)}, **kwargs)
        if response.status_code in self.refused:
            token = self.renew(token)
            response = send(method, path, headers={**extra, **self._headers(token)}, **kwargs)
            if response.status_code in self.refused:
                raise CredentialsRefused(
                    f"{method} {path}: {self._platform} refused a fresh access token: {self._describe(response)}", response.status_code
                )
        return response


# --- wire formats and pages --------------------------------------------------------------------
def utc_wire(value: date | datetime, *, timespec: str = "auto") -> str:
    """ISO 8601 in UTC with a ``Z``: a naive datetime is taken as UTC, a date as its midnight UTC."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec=timespec).replace("+00:00", "Z")


def json_value(value: Any, *, timespec: str = "auto") -> Any:
    """A record's value as JSON can carry it, at any depth: a datetime in UTC with a ``Z`` (``utc_wire``), a date
    as ``YYYY-MM-DD``, a decimal as a number; lists, tuples and objects element by element."""
    if isinstance(value, datetime):
        return utc_wire(value, timespec=timespec)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): json_value(v, timespec=timespec) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v, timespec=timespec) for v in value]
    return value


Cursor = TypeVar("Cursor")
Item = TypeVar("Item")


def pages(fetch: Callable[[Cursor | None], tuple[list[Item], Cursor | None]], first: Cursor | None = None) -> Iterator[Item]:
    """Every item of a paginated listing: ``fetch(cursor)`` answers one page and the next cursor (None: last page).
    Stops on an empty page, and on a cursor seen before (a platform answering the same page again)."""
    cursor, seen = first, set()
    while True:
        items, following = fetch(cursor)
        yield from items
        if not items or following is None or following in seen:
            return
        seen.add(following)
        cursor = following


def offset_pages(fetch: Callable[[int], list[Item]], page_size: int) -> Iterator[Item]:
    """Every item of a listing paged by offset (``skip``): a short page is the last."""

    def page_at(skip: int | None) -> tuple[list[Item], int | None]:
        page = fetch(skip or 0)
        return page, ((skip or 0) + page_size if len(page) >= page_size else None)

    return pages(page_at)
