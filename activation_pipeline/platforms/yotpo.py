"""Yotpo (SMS & Email) customers client: Core API v3.

Contract used, and where it comes from (table, sources and open questions in
docs/platforms/yotpo.md):

Verified (core-api.yotpo.com reference pages; Yotpo's own Magento modules
YotpoLtd/magento2-module-core and -messaging):
- base ``https://api.yotpo.com/core/v3/stores/{store_id}``; ``store_id`` is the store's
  app key;
- ``POST …/access_tokens {"secret"}`` → ``{"access_token"}``, sent as the
  ``X-Yotpo-Token`` header; 401 or 403 means "invalid token": get a new one once and
  replay (magento2-module-core ``Model/Api/{Token,Request,Response}.php``);
- ``PATCH …/customers {"customer": {...}}`` creates or updates one customer; success is
  200, 201 or 204; there is no bulk customer endpoint, so one request carries one customer;
- identity: by ``external_id``; without one, by exactly one of ``email`` or
  ``phone_number`` (both at once are refused); phones in E.164;
- enums: ``gender`` F/M/Other, ``account_status`` enabled/disabled/invited/declined;
  ``default_language`` ISO 639-1, ``default_currency`` ISO 4217; ``tags`` a
  comma-separated string; ``custom_properties`` a flat object of primitives (no null),
  names lowercase letters, digits and ``_`` of at most 32 characters, values of at most
  255; an empty string removes a property;
- ``GET …/customers?external_ids=<id>`` → ``{"customers": [...]}`` (magento2-module-core
  ``Model/Api/ErrorHandler.php``, ethyca/fides Yotpo connector); cursor pagination with
  ``limit`` (≤ 100) and ``page_info`` (Core "Guidelines & conventions");
- 5 requests/s per store → 429, with ``RateLimit-Remaining`` / ``RateLimit-Reset``.

Chosen here where the public material is silent (all in this module, easy to correct):
- the identifier kind of an activation is its ``object``: ``external_id``, ``email`` or
  ``phone`` (``phone_number`` on the wire);
- ``update_only`` (insert mode off) asks Yotpo first whether the customer exists: by
  ``external_ids`` filter for external ids; for emails and phones, which the retrieve
  endpoint is not documented to filter on, by reading the store's customers once per run
  (``limit=100`` pages, ``pagination.next_page_info`` [third-party]) into an index;
- any other 4xx on a customer is that customer's rejection, with the platform's message
  (the error body shape is undocumented: ``errors[].message``, ``message``, ``error`` …
  are read, else the raw text); 404 means the store itself is wrong (fatal);
- requests are paced on the client at ``requests_per_second`` (default 5, Yotpo's limit);
  the limit is per store and other processes may share it, so a 429 doubles the pacing
  interval (slow recovery after), ``RateLimit-Remaining: 0`` holds the next request for
  ``RateLimit-Reset`` seconds (1 s when absent), 429/5xx are retried by the shared session
  (``Retry-After`` honoured), and a request still answered 429 goes back through the pacing
  up to ``RATE_LIMIT_ROUNDS`` more times;
- a null custom attribute is sent as ``""`` (removes the property); a null standard
  field is left out of the payload (partial update: Yotpo keeps its value); with the
  activation's ``nulls: omit`` the engine leaves every null out, so custom properties are kept too;
- invalid before sending (never sent): an empty identifier, an email that is not an HTML5
  valid address with a dotted domain, a phone that is not ``+`` then 7-15 digits (E.164's
  maximum; the shortest numbers in use have 7), enum/language/currency/boolean values out of
  range, lists or objects where primitives go, custom values over 255 characters, NaN;
- one ``send`` = one PATCH per record it is given (the spec's limit of 1 item per request
  makes that one record); a record's 4xx is its ``rejected`` outcome, never ``BatchRejected``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field

from activation_pipeline.platforms.base import (
    ItemOutcome,
    NoAnswer,
    Op,
    PlatformError,
    Record,
    SyncTarget,
    answer_error,
    send_one_by_one,
)
from activation_pipeline.platforms.declaration import PlatformSpec
from activation_pipeline.platforms.http import PlatformSession, SessionClient, TokenAuth
from activation_pipeline.platforms.resource import PlatformResource, ensure_reachable, secret_env
from activation_pipeline.platforms.yotpo_customer import (
    IDENTIFIER_FIELDS,
    STANDARD_FIELDS,
    activation_problem,
    custom_problem,
    customer_payload,
    customers_of,
    error_message,
    field_problem,
    identifier_problem,
    next_page_info,
    normalised,
)

# --- the transport contract (the customer fields and rules: yotpo_customer.py) ---------
MAX_ITEMS_PER_REQUEST = 1  # no bulk customer endpoint: one customer per PATCH
SUCCESS = (200, 201, 204)
TOKEN_INVALID = (401, 403)
PAGE_LIMIT = 100
DOCUMENTED_RATE = 5.0  # requests per second per store
MAX_INTERVAL = 2.0  # slowest pacing after repeated 429s
RATE_LIMIT_ROUNDS = 3  # extra rounds (each with the session's retries) for a request still answered 429


# --- the client ---------------------------------------------------------------------------
class YotpoClient(SessionClient):
    """One Yotpo store. Thread-safe: the engine sends ``concurrency`` requests at a time."""

    def __init__(self, session: PlatformSession, secret: str, *, requests_per_second: float = 5.0):
        self.session = session
        self._secret = secret
        self._tokens = TokenAuth(self._new_token, lambda token: {"X-Yotpo-Token": token}, refused=TOKEN_INVALID, platform="Yotpo",
                                 describe=lambda response: error_message(response, self.session.redact))
        self._base_interval = 1.0 / requests_per_second if requests_per_second > 0 else 0.0
        self._interval = self._base_interval
        self._pace_lock = threading.Lock()
        self._next_slot = 0.0
        self._index_lock = threading.Lock()
        self._index: dict[str, frozenset[str]] = {}  # kind -> values present in the store (email/phone)

    # --- DestinationClient ---------------------------------------------------------------
    def prepare(self, target: SyncTarget) -> None:
        """Check the store answers and the secret is accepted (one token request)."""
        _kind_of(target)  # an unknown identifier kind stops the run before anything is sent
        ensure_reachable(self.session.base_url)
        self._tokens.current()

    def invalid_reason(self, target: SyncTarget, record: Record, op: Op) -> str | None:
        kind = _kind_of(target)
        problem = identifier_problem(kind, record.identifier)
        if problem:
            return problem
        for name, value in record.fields.items():
            if name.startswith("address.") or name in STANDARD_FIELDS:
                problem = field_problem(name, value)
            else:
                problem = custom_problem(name, value)
            if problem:
                return problem
        return None

    def send(self, target: SyncTarget, op: Op, records: Sequence[Record]) -> list[ItemOutcome]:
        """One PATCH per customer (Yotpo has no bulk endpoint); one outcome per record.

        Never raises BatchRejected: each request carries one customer, so a 4xx is that
        customer's rejection. When the platform stops answering, the record and the rest
        of the batch are ``no_answer``.
        """
        kind = _kind_of(target)
        if op == "delete":
            raise PlatformError("Yotpo customers cannot be deleted through the Core API (operations: upsert, update_only)")
        return send_one_by_one(records, lambda record: self._send_one(kind, op, record), self.session.redact)

    # --- one customer --------------------------------------------------------------------
    def _send_one(self, kind: str, op: Op, record: Record) -> ItemOutcome:
        if op == "update" and not self._exists(kind, record.identifier):
            return ItemOutcome(record.key, "skipped", f"no Yotpo customer with {kind} {record.identifier}; insert mode is off (update_only)")
        response = self._call("PATCH", "/customers", json=customer_payload(kind, record))
        if response.status_code in SUCCESS:
            return ItemOutcome(record.key, "confirmed")
        if response.status_code == 404:
            raise self._fail(response, "PATCH customers (is the store id right?)")
        if 400 <= response.status_code < 500:
            return ItemOutcome(record.key, "rejected", error_message(response, self.session.redact))
        raise self._fail(response, "PATCH customers")

    def _exists(self, kind: str, value: str) -> bool:
        if kind == "external_id":
            response = self._call("GET", "/customers", params={"external_ids": value})
            if response.status_code in (404,) or (response.status_code == 400 and "no results" in response.text.lower()):
                return False
            if response.status_code != 200:
                raise self._fail(response, "GET customers by external_ids")
            return any(str(c.get("external_id")) == value for c in customers_of(response))
        return normalised(kind, value) in self._store_index(kind)

    def _store_index(self, kind: str) -> frozenset[str]:
        """Every email (or phone) of the store's customers, read once per run."""
        with self._index_lock:
            if kind not in self._index:
                field = IDENTIFIER_FIELDS[kind]
                values: set[str] = set()
                params: dict[str, Any] = {"limit": PAGE_LIMIT}
                seen_cursors: set[str] = set()
                while True:
                    response = self._call("GET", "/customers", params=params)
                    if response.status_code == 404 or (response.status_code == 400 and "no results" in response.text.lower()):
                        break  # an empty store answers "no results found" [third-party]
                    if response.status_code != 200:
                        raise self._fail(response, "GET customers (reading the store's customers)")
                    page = customers_of(response)
                    values.update(normalised(kind, str(c[field])) for c in page if c.get(field))
                    cursor = next_page_info(response)
                    if not page or not cursor or cursor in seen_cursors:
                        break
                    seen_cursors.add(cursor)
                    params = {"limit": PAGE_LIMIT, "page_info": cursor}
                self._index[kind] = frozenset(values)
            return self._index[kind]

    def _fail(self, response: Any, what: str) -> PlatformError:
        """An unexpected answer, as a run-stopping error (scrubbed before it is cut)."""
        return answer_error(response.status_code, f"{what}: {error_message(response, self.session.redact)}")

    # --- HTTP: pacing, token, one replay on 401/403 ---------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._tokens.request(self._paced, method, path, **kwargs)

    def _paced(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send at most one request per pacing interval, shared by every thread of this client.

        Yotpo's limit is per store, so other processes (another activation on the same store)
        share it: a 429 (even one the session retried away) doubles the interval, up to 2 s, and
        answers without one shrink it back towards ``requests_per_second``.
        """
        for round_ in range(RATE_LIMIT_ROUNDS + 1):
            with self._pace_lock:
                now = time.monotonic()
                slot = max(now, self._next_slot)
                self._next_slot = slot + self._interval
            if slot > now:
                time.sleep(slot - now)
            try:
                response = self.session.request(method, path, **kwargs)
            except NoAnswer as silence:
                if silence.status != 429:
                    raise  # a transport failure or a 5xx says nothing about the rate limit
                self._adapt(throttled=True)
                if round_ == RATE_LIMIT_ROUNDS:
                    raise
                # still rate-limited after the session's retries (other processes share the store's
                # limit): queue again behind this client's pacing, after a jittered pause
                time.sleep(1.0 + random.uniform(0.0, 1.0))
                continue
            history = getattr(getattr(response.raw, "retries", None), "history", ()) or ()
            self._adapt(throttled=response.status_code == 429 or any(getattr(h, "status", None) == 429 for h in history))
            self._honour_rate_headers(response)
            return response
        raise AssertionError("unreachable")

    def _adapt(self, *, throttled: bool) -> None:
        with self._pace_lock:
            if throttled:
                self._interval = min(max(self._interval * 2, self._base_interval, 1.0 / DOCUMENTED_RATE), MAX_INTERVAL)
            elif self._interval > self._base_interval:
                self._interval = self._interval * 0.98  # slow recovery: fewer 429s when sharing the store
                if self._interval < max(self._base_interval, 0.01):
                    self._interval = self._base_interval

    def _honour_rate_headers(self, response: Any) -> None:
        """``RateLimit-Remaining: 0`` → hold every thread's next request for ``RateLimit-Reset`` seconds
        (1 s, Yotpo's recommended backoff, when the answer does not say)."""
        remaining, reset = response.headers.get("RateLimit-Remaining"), response.headers.get("RateLimit-Reset")
        try:
            if remaining is not None and int(float(remaining)) <= 0:
                wait = min(max(float(reset), 0.0), 60.0) if reset is not None else 1.0
                wait += random.uniform(0.0, 0.25)  # do not resume in step with the store's other clients
                with self._pace_lock:
                    self._next_slot = max(self._next_slot, time.monotonic() + wait)
        except ValueError:
            return

    def _new_token(self) -> str:
        response = self._paced("POST", "/access_tokens", json={"secret": self._secret})
        if response.status_code in TOKEN_INVALID or response.status_code == 400:
            raise answer_error(response.status_code, self.session.redact(
                f"Yotpo refused the API secret at {self.session.base_url}/access_tokens "
                f"({error_message(response, self.session.redact)}); check the store id and secret"
            ))
        if response.status_code not in SUCCESS:
            raise PlatformError(self.session.redact(
                f"no access token from {self.session.base_url}/access_tokens ({error_message(response, self.session.redact)}); "
                "is the base URL (YOTPO_BASE_URL) a Yotpo Core v3 store URL?"
            ))
        try:
            token = response.json()["access_token"]
        except (ValueError, KeyError, TypeError):
            raise PlatformError(f"access_tokens answered HTTP {response.status_code} without an access_token") from None
        if not isinstance(token, str) or not token:
            raise PlatformError("access_tokens answered an empty access_token")
        self.session.add_secret(token)
        return token


def _kind_of(target: SyncTarget) -> str:
    if target.object not in IDENTIFIER_FIELDS:
        raise PlatformError(f"{target.activation}: Yotpo object must be one of {', '.join(IDENTIFIER_FIELDS)}, not {target.object!r}")
    return target.object



# --- Dagster resource and spec -----------------------------------------------------------
class YotpoResource(PlatformResource):
    """A Yotpo store. The store id and API secret are read from the environment variables named here."""

    PLATFORM: ClassVar[str] = "yotpo"
    SANDBOX_PATH: ClassVar[str] = "/yotpo/core/v3/stores/{store_id}"

    base_url: str | None = Field(default=None, description="default: $YOTPO_BASE_URL, else the sandbox; may contain {store_id}")
    store_id_env: str = secret_env("YOTPO_STORE_ID", sandbox="sandbox-store")
    secret_env: str = secret_env("YOTPO_SECRET", sandbox="sandbox-yotpo-secret")
    max_retries: int = Field(default=8, ge=0)
    backoff_seconds: float = Field(default=0.5, ge=0)
    requests_per_second: float = Field(default=5.0, ge=0.0, description="client-side pacing (Yotpo allows 5/s per store); 0 = off")

    def client(self) -> YotpoClient:
        template = self.resolved_base_url()
        store_id, secret = self.secret("store_id", template), self.secret("secret", template)
        base_url = template.replace("{store_id}", quote(store_id, safe=""))
        # the store id is in every URL: scrubbed like the secret
        session = self.session(base_url, {"Accept": "application/json"}, (secret, store_id))
        return YotpoClient(session, secret, requests_per_second=self.requests_per_second)


YOTPO_SPEC = PlatformSpec(
    name="yotpo",
    operations=frozenset({"upsert", "update_only"}),
    resource=YotpoResource,
    max_items_per_request=MAX_ITEMS_PER_REQUEST,
    field_pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)?$",
    field_rule="lowercase letters, digits and underscores (address fields as address.<name>)",
    object_pattern=r"^(external_id|email|phone)$",
    object_rule="external_id, email or phone: the identifier Yotpo customers are matched by",
    activation_problem=activation_problem,
    nulls_default="send",  # a null custom property is sent as "" (removes it); a null standard field is skipped
)