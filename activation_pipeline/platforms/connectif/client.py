"""Connectif products client: create, update, remove and verify products through the REST API.

Contract used, and where it comes from (table, sources and open questions in
docs/platforms/connectif.md):

Verified (api-docs.connectif.cloud: /guides/authentication, /reference/products/patchsert-product,
/resources/product?v=latest; support.connectif.ai "Product import"):
- base ``https://api.connectif.cloud``; ``Authorization: apiKey <keyId>:<keySecret>``, the key
  copied from the UI as one string; products read/write scopes (a missing one: 403);
- ``PATCH /products/product-id/{id}`` patches or creates the product whose store identifier
  is ``{id}``; body: the writable ProductCreation fields (name, productDetailUrl, imageUrl,
  thumbnailUrl, description, unitPrice, unitPriceOriginal, unitPriceWithoutVAT,
  discountedAmount, discountedPercentage, availability, inStockUnits, brand, categories,
  tags, relatedExternalProductIds, rating, ratingCount, reviewCount, priority,
  isBlacklisted, publishedAt, customField1-3);
- ``availability`` written as ``instock`` / ``outofstock``; the read resource also has
  ``unverified`` and ``discontinued``; sub-categories joined by ``/`` ("Pc/Keyboards/Special");
- the product resource has the methods "get by Id", "get by store identifier" and "patch";
  no delete method; 429 "Requests rate limit reached";
- the product import requires productDetailUrl, productId, name, unitPrice for new products
  and separates list entries with ``|``.
Third-party [V-3p]: problem-JSON errors with ``detail`` and ``validationErrors[{path, reason}]``;
``X-RateLimit-Limit/-Remaining/-Reset`` (epoch seconds) response headers.

Chosen here where the public material is silent (all easy to correct in this module):
- ``GET /products/product-id/{id}`` reads a product by store identifier [I] (200 or 404);
  it serves verification, update_only (does the product exist?) and removals;
- success of the PATCH is 200 or 201 (204 accepted too) [U];
- removal (mirror, delete_only): activation option ``removal`` (the target model, ``target.py``):
  ``discontinue`` (default) patches
  ``availability: discontinued`` on a product that exists (writing discontinued is [U]); a
  product absent from Connectif is confirmed at once (nothing to remove). ``delete`` sends the
  hypothetical ``DELETE /products/product-id/{id}`` [U] (404: already absent); an account
  answering 405 stops the run with the way out;
- creation needs name, productDetailUrl and unitPrice [I]: an upsert record with one of them
  null is invalid; a null elsewhere is left out (Connectif keeps its value: ``nulls: omit``, the
  only choice accepted, as the effect of a null is undocumented);
- availability values are normalised (``in_stock``, ``In Stock``, ``out-of-stock`` → instock /
  outofstock); a text ``categories``/``tags``/``relatedExternalProductIds`` column is split on ``|``,
  so ``Women/Shoes/Boots`` is one category whose hierarchy Connectif reads from the ``/``;
- invalid before sending: empty or over-long ids, unknown availability, non-finite or negative
  prices, percentages over 100, non-integral counts, non-absolute or non-http(s) URLs,
  non-boolean isBlacklisted, unparseable publishedAt, lists where text goes;
- any other 4xx on a product is that product's rejection with Connectif's ``detail`` and
  ``validationErrors``; 401/403 (key or scope) and 404 on the PATCH (wrong base URL) stop the run;
- rate limit (the account's ``Pacer``, platforms/pacing.py; no client-side rate unless the destination
  sets ``requests_per_second``: the real numbers are unknown, 100/min is the cautious guess): the session retries
  429/5xx honouring ``Retry-After``; ``X-RateLimit-Remaining: 0`` holds every thread until
  ``X-RateLimit-Reset``; a request still answered 429 queues again up to 3 times;
- verification reads each product back (no documented batch read) and compares each field sent,
  normalised as sent: numbers within 1e-6, lists as multisets, dates as instants;
- bulk: an upsert run of at least ``bulk_import_min_records`` products asks the engine for requests of
  up to ``bulk_import_rows`` (``items_per_request``), and a request of more than one product goes as
  CSV imports (``imports.py``: submit, poll, per-row outcome from the error report); smaller runs,
  update_only and removals keep one PATCH per product.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import requests

from activation_pipeline.platforms.base import (
    ItemOutcome,
    NoAnswer,
    Op,
    PlatformError,
    Record,
    SyncTarget,
    Verification,
    answer_error,
    send_one_by_one,
)
from activation_pipeline.platforms.connectif.imports import ImportSettings, ProductImports
from activation_pipeline.platforms.connectif.product import (
    creation_problem,
    differences,
    error_message,
    field_problem,
    identifier_problem,
    product_body,
)
from activation_pipeline.platforms.connectif.target import ConnectifTarget
from activation_pipeline.platforms.http import PlatformSession, SessionClient
from activation_pipeline.platforms.pacing import RateHeaders
from activation_pipeline.platforms.resource import ensure_reachable

SUCCESS = (200, 201, 204)
# [V-3p] the reset is an epoch time; 1 s when the answer names none
RATE_HEADERS = RateHeaders("X-RateLimit-Remaining", "X-RateLimit-Reset", reset_is_epoch=True)


class ConnectifClient(SessionClient):
    """One Connectif account. Thread-safe: the engine sends ``concurrency`` requests at a time."""

    def __init__(self, session: PlatformSession, imports: ImportSettings | None = None):
        self.session = session  # paced by the account's pacer: unpaced by default, held by the headers and 429s
        self._imports = ProductImports(self._call, session.base_url, session.redact, imports or ImportSettings(0, 2, 1.0, 1800.0))

    # --- DestinationClient ---------------------------------------------------------------
    def prepare(self, target: SyncTarget[ConnectifTarget]) -> None:
        """Connectif's catalog always exists: only check that the API answers."""
        _ = target.platform  # parsed first: an unknown removal stops the run before anything is sent
        ensure_reachable(self.session.base_url)

    def invalid_reason(self, target: SyncTarget[ConnectifTarget], record: Record, op: Op) -> str | None:
        problem = identifier_problem(record.identifier)
        if problem or op == "delete":
            return problem
        for name, value in record.fields.items():
            problem = field_problem(name, value)
            if problem:
                return problem
        return creation_problem(record.fields) if op == "upsert" else None

    def items_per_request(self, target: SyncTarget[ConnectifTarget], op: Op, planned: int) -> int | None:
        """BulkSizing: an upsert run of at least ``bulk_import_min_records`` products goes in imports of up to ``bulk_import_rows``."""
        return self._imports.settings.rows_per_request(planned) if op == "upsert" else None

    def send(self, target: SyncTarget[ConnectifTarget], op: Op, records: Sequence[Record]) -> list[ItemOutcome]:
        """Several upserts: CSV imports (only ``items_per_request`` makes a request of more than one product);
        otherwise one request per product (two for update_only and removals: read, then write)."""
        catalog = target.platform

        def one_by_one(some: Sequence[Record]) -> list[ItemOutcome]:
            return send_one_by_one(some, lambda record: self._send_one(target.activation, catalog, op, record), self.session.redact)

        return self._imports.run(records, one_by_one) if op == "upsert" and len(records) > 1 else one_by_one(records)

    def verify(self, target: SyncTarget[ConnectifTarget], records: Sequence[Record]) -> list[Verification]:
        """Read each product back; a mismatch names every differing field with both values."""
        results = []
        for record in records:
            try:
                found = self._read(record.identifier)
            except NoAnswer as silence:
                results.append(Verification(record.key, False, f"not verified: {self.session.redact(str(silence))}", verified=False))
                continue
            if found is None:
                results.append(Verification(record.key, False, "not in Connectif"))
                continue
            diffs = differences(product_body(record.fields), found)
            results.append(Verification(record.key, not diffs, "; ".join(diffs)))
        return results

    # --- one product ---------------------------------------------------------------------
    def _send_one(self, activation: str, catalog: ConnectifTarget, op: Op, record: Record) -> ItemOutcome:
        if op == "delete":
            return self._remove(activation, catalog, record)
        if op == "update" and self._read(record.identifier) is None:
            return ItemOutcome(record.key, "skipped", f"no Connectif product {record.identifier}; update_only creates none")
        return self._patch(record, product_body(record.fields))

    def _patch(self, record: Record, body: dict[str, Any]) -> ItemOutcome:
        response = self._call("PATCH", _path(record.identifier), json=body)
        if response.status_code in SUCCESS:
            return ItemOutcome(record.key, "confirmed")
        if response.status_code in (401, 403) or response.status_code == 404:
            raise self._fail(response, f"PATCH product {record.identifier}")
        if 400 <= response.status_code < 500:
            return ItemOutcome(record.key, "rejected", error_message(response, self.session.redact))
        raise self._fail(response, f"PATCH product {record.identifier}")

    def _remove(self, activation: str, catalog: ConnectifTarget, record: Record) -> ItemOutcome:
        if catalog.removal == "delete":
            response = self._call("DELETE", _path(record.identifier))
            if response.status_code in SUCCESS:
                return ItemOutcome(record.key, "confirmed")
            if response.status_code == 404:
                return ItemOutcome(record.key, "confirmed", "not in Connectif: nothing to delete")
            if response.status_code == 405:
                raise PlatformError(
                    f"{activation}: this Connectif account has no product DELETE endpoint; "
                    "set `options: {removal: discontinue}` to mark removed products discontinued"
                )
            if response.status_code in (401, 403) or response.status_code >= 500:
                raise self._fail(response, f"DELETE product {record.identifier}")
            return ItemOutcome(record.key, "rejected", error_message(response, self.session.redact))
        if self._read(record.identifier) is None:
            return ItemOutcome(record.key, "confirmed", "not in Connectif: nothing to discontinue")
        return self._patch(record, {"availability": "discontinued"})

    def _read(self, identifier: str) -> dict[str, Any] | None:
        """The product with this store identifier, or None when Connectif has none."""
        response = self._call("GET", _path(identifier))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise self._fail(response, f"GET product {identifier}")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):  # an empty object is still a product (all its fields unset)
            raise PlatformError(f"GET product {identifier}: HTTP 200 without a JSON product")
        return body

    def _fail(self, response: requests.Response, what: str) -> PlatformError:
        hint = {
            401: " (is the API key right?)",
            403: " (does the API key have the products read/write scopes?)",
            404: " (is the base URL right?)",
        }.get(response.status_code, "")
        return answer_error(response.status_code, f"{what}: {error_message(response, self.session.redact)}{hint}")

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, path, items=1 if method in ("PATCH", "DELETE") else 0, **kwargs)


def _path(identifier: str) -> str:
    return f"/products/product-id/{quote(identifier, safe='')}"
