"""Emulator of Connectif's REST API for products, under ``/connectif/...``.

Real base URL: ``https://api.connectif.cloud``; here ``{sandbox}/connectif``. Credential: env
``SANDBOX_CONNECTIF_API_KEY`` (default ``sandbox-connectif-key:sandbox-connectif-secret``).
Products are stored per account (the key id). Stateless payload checks live in
:mod:`.connectif_validation`; this module holds routing, auth, storage and settings.

Endpoints: ``PATCH /products/product-id/{id}`` (patch or create) → the Product;
``GET /products/product-id/{id}`` and ``GET /products/{connectifId}`` → the Product or 404;
``DELETE /products/product-id/{id}`` only when ``allow_delete`` is on (hypothetical, see below);
``POST /imports/`` (the bulk CSV import), ``GET /imports/{id}`` and its error report: :mod:`.connectif_imports`.
Admin (no auth, ``?account=`` defaults to the configured key id): ``GET /_sandbox/connectif/products``
→ ``{"products": {productId: {...}}}``; ``POST`` it with a list of products (each with
``productId``) to pre-seed them; ``DELETE`` it to clear; ``POST /_sandbox/connectif/products/{id}``
with fields to overwrite a product "behind our back" (no validation: any JSON object);
``DELETE /_sandbox/connectif/products/{id}`` to remove one; ``GET /_sandbox/connectif/imports`` (each
import's id, status and counts); ``GET/POST /_sandbox/connectif/config``.

Verified (sources in docs/platforms/connectif.md, re-checked on
api-docs.connectif.cloud /reference/products/patchsert-product and /resources/product):

* ``Authorization: apiKey <keyId>:<keySecret>``; products read/write scopes; no key or a
  wrong one → 401, a key without the scope → 403 (/guides/authentication).
* ``PATCH /products/product-id/{id}`` takes the writable ProductCreation properties (names
  and JSON types as listed in :mod:`.connectif_validation`); ``availability`` is ``instock`` or
  ``outofstock`` on write (default ``instock``); the Product adds read-only ``id``,
  ``productId``, ``createdAt``, ``updatedAt``; availability reads ``instock``, ``outofstock``,
  ``unverified`` or ``discontinued``. The resource has get by id, get by store identifier
  and patch: no delete.
* 429 "Requests rate limit reached" (create-import reference).
* [V-3p] problem-JSON errors ``{status, title, detail, code?}``, ``validationErrors[{path,
  reason}]`` on 422, E0103 "URL from non authorized domain" with ``productsId`` and
  ``allowedDomains``; ``X-RateLimit-Limit/-Remaining/-Reset`` (epoch seconds) headers.

The emulator's own choices (configurable where marked [cfg] via ``/_sandbox/connectif/config``
or env ``SANDBOX_CONNECTIF_<NAME>``):

* creating requires ``name``, ``productDetailUrl`` and ``unitPrice`` (mandatory in the product
  import [V]; for PATCH [I]) → 422. A patch merges the sent fields; ``null`` leaves a field alone;
  an unknown property → 422 (strict, so a misspelt field cannot pass silently).
* [cfg] ``accept_discontinued`` (default true): availability ``discontinued`` accepted on write [U].
* [cfg] ``create_status`` 201 / ``update_status`` 200 [U]. Product ``id`` is a 24-hex id.
* [cfg] ``allow_delete`` (default false): ``DELETE /products/product-id/{id}`` → 204 (404 when
  absent); off, the path answers 405 with ``Allow: GET, PATCH`` (no such endpoint is documented).
* [cfg] ``import_seconds`` (0.2) an import stays processing, ``import_outcome`` (finished / error).
* [cfg] ``scopes`` (default products:read + products:write + imports:read + imports:write); [cfg] ``allowed_domains`` (default
  empty: any host) → 400 E0103 naming the product.
* ``Content-Type: application/json`` required on PATCH (415 otherwise); unknown route → 404.
* rate limiting uses the sandbox's shared limiter keyed ``connectif:<keyId>``, before auth;
  every answer carries ``X-RateLimit-Limit`` (the limiter's requests per second),
  ``-Remaining`` and ``-Reset`` (epoch second when a request is next allowed); a 429 adds
  ``Retry-After`` (>= 1 s).
* a ``reject_ids`` / ``reject_rate`` fault rejects a PATCH or DELETE of a product id it draws:
  400 ``code: E0101`` with ``productsId`` [emulator's choice of code].
"""

from __future__ import annotations

import json
import math
import os
import secrets
import sqlite3
from dataclasses import asdict
from typing import Any

from .connectif_imports import IMPORT_SCHEMA, ProductImports
from .connectif_validation import PRODUCT_FIELDS, ConnectifError, ConnectifSettings, domain_problem, product_id_problem, product_payload
from .emulator_kit import Clock, Emulator, authorization, compact_json, json_body, optional_json, retry_after_headers, same_secret, settings_from_env
from .platform_interface import HandlerContext, Request, Response
from .store import Store

DEFAULT_API_KEY = "sandbox-connectif-key:sandbox-connectif-secret"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS connectif_products (account TEXT NOT NULL, product_id TEXT NOT NULL, "
    "id TEXT NOT NULL, data_json TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, "
    "PRIMARY KEY (account, product_id))",
    "CREATE UNIQUE INDEX IF NOT EXISTS connectif_products_id ON connectif_products (account, id)",
)
_COLUMNS = "product_id, id, data_json, created_at, updated_at"


def _error(exc: ConnectifError, headers: dict[str, str] | None = None) -> Response:
    return Response(exc.status, exc.body(), dict(headers or {}))


def _describe(row: tuple[Any, ...]) -> dict[str, Any]:
    """The Product resource from ``(product_id, id, data_json, created_at, updated_at)``."""
    data = json.loads(row[2])
    product: dict[str, Any] = {"id": row[1], "productId": row[0]}
    product.update({name: data.get(name) for name in PRODUCT_FIELDS})
    product["availability"] = data.get("availability", "instock")
    product["createdAt"], product["updatedAt"] = row[3], row[4]
    return product


class ConnectifPlatform(Emulator):
    """Routes ``/connectif/products/...``; see the module docstring for the contract."""

    name = "connectif"
    schema = _SCHEMA + IMPORT_SCHEMA

    def __init__(self, store: Store, clock: Clock) -> None:
        super().__init__(store, clock)
        self._api_key = os.environ.get("SANDBOX_CONNECTIF_API_KEY", DEFAULT_API_KEY)
        self.account = self._api_key.split(":", 1)[0]
        self.settings = settings_from_env(ConnectifSettings, self.name)
        self.imports = ProductImports(store, clock, lambda: self.settings)

    # ----------------------------------------------------------------- plumbing

    def handle(self, req: Request, ctx: HandlerContext) -> Response:
        segs = req.segments
        key_id = self._key_id(req)
        limiter_key = f"connectif:{key_id or '-'}"
        retry_after = ctx.throttle(limiter_key, 1 if req.method in ("PATCH", "DELETE") else 0)
        if retry_after is not None:
            return self.fault_response(429, retry_after)
        self.imports.settle(self._apply_row, ctx)  # imports whose time has come are applied before anything reads
        try:
            resp = self._route(req, ctx, segs)
        except ConnectifError as exc:
            resp = _error(exc)
        resp.headers.update(self._rate_headers(ctx, limiter_key))
        return resp

    def _route(self, req: Request, ctx: HandlerContext, segs: list[str]) -> Response:
        if len(segs) == 3 and segs[:2] == ["products", "product-id"]:
            allowed = ("GET", "PATCH", "DELETE") if self.settings.allow_delete else ("GET", "PATCH")
            if req.method not in allowed:
                return _error(ConnectifError(405, f"{req.method} is not allowed on {req.path}"), {"Allow": ", ".join(allowed)})
            account = self._authenticate(req, "products:write" if req.method != "GET" else "products:read")
            problem = product_id_problem(segs[2])
            if problem:
                raise ConnectifError(400, problem)
            handler = {"GET": self._get, "PATCH": self._patch, "DELETE": self._delete}[req.method]
            return handler(req, ctx, account, segs[2])
        if len(segs) == 2 and segs[0] == "products":
            if req.method != "GET":
                return _error(ConnectifError(405, f"{req.method} is not allowed on {req.path}"), {"Allow": "GET"})
            account = self._authenticate(req, "products:read")
            return self._get_by_connectif_id(account, segs[1])
        if segs and segs[0] == "imports" and len(segs) <= 3:
            return self._route_imports(req, ctx, segs)
        raise ConnectifError(404, f"Unknown route {req.method} {req.path}")

    def _route_imports(self, req: Request, ctx: HandlerContext, segs: list[str]) -> Response:
        allowed = "POST" if len(segs) == 1 else "GET"
        if req.method != allowed or (len(segs) == 3 and segs[2] != "error-report"):
            return _error(ConnectifError(405, f"{req.method} is not allowed on {req.path}"), {"Allow": allowed})
        account = self._authenticate(req, "imports:write" if len(segs) == 1 else "imports:read")
        if len(segs) == 1:
            return self.imports.create(req, ctx, account)
        return self.imports.status(req, account, segs[1]) if len(segs) == 2 else self.imports.error_report(account, segs[1])

    def fault_response(self, status: int, retry_after: int | None) -> Response:
        detail = "Requests rate limit reached" if status == 429 else f"Injected HTTP {status}"
        headers = retry_after_headers(retry_after)
        if status == 429:
            headers.update({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(math.ceil(self.clock.time() + max(1, retry_after or 1)))})
        return _error(ConnectifError(status, detail), headers)

    def reset(self) -> None:
        super().reset()
        self.settings = settings_from_env(ConnectifSettings, self.name)

    def _rate_headers(self, ctx: HandlerContext, key: str) -> dict[str, str]:
        limiter = ctx.limiter
        left = limiter.remaining(key)
        if left is None:
            return {}
        reset = self.clock.time() + (0 if left > 0 else 1.0 / limiter.requests_per_second)
        return {
            "X-RateLimit-Limit": str(math.ceil(limiter.requests_per_second)),
            "X-RateLimit-Remaining": str(left),
            "X-RateLimit-Reset": str(math.ceil(reset)),
        }

    @staticmethod
    def _key_id(req: Request) -> str | None:
        scheme, credential = authorization(req)
        if scheme != "apikey" or ":" not in credential:
            return None
        return credential.split(":", 1)[0]

    def _authenticate(self, req: Request, scope: str) -> str:
        scheme, credential = authorization(req)
        if scheme != "apikey" or not credential:
            raise ConnectifError(401, "Missing or malformed Authorization header (expected: apiKey <keyId>:<keySecret>)")
        if not same_secret(credential, self._api_key):
            raise ConnectifError(401, "Invalid API key")
        if scope not in self.settings.scopes:
            raise ConnectifError(403, f"The API key lacks the permission {scope}")
        return self.account

    @staticmethod
    def _json_body(req: Request) -> Any:
        return json_body(
            req,
            lambda why: ConnectifError(400, f"Request body is not valid JSON: {why}"),
            lambda: ConnectifError(415, "Content-Type must be application/json"),
        )

    # ----------------------------------------------------------------- endpoints

    def _patch(self, req: Request, ctx: HandlerContext, account: str, product_id: str) -> Response:
        ctx.items_received = 1
        body = self._json_body(req)
        self._refuse_if_faulted(ctx, product_id)
        with self.store.transaction() as db:
            row = self._row(db, account, product_id)
            fields = product_payload(body, creating=row is None, settings=self.settings)
            bad_url = domain_problem(fields, self.settings)
            if bad_url is not None:
                raise ConnectifError(
                    400,
                    f"Product {product_id} had URL from non authorized domain.",
                    code="E0103",
                    extra={"productsId": [product_id], "allowedDomains": self.settings.allowed_domains},
                )
            product = self._upsert(db, account, product_id, fields, row)
        ctx.items_applied += 1
        status = self.settings.create_status if row is None else self.settings.update_status
        return Response(status, None if status == 204 else product)

    def _get(self, req: Request, ctx: HandlerContext, account: str, product_id: str) -> Response:
        with self.store.transaction() as db:
            row = self._row(db, account, product_id)
        if row is None:
            raise ConnectifError(404, f"Product with store identifier {product_id} not found")
        return Response(200, _describe(row))

    def _get_by_connectif_id(self, account: str, connectif_id: str) -> Response:
        with self.store.transaction() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM connectif_products WHERE account=? AND id=?", (account, connectif_id)).fetchone()
        if row is None:
            raise ConnectifError(404, f"Product {connectif_id} not found")
        return Response(200, _describe(row))

    def _delete(self, req: Request, ctx: HandlerContext, account: str, product_id: str) -> Response:
        ctx.items_received = 1
        self._refuse_if_faulted(ctx, product_id)
        with self.store.transaction() as db:
            gone = db.execute("DELETE FROM connectif_products WHERE account=? AND product_id=?", (account, product_id)).rowcount
        if not gone:
            raise ConnectifError(404, f"Product with store identifier {product_id} not found")
        ctx.items_applied += 1
        return Response(204)

    @staticmethod
    def _refuse_if_faulted(ctx: HandlerContext, product_id: str) -> None:
        kind = ctx.rejection(product_id)
        if kind:
            raise ConnectifError(
                400, f"Product {product_id} rejected by the platform (sandbox fault {kind})", code="E0101", extra={"productsId": [product_id]}
            )

    def _apply_row(self, db: sqlite3.Connection, account: str, product_id: str, fields: dict[str, Any], mode: str) -> str | None:
        """One row of an import, validated as a PATCH would be; why it was refused, or None once applied."""
        row = self._row(db, account, product_id)
        if row is not None and mode == "keep":
            return None
        if row is not None and mode == "empty":
            held = json.loads(row[2])
            fields = {name: value for name, value in fields.items() if held.get(name) in (None, "", [])}
        try:
            fields = product_payload(fields, creating=row is None, settings=self.settings)
        except ConnectifError as exc:
            return "; ".join(f"{e['path']}: {e['reason']}" for e in exc.validation_errors) or exc.detail
        if domain_problem(fields, self.settings) is not None:
            return f"E0103: Product {product_id} had URL from non authorized domain (allowed: {', '.join(self.settings.allowed_domains)})"
        self._upsert(db, account, product_id, fields, row)
        return None

    # ----------------------------------------------------------------- storage

    @staticmethod
    def _row(db: sqlite3.Connection, account: str, product_id: str) -> tuple[Any, ...] | None:
        return db.execute(f"SELECT {_COLUMNS} FROM connectif_products WHERE account=? AND product_id=?", (account, product_id)).fetchone()

    def _upsert(self, db: sqlite3.Connection, account: str, product_id: str, fields: dict[str, Any], row: tuple[Any, ...] | None) -> dict[str, Any]:
        data = json.loads(row[2]) if row else {}
        data.update(fields)
        now, encoded = self.clock.iso(), compact_json(data)
        if row is None:
            connectif_id = secrets.token_hex(12)
            db.execute("INSERT INTO connectif_products VALUES (?,?,?,?,?,?)", (account, product_id, connectif_id, encoded, now, now))
            row = (product_id, connectif_id, encoded, now, now)
        else:
            db.execute(
                "UPDATE connectif_products SET data_json=?, updated_at=? WHERE account=? AND product_id=?", (encoded, now, account, product_id)
            )
            row = (product_id, row[1], encoded, row[3], now)
        return _describe(row)

    # ----------------------------------------------------------------- admin (no auth)

    def admin(self, req: Request, segs: list[str]) -> Response:
        account = req.query.get("account", self.account)
        self.imports.settle(self._apply_row)
        try:
            spec = optional_json(req)
        except ValueError as exc:
            return _error(ConnectifError(400, f"Request body is not valid JSON: {exc}"))
        try:
            if segs == ["products"]:
                return self._admin_products(req.method, account, spec)
            if len(segs) == 2 and segs[0] == "products":
                return self._admin_product(req.method, account, segs[1], spec)
            if segs == ["imports"] and req.method == "GET":
                return Response(200, self.imports.listing(account))
            if segs == ["config"] and req.method in ("GET", "POST"):
                if req.method == "POST":
                    self.settings.update(spec)
                return Response(200, asdict(self.settings))
        except ValueError as exc:
            return _error(ConnectifError(400, str(exc)))
        return _error(ConnectifError(404, f"No connectif admin route for {req.method} {req.path}"))

    def _admin_products(self, method: str, account: str, spec: Any) -> Response:
        if method == "GET":
            return Response(200, self._all_products(account))
        if method == "DELETE":
            with self.store.transaction() as db:
                db.execute("DELETE FROM connectif_products WHERE account=?", (account,))
            return Response(200, {"products": {}})
        if method == "POST":
            if not isinstance(spec, list) or not all(isinstance(p, dict) and isinstance(p.get("productId"), str) for p in spec):
                raise ValueError('body must be a list of products, each with a "productId"')
            with self.store.transaction() as db:
                for index, item in enumerate(spec):
                    product_id = item["productId"]
                    fields = {k: v for k, v in item.items() if k != "productId"}
                    row = self._row(db, account, product_id)
                    try:
                        fields = product_payload(fields, creating=row is None, settings=self.settings)
                    except ConnectifError as exc:
                        raise ValueError(f"products[{index}]: {exc.validation_errors or exc.detail}") from None
                    self._upsert(db, account, product_id, fields, row)
            return Response(201, self._all_products(account))
        raise ValueError(f"{method} is not allowed on /_sandbox/connectif/products")

    def _admin_product(self, method: str, account: str, product_id: str, spec: Any) -> Response:
        with self.store.transaction() as db:
            row = self._row(db, account, product_id)
            if row is None:
                return _error(ConnectifError(404, f"Product with store identifier {product_id} not found"))
            if method == "GET":
                return Response(200, _describe(row))
            if method == "DELETE":
                db.execute("DELETE FROM connectif_products WHERE account=? AND product_id=?", (account, product_id))
                return Response(200, {"deleted": product_id})
            if method == "POST":  # behind our back: any JSON object, no validation (e.g. a merchant's edit in the UI)
                if not isinstance(spec, dict):
                    raise ValueError("body must be a JSON object of product fields to overwrite")
                return Response(200, self._upsert(db, account, product_id, spec, row))
        raise ValueError(f"{method} is not allowed on /_sandbox/connectif/products/{product_id}")

    def _all_products(self, account: str) -> dict[str, Any]:
        with self.store.transaction() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM connectif_products WHERE account=? ORDER BY product_id", (account,)).fetchall()
        return {"products": {row[0]: _describe(row) for row in rows}}
