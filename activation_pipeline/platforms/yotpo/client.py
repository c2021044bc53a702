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
  ``phone`` (``phone_number`` on the wire): the target model, ``target.py``;
- ``update_only`` (insert mode off) asks Yotpo first whether the customer exists: by
  ``external_ids`` filter for external ids; for emails and phones, which the retrieve
  endpoint is not documented to filter on, by reading the store's customers once per run
  (``limit=100`` pages, ``pagination.next_page_info`` [third-party]) into an index;
- any other 4xx on a customer is that customer's rejection, with the platform's message
  (the error body shape is undocumented: ``errors[].message``, ``message``, ``error`` …
  are read, else the raw text); 404 means the store itself is wrong (fatal);
- requests are paced on the client at ``requests_per_second`` (default 5, Yotpo's limit) by the
  store's ``Pacer`` (platforms/pacing.py), shared by every client of the store in the process; the
  limit is per store and other processes may share it,
  so a 429 doubles the pacing interval (up to 2 s, slow recovery after), ``RateLimit-Remaining: 0``
  holds the next request for ``RateLimit-Reset`` seconds (1 s when absent), 429/5xx are retried
  by the shared session (``Retry-After`` honoured), and a request still answered 429 goes back
  through the pacing up to 3 more times;
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

import threading
from collections.abc import Sequence
from typing import Any

import requests

from activation_pipeline.platforms.base import ItemOutcome, Op, PlatformError, Record, SyncTarget, answer_error, send_one_by_one
from activation_pipeline.platforms.http import PlatformSession, SessionClient, TokenAuth, pages
from activation_pipeline.platforms.pacing import RateHeaders
from activation_pipeline.platforms.resource import ensure_reachable
from activation_pipeline.platforms.yotpo.customer import (
    STANDARD_FIELDS,
    custom_problem,
    customer_payload,
    customers_of,
    error_message,
    field_problem,
    identifier_problem,
    next_page_info,
    normalised,
)
from activation_pipeline.platforms.yotpo.target import YotpoTarget

# --- the transport contract (the customer fields and rules: customer.py) ---------------
SUCCESS = (200, 201, 204)
TOKEN_INVALID = (401, 403)
PAGE_LIMIT = 100
DOCUMENTED_RATE = 5.0  # requests per second per store: the slowest a 429 paces from
RATE_HEADERS = RateHeaders("RateLimit-Remaining", "RateLimit-Reset")  # reset in seconds; 1 s (Yotpo's advice) when absent


class YotpoClient(SessionClient):
    """One Yotpo store. Thread-safe: the engine sends ``concurrency`` requests at a time."""

    def __init__(self, session: PlatformSession, secret: str):
        self.session = session
        self._secret = secret
        self._tokens = TokenAuth(
            self._new_token,
            lambda token: {"X-Yotpo-Token": token},
            refused=TOKEN_INVALID,
            platform="Yotpo",
            describe=lambda response: error_message(response, self.session.redact),
        )
        self._index_lock = threading.Lock()
        self._index: dict[YotpoTarget, frozenset[str]] = {}  # emails (phones) present in the store, read once per run

    # --- DestinationClient ---------------------------------------------------------------
    def prepare(self, target: SyncTarget[YotpoTarget]) -> None:
        """Check the store answers and the secret is accepted (one token request)."""
        _ = target.platform  # parsed first: an unknown identifier kind stops the run before anything is sent
        ensure_reachable(self.session.base_url)
        self._tokens.current()

    def invalid_reason(self, target: SyncTarget[YotpoTarget], record: Record, op: Op) -> str | None:
        problem = identifier_problem(target.platform.kind, record.identifier)
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

    def send(self, target: SyncTarget[YotpoTarget], op: Op, records: Sequence[Record]) -> list[ItemOutcome]:
        """One PATCH per customer (Yotpo has no bulk endpoint); one outcome per record.

        Never raises BatchRejected: each request carries one customer, so a 4xx is that
        customer's rejection. When the platform stops answering, the record and the rest
        of the batch are ``no_answer``.
        """
        customers = target.platform
        if op == "delete":
            raise PlatformError("Yotpo customers cannot be deleted through the Core API (operations: upsert, update_only)")
        return send_one_by_one(records, lambda record: self._send_one(customers, op, record), self.session.redact)

    # --- one customer --------------------------------------------------------------------
    def _send_one(self, customers: YotpoTarget, op: Op, record: Record) -> ItemOutcome:
        if op == "update" and not self._exists(customers, record.identifier):
            return ItemOutcome(
                record.key, "skipped", f"no Yotpo customer with {customers.kind} {record.identifier}; insert mode is off (update_only)"
            )
        response = self._call("PATCH", "/customers", json=customer_payload(customers, record))
        if response.status_code in SUCCESS:
            return ItemOutcome(record.key, "confirmed")
        if response.status_code == 404:
            raise self._fail(response, "PATCH customers (is the store id right?)")
        if 400 <= response.status_code < 500:
            return ItemOutcome(record.key, "rejected", error_message(response, self.session.redact))
        raise self._fail(response, "PATCH customers")

    def _exists(self, customers: YotpoTarget, value: str) -> bool:
        if customers.kind == "external_id":
            response = self._call("GET", "/customers", params={"external_ids": value})
            if _no_results(response):
                return False
            if response.status_code != 200:
                raise self._fail(response, "GET customers by external_ids")
            return any(str(c.get("external_id")) == value for c in customers_of(response))
        return normalised(customers.kind, value) in self._store_index(customers)

    def _store_index(self, customers: YotpoTarget) -> frozenset[str]:
        """Every email (or phone) of the store's customers, read once per run."""
        with self._index_lock:
            if customers not in self._index:
                listed = pages(self._customers_page)
                self._index[customers] = frozenset(normalised(customers.kind, str(c[customers.field])) for c in listed if c.get(customers.field))
            return self._index[customers]

    def _customers_page(self, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        params: dict[str, Any] = {"limit": PAGE_LIMIT} if cursor is None else {"limit": PAGE_LIMIT, "page_info": cursor}
        response = self._call("GET", "/customers", params=params)
        if _no_results(response):
            return [], None  # an empty store answers "no results found" [third-party]
        if response.status_code != 200:
            raise self._fail(response, "GET customers (reading the store's customers)")
        return customers_of(response), next_page_info(response)

    def _fail(self, response: requests.Response, what: str) -> PlatformError:
        """An unexpected answer, as a run-stopping error (scrubbed before it is cut)."""
        return answer_error(response.status_code, f"{what}: {error_message(response, self.session.redact)}")

    # --- HTTP: token, one replay on 401/403 (the session paces: the store's pacer) -----------
    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self._tokens.request(self.session.request, method, path, **kwargs)

    def _new_token(self) -> str:
        response = self.session.request("POST", "/access_tokens", json={"secret": self._secret})
        if response.status_code in TOKEN_INVALID or response.status_code == 400:
            raise answer_error(
                response.status_code,
                self.session.redact(
                    f"Yotpo refused the API secret at {self.session.base_url}/access_tokens "
                    f"({error_message(response, self.session.redact)}); check the store id and secret"
                ),
            )
        if response.status_code not in SUCCESS:
            raise PlatformError(
                self.session.redact(
                    f"no access token from {self.session.base_url}/access_tokens ({error_message(response, self.session.redact)}); "
                    "is the base URL (YOTPO_BASE_URL) a Yotpo Core v3 store URL?"
                )
            )
        try:
            token = response.json()["access_token"]
        except (ValueError, KeyError, TypeError):
            raise PlatformError(f"access_tokens answered HTTP {response.status_code} without an access_token") from None
        if not isinstance(token, str) or not token:
            raise PlatformError("access_tokens answered an empty access_token")
        self.session.add_secret(token)
        return token


def _no_results(response: requests.Response) -> bool:
    """An empty answer: 404, or the 400 "no results found" Yotpo gives a filter matching nothing [third-party]."""
    return response.status_code == 404 or (response.status_code == 400 and "no results" in response.text.lower())
