"""Emulator of Yotpo's Core API v3 customers ("SMS & Email"), under ``/yotpo/core/v3/stores/{store_id}/...``.

Real base URL: ``https://api.yotpo.com/core/v3/stores/{store_id}``; here
``{sandbox}/yotpo/core/v3/stores/{store_id}``. Credentials: env
``SANDBOX_YOTPO_STORE_ID`` (default ``sandbox-store``) and ``SANDBOX_YOTPO_SECRET``
(default ``sandbox-yotpo-secret``). Stateless payload checks live in
:mod:`.yotpo_validation`; this module holds routing, auth, storage and settings.

Endpoints: ``POST /access_tokens`` ``{"secret"}`` -> 200 ``{"access_token"}``;
``PATCH /customers`` ``{"customer": {...}}`` (create or update one customer);
``GET /customers?external_ids=&emails=&phone_numbers=&limit=&page_info=``
-> 200 ``{"customers": [...], "pagination": {"next_page_info": str|null}}``.
Admin (no auth, ``?store=`` defaults to the configured store): ``GET /_sandbox/yotpo/customers``
-> ``{"customers": {external_id: {...}}}`` (+ ``without_external_id`` if any); ``POST`` it with a
list of customers (or ``{"store", "customers"}``) to pre-create them, ``DELETE`` to clear;
``GET/POST /_sandbox/yotpo/config``; ``POST /_sandbox/yotpo/tokens/expire``.

Verified (sources in docs/platforms/yotpo.md, re-checked):

* token: ``POST .../access_tokens`` with ``{"secret"}`` returns ``{"access_token"}``;
  send it as ``X-Yotpo-Token``; tokens expire after 14 days; "If a request fails to
  authenticate, a HTTP 401 response code will be returned" (core-api.yotpo.com
  /reference/authentication, /v1.0/reference/about-authentication; magento2-module-core
  ``Model/Api/Token.php``, ``Request.php``; ethyca/fides Yotpo test fixtures).
* ``PATCH .../customers`` with the ``"customer"`` wrapper (magento2-module-messaging
  ``Model/Sync/Customers/Processor.php``, ``Data.php``; fides ``yotpo_reviews_config.yml``).
  Identity: ``external_id``; without it exactly one of ``email`` / ``phone_number``
  (both rejected). Phone E.164. ``gender`` F/M/Other; ``account_status``
  enabled/disabled/invited/declined; ISO 639-1 language; 3-letter ISO 4217 currency;
  ``tags`` a comma-separated string; ISO 8601 dates; "To skip a parameter, enter null or
  exclude it" (core-api.yotpo.com /reference/create-customer, /reference/customers).
  Custom properties: names ``[a-z0-9_]`` <= 32 chars, values <= 255 chars, primitives
  only, null not supported, ``""`` removes a property (/reference/working-with-custom-properties).
  Max 255 chars for external_id, names, email, phone (/reference/customer-checkout-info).
  No bulk customer endpoint exists.
* ``GET .../customers?external_ids=`` -> ``{"customers": [...]}`` with ``yotpo_id`` per
  entity (fides config; magento ``Model/Api/ErrorHandler.php``); cursor pagination with
  ``limit`` (<= 100) and ``page_info``, which may only be combined with ``limit``
  (/reference/guidelines-and-conventions). Customer fields returned include
  ``address`` (with ``province_code``, ``phone_number``) and ``custom_properties``
  (fides ``yotpo_reviews_dataset.yml``).
* rate limit: 5 requests/second per store, 429 beyond; ``RateLimit-Remaining`` on
  responses and ``RateLimit-Reset`` (seconds to wait) when limited (develop.yotpo.com and
  core-api.yotpo.com guidelines). Success codes the official module accepts: 200/201/204.

The emulator's own choices (unverified; configurable where marked [cfg] via
``GET/POST /_sandbox/yotpo/config`` or env ``SANDBOX_YOTPO_<NAME>``):

* token response status 200; a wrong secret or a store id other than the configured one
  -> 401; a missing ``secret`` -> 400. Tokens are bound to their store and kept hashed in
  SQLite. [cfg] ``token_ttl_seconds`` (default 1209600 = 14 days). A token used on
  another store's path -> 401 (never 403). Only the header form is accepted (the
  ``?access_token=`` form belongs to the App Developer API).
* ``Content-Type: application/json`` is required on POST/PATCH (the docs require it),
  else 415. Wrong method on a known path -> 405 with ``Allow``; unknown path -> 404.
* PATCH success: [cfg] ``patch_status`` 200 (or 201/204), body ``{"customer": {...}}``
  (the stored customer; empty for 204). Field errors: [cfg] ``validation_status`` 400
  (or 422); malformed JSON / non-object body always 400. Error bodies:
  ``{"errors": [{"code", "message", "field"?}]}``, ``field`` naming e.g. ``customer.email``.
* strictness: [cfg] ``unknown_fields`` ``reject`` (default; unknown top-level, customer or
  address keys -> 400 naming them) or ``ignore``; [cfg] ``require_external_id`` false
  (the documented email/phone-only identity is accepted). Wrong JSON types are rejected
  (e.g. a numeric ``external_id``, an array ``tags``, a string ``"true"`` boolean).
  Email: ``local@domain.tld`` (a dot in the domain). ``/_sandbox/reset`` also drops
  tokens and restores the settings from env.
* upsert: by external_id; else by email (case-insensitive, oldest match); else by phone.
  Merge semantics: sent non-null fields overwrite, ``address`` keys merge,
  ``custom_properties`` merge per key. Email/phone are not unique across customers.
  ``phone_number`` is still stored although the docs mark it deprecated for this endpoint.
* writes are visible immediately (the real API is eventually consistent, ~60 s).
* GET filters: ``external_ids``, ``emails``, ``phone_numbers`` (comma-separated; the
  singular ``external_id``/``email``/``phone_number`` are aliases), combined with AND;
  emails match case-insensitively; an unknown query parameter -> 400 (so a misspelt
  filter cannot silently list everyone); default ``limit`` 100; the next cursor is in
  ``pagination.next_page_info``. Each customer carries every known field (null when
  unset), ``yotpo_id``, ``created_at`` and ``updated_at``.
* rate limiting uses the sandbox's shared limiter (``requests_per_second``, default 5)
  keyed ``yotpo:<store_id>``; every request to a store path counts, access_tokens
  included, before auth. 429 carries ``Retry-After`` = ``RateLimit-Reset`` (>= 1 s) and
  ``RateLimit-Remaining: 0``.
* a ``reject_ids`` / ``reject_rate`` fault rejects a PATCH whose identity (external_id,
  else email, else phone) it draws, with ``validation_status`` and code ``customer_rejected``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from .emulator_kit import Clock, Emulator, IssuedTokens, compact_json, json_body, optional_json, retry_after_headers, same_secret, settings_from_env
from .platform_interface import HandlerContext, Request, Response
from .store import Store
from .yotpo_validation import CUSTOMER_FIELDS, YotpoError, YotpoSettings, customer_filters, customer_payload, invalid, token_secret

DEFAULT_STORE_ID = "sandbox-store"
DEFAULT_SECRET = "sandbox-yotpo-secret"
_STATUS_ERRORS = {
    400: ("bad_request", "The request is malformed"),
    401: ("unauthorized", "Invalid or expired access token"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    429: ("too_many_requests", "Too Many Requests"),
    500: ("internal_server_error", "Internal Server Error"),
    503: ("service_unavailable", "Service Unavailable"),
    504: ("gateway_timeout", "Gateway Timeout"),
}
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS yotpo_customers (yotpo_id INTEGER PRIMARY KEY AUTOINCREMENT, "
    "store TEXT NOT NULL, external_id TEXT, email TEXT, phone_number TEXT, data_json TEXT NOT NULL, "
    "created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS yotpo_customers_external_id ON yotpo_customers (store, external_id) WHERE external_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS yotpo_customers_email ON yotpo_customers (store, lower(email))",
    "CREATE INDEX IF NOT EXISTS yotpo_customers_phone ON yotpo_customers (store, phone_number)",
)
_COLUMNS = "yotpo_id, external_id, data_json, created_at, updated_at"


def _error(exc: YotpoError, headers: dict[str, str] | None = None) -> Response:
    entry: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.field is not None:
        entry["field"] = exc.field
    return Response(exc.status, {"errors": [entry]}, dict(headers or {}))


class YotpoPlatform(Emulator):
    """Routes ``/yotpo/core/v3/stores/{store_id}/...``; see the module docstring for the contract."""

    name = "yotpo"
    schema = _SCHEMA

    def __init__(self, store: Store, clock: Clock) -> None:
        super().__init__(store, clock)
        self.store_id = os.environ.get("SANDBOX_YOTPO_STORE_ID", DEFAULT_STORE_ID)
        self._secret = os.environ.get("SANDBOX_YOTPO_SECRET", DEFAULT_SECRET)
        self.settings = settings_from_env(YotpoSettings, self.name)
        self.tokens = IssuedTokens(store, self.name, clock)

    # ----------------------------------------------------------------- plumbing

    def handle(self, req: Request, ctx: HandlerContext) -> Response:
        segs = req.segments
        if len(segs) != 5 or segs[:3] != ["core", "v3", "stores"] or segs[4] not in _ROUTES:
            return _error(YotpoError(404, "not_found", f"Unknown route {req.method} {req.path}"))
        store_id, methods = segs[3], _ROUTES[segs[4]]
        if req.method not in methods:
            return _error(YotpoError(405, "method_not_allowed", f"{req.method} is not allowed on {req.path}"), {"Allow": ", ".join(methods)})
        key = f"yotpo:{store_id}"
        retry_after = ctx.throttle(key)
        if retry_after is not None:
            return self.fault_response(429, retry_after)
        try:
            resp = methods[req.method](self, req, ctx, store_id)
        except YotpoError as exc:
            resp = _error(exc)
        left = ctx.limiter.remaining(key)
        if left is not None:
            resp.headers.setdefault("RateLimit-Remaining", str(left))
        return resp

    def fault_response(self, status: int, retry_after: int | None) -> Response:
        code, message = _STATUS_ERRORS.get(status, ("sandbox_fault", f"Injected HTTP {status}"))
        headers = retry_after_headers(retry_after)
        if status == 429:
            headers.update({"RateLimit-Remaining": "0", "RateLimit-Reset": str(max(1, retry_after or 1))})
        return _error(YotpoError(status, code, message), headers)

    def reset(self) -> None:
        super().reset()
        self.tokens.forget_all()
        self.settings = settings_from_env(YotpoSettings, self.name)

    @staticmethod
    def _json_body(req: Request) -> Any:
        return json_body(
            req,
            lambda why: YotpoError(400, "invalid_json", f"Request body is not valid JSON: {why}"),
            lambda: YotpoError(415, "unsupported_media_type", "Content-Type must be application/json"),
        )

    def _authenticate(self, req: Request, store_id: str) -> None:
        token = (req.header("X-Yotpo-Token") or "").strip()
        if not token:
            raise YotpoError(401, "unauthorized", "Missing X-Yotpo-Token header")
        issued = self.tokens.find(token)
        if issued is None or issued.owner != store_id or issued.expired:
            raise YotpoError(401, "unauthorized", "Invalid or expired access token")

    # ----------------------------------------------------------------- endpoints

    def _access_tokens(self, req: Request, ctx: HandlerContext, store_id: str) -> Response:
        secret = token_secret(self._json_body(req))
        store_ok = same_secret(store_id, self.store_id)
        if not (same_secret(secret, self._secret) and store_ok):
            raise YotpoError(401, "unauthorized", "Invalid store id or secret")
        return Response(200, {"access_token": self.tokens.issue(self.settings.token_ttl_seconds, store_id)})

    def _validate(self, body: Any) -> dict[str, Any]:
        try:
            return customer_payload(body, self.settings.require_external_id, self.settings.unknown_fields == "reject")
        except YotpoError as exc:
            if exc.code == "invalid_field":
                exc.status = self.settings.validation_status
            raise

    def _patch_customer(self, req: Request, ctx: HandlerContext, store_id: str) -> Response:
        self._authenticate(req, store_id)
        ctx.items_received = 1
        fields = self._validate(self._json_body(req))
        identity = fields.get("external_id") or fields.get("email") or fields.get("phone_number")
        kind = ctx.rejection(identity)
        if kind:
            field = "customer." + next(k for k in ("external_id", "email", "phone_number") if k in fields)
            raise YotpoError(
                self.settings.validation_status,
                "customer_rejected",
                f"customer {json.dumps(identity)} rejected by the platform (sandbox fault {kind})",
                field,
            )
        with self.store.transaction() as db:
            customer = self._upsert(db, store_id, fields)
        ctx.items_applied = 1
        status = self.settings.patch_status
        return Response(status, None if status == 204 else {"customer": customer})

    def _get_customers(self, req: Request, ctx: HandlerContext, store_id: str) -> Response:
        self._authenticate(req, store_id)
        filters, limit, page_info = customer_filters(req.query)
        after = 0
        if page_info is not None:
            after, filters = self._decode_cursor(page_info)
        sql, args = f"SELECT {_COLUMNS} FROM yotpo_customers WHERE store=? AND yotpo_id>?", [store_id, after]
        for column, values in sorted(filters.items()):
            expr = "lower(email)" if column == "email" else column
            sql += f" AND {expr} IN ({','.join('?' * len(values))})"
            args += [v.lower() for v in values] if column == "email" else values
        with self.store.transaction() as db:
            rows = db.execute(sql + " ORDER BY yotpo_id LIMIT ?", (*args, limit + 1)).fetchall()
        page = [self._describe(row) for row in rows[:limit]]
        next_info = None
        if len(rows) > limit:
            raw = json.dumps({"after": page[-1]["yotpo_id"], "filters": filters}, separators=(",", ":"))
            next_info = base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")
        return Response(200, {"customers": page, "pagination": {"next_page_info": next_info}})

    @staticmethod
    def _decode_cursor(page_info: str) -> tuple[int, dict[str, list[str]]]:
        try:
            decoded = json.loads(base64.urlsafe_b64decode(page_info.encode() + b"=" * (-len(page_info) % 4)))
            after, filters = decoded["after"], decoded["filters"]
            if (
                not isinstance(after, int)
                or not isinstance(filters, dict)
                or not all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in filters.values())
                or not set(filters) <= {"external_id", "email", "phone_number"}
            ):
                raise ValueError
        except (binascii.Error, UnicodeDecodeError, ValueError, KeyError, TypeError):
            raise invalid("page_info", "is not a valid cursor") from None
        return after, filters

    # ----------------------------------------------------------------- storage

    @staticmethod
    def _describe(row: tuple[Any, ...]) -> dict[str, Any]:
        """Public shape of a customer from ``(yotpo_id, external_id, data_json, created_at, updated_at)``."""
        data = json.loads(row[2])
        out: dict[str, Any] = {"yotpo_id": row[0]}
        out.update({name: data.get(name) for name in CUSTOMER_FIELDS})
        out["custom_properties"] = data.get("custom_properties") or {}
        out["created_at"], out["updated_at"] = row[3], row[4]
        return out

    def _upsert(self, db: sqlite3.Connection, store_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Create or update one validated customer; return its public shape."""
        if "external_id" in fields:
            where, arg = "external_id=?", fields["external_id"]
        elif "email" in fields:
            where, arg = "lower(email)=?", fields["email"].lower()
        else:
            where, arg = "phone_number=?", fields["phone_number"]
        row = db.execute(f"SELECT {_COLUMNS} FROM yotpo_customers WHERE store=? AND {where} ORDER BY yotpo_id LIMIT 1", (store_id, arg)).fetchone()
        data: dict[str, Any] = json.loads(row[2]) if row else {}
        for key, value in fields.items():
            if key == "custom_properties":
                props = dict(data.get("custom_properties") or {})
                for name, prop in value.items():
                    if prop == "":
                        props.pop(name, None)
                    else:
                        props[name] = prop
                data[key] = props
            elif key == "address":
                data[key] = {**(data.get("address") or {}), **value}
            else:
                data[key] = value
        now, encoded = self.clock.iso(), compact_json(data)
        values = (data.get("external_id"), data.get("email"), data.get("phone_number"), encoded, now)
        if row is None:
            cursor = db.execute(
                "INSERT INTO yotpo_customers (store, external_id, email, phone_number, data_json, created_at, updated_at) VALUES (?,?,?,?,?,?,?)",
                (store_id, *values[:4], now, now),
            )
            row = (cursor.lastrowid, data.get("external_id"), encoded, now, now)
        else:
            db.execute(
                "UPDATE yotpo_customers SET external_id=?, email=?, phone_number=?, data_json=?, updated_at=? WHERE yotpo_id=?", (*values, row[0])
            )
            row = (row[0], data.get("external_id"), encoded, row[3], now)
        return self._describe(row)

    # ----------------------------------------------------------------- admin (no auth)

    def admin(self, req: Request, segs: list[str]) -> Response:
        route = (req.method, "/".join(segs))
        store_id = req.query.get("store", self.store_id)
        try:
            spec = optional_json(req)
        except ValueError as exc:
            return _error(YotpoError(400, "invalid_json", str(exc)))
        try:
            if route == ("GET", "customers"):
                return Response(200, self._admin_customers(store_id))
            if route == ("POST", "customers"):
                if isinstance(spec, dict):
                    store_id = spec.get("store", store_id)
                    spec = spec.get("customers")
                if not isinstance(spec, list) or not isinstance(store_id, str) or not store_id:
                    raise ValueError('body must be a list of customers or {"store"?, "customers": [...]}')
                validated = []
                for index, item in enumerate(spec):
                    try:
                        validated.append(self._validate({"customer": item}))
                    except YotpoError as exc:
                        raise ValueError(f"customers[{index}]: {exc.message}") from None
                with self.store.transaction() as db:
                    for fields in validated:
                        self._upsert(db, store_id, fields)
                return Response(201, self._admin_customers(store_id))
            if route == ("DELETE", "customers"):
                with self.store.transaction() as db:
                    db.execute("DELETE FROM yotpo_customers WHERE store=?", (store_id,))
                return Response(200, {"customers": {}})
            if route in (("GET", "config"), ("POST", "config")):
                if req.method == "POST":
                    self.settings.update(spec)
                return Response(200, asdict(self.settings))
            if route == ("POST", "tokens/expire"):
                return Response(200, {"expired": self.tokens.expire_all()})
        except ValueError as exc:
            return _error(YotpoError(400, "invalid_parameter", str(exc)))
        return _error(YotpoError(404, "not_found", f"No yotpo admin route for {req.method} {req.path}"))

    def _admin_customers(self, store_id: str) -> dict[str, Any]:
        with self.store.transaction() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM yotpo_customers WHERE store=? ORDER BY yotpo_id", (store_id,)).fetchall()
        out: dict[str, Any] = {"customers": {r[1]: self._describe(r) for r in rows if r[1] is not None}}
        anonymous = [self._describe(r) for r in rows if r[1] is None]
        if anonymous:
            out["without_external_id"] = anonymous
        return out


_ROUTES: dict[str, dict[str, Callable[[YotpoPlatform, Request, HandlerContext, str], Response]]] = {
    "access_tokens": {"POST": YotpoPlatform._access_tokens},
    "customers": {"PATCH": YotpoPlatform._patch_customer, "GET": YotpoPlatform._get_customers},
}
