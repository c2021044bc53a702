"""Emulator of Synerise's profiles, catalogs and transactions APIs, under ``/synerise/...``.

Real hosts: ``https://api.synerise.com`` (``/v4/...``, ``/catalogs/...``); here
``{sandbox}/synerise``. Credential: env ``SANDBOX_SYNERISE_API_KEY`` (default
``sandbox-synerise-api-key``). Stateless body checks and the batch intake live in
:mod:`.synerise_validation`, the catalogs API in :mod:`.synerise_catalogs`.

Endpoints: ``POST /v4/auth/login/profile`` (and ``/uauth/v2/auth/login/profile``)
``{"apiKey"}`` -> 200 ``{"token"}``; ``POST /v4/clients/batch`` (202);
``POST /v4/transactions`` and ``/v4/transactions/batch`` (202); ``GET|POST /catalogs/bags``
(``?searchBy=``), ``GET /catalogs/bags/{id}``, ``POST /catalogs/bags/{id}/items/batch`` (200
``true``), ``GET /catalogs/bags/{id}/items``, ``GET /catalogs/bags/{id}/items/itemKey/{key}``.
Admin (no auth) under ``/_sandbox/synerise/``: ``GET|POST|DELETE profiles``, ``GET catalogs``,
``POST catalogs/{name}/items`` (``{itemKey: value}``, behind the client's back),
``DELETE catalogs/{name}``, ``GET transactions``, ``GET events`` (with ``counts`` per action),
``GET|POST config``, ``POST tokens/expire``.

Verified (sources in docs/platforms/synerise.md, re-checked in
Synerise/php-sdk and Synerise/magento2-integration):

* login body ``{"apiKey"}`` -> ``{"token"}``; Bearer token; expired -> 401 ``Token expired.``;
  Basic ``<workspace guid>:<api key>`` is also accepted (php-sdk ``BasicAuthenticationProvider``).
* ``clients/batch``: at most 1000 profiles and 1 MB; 202 without body; profile fields
  ``customId, email, uuid, phone, firstName, lastName, displayName, avatarUrl, birthDate
  (yyyy-mm-dd > 1900-01-01), company, city, address, zipCode, province, countryCode, sex
  (FEMALE|MALE|NOT_SPECIFIED|OTHER), agreements, tags, attributes``; one of customId/email/uuid
  needed; null deletes an attribute or resets a native field; reserved names in
  ``attributes`` are ignored.
* transactions: the server derives one ``transaction.charge`` and one ``product.buy`` per
  product; ``revenue`` is not computed; one currency; amounts >= 0, ``discountAmount`` > 0;
  ``source`` enum; a repeated ``eventSalt`` overwrites, a repeated ``orderId`` alone duplicates.
* catalogs: bags with numeric ids, ``searchBy`` name; items upserted by ``itemKey``; ``value``
  returned as a JSON string; deleting an item in the plugin's way is ``deleted: 1``.
* v4 error body ``{"timestamp", "status", "error", "message", "path", "errors": [{"code",
  "field", "message", "rejectedValue"}]}``; 207 = partially accepted.

The emulator's own choices (configurable where marked [cfg], ``GET/POST
/_sandbox/synerise/config`` or env ``SANDBOX_SYNERISE_<NAME>``):

* [cfg] ``token_ttl_seconds`` 3600 (the Help Center's 60 minutes); [cfg]
  ``require_api_version`` false (lenient, 4.4 assumed); [cfg] ``max_items`` 1000 and
  ``max_body_bytes`` 1000000 on every batch endpoint, catalog items included (their limit is
  undocumented): more items -> 400, a larger body -> 413.
* a batch with invalid elements is refused whole (400) and names every one (``[i].field``);
  a ``reject_ids`` / ``reject_rate`` fault rejects just the drawn elements (customId, else
  email, for profiles; itemKey; orderId) with 207 and their errors, the rest are applied.
* profiles upsert by customId > email (case-insensitive) > uuid; native fields overwrite,
  ``attributes`` and ``agreements`` merge per key. Catalog items are replaced whole on upsert.
  Catalog names must be letters and digits and are unique (409 on a duplicate).
* writes are visible at once (the real API queues them behind the 202).
* rate limiting: the sandbox's shared limiter, key ``synerise``, every request counts
  (logins included, before auth); 429 with ``Retry-After``.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from .emulator_kit import (
    Clock,
    Emulator,
    IssuedTokens,
    authorization,
    basic_credentials,
    compact_json,
    optional_json,
    retry_after_headers,
    same_secret,
    settings_from_env,
)
from .platform_interface import HandlerContext, Request, Response
from .store import Store
from .synerise_catalogs import CATALOG_SCHEMA, Handler, SyneriseCatalogs
from .synerise_validation import RESERVED_ATTRIBUTES, SyneriseError, SyneriseSettings, batch_answer, profile, read_batch, read_json, transaction

DEFAULT_API_KEY = "sandbox-synerise-api-key"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS synerise_profiles (id INTEGER PRIMARY KEY AUTOINCREMENT, custom_id TEXT, email TEXT, "
    "uuid TEXT, data_json TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS synerise_profiles_custom_id ON synerise_profiles (custom_id)",
    "CREATE INDEX IF NOT EXISTS synerise_profiles_email ON synerise_profiles (lower(email))",
    "CREATE TABLE IF NOT EXISTS synerise_transactions (id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL, "
    "event_salt TEXT, data_json TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS synerise_events (id INTEGER PRIMARY KEY AUTOINCREMENT, transaction_id INTEGER NOT NULL, "
    "action TEXT NOT NULL, order_id TEXT, client_json TEXT NOT NULL, params_json TEXT NOT NULL, time TEXT)",
)
_LOGIN_PATHS = (["v4", "auth", "login", "profile"], ["uauth", "v2", "auth", "login", "profile"])


class SynerisePlatform(Emulator):
    """Routes ``/synerise/...``; see the module docstring for the contract."""

    name = "synerise"
    schema = _SCHEMA + CATALOG_SCHEMA

    def __init__(self, store: Store, clock: Clock) -> None:
        super().__init__(store, clock)
        self._api_key = os.environ.get("SANDBOX_SYNERISE_API_KEY", DEFAULT_API_KEY)
        self.settings = settings_from_env(SyneriseSettings, self.name)
        self.tokens = IssuedTokens(store, self.name, clock)
        self.catalogs = SyneriseCatalogs(store, clock, lambda: self.settings)

    # ----------------------------------------------------------------- plumbing

    def handle(self, req: Request, ctx: HandlerContext) -> Response:
        retry_after = ctx.throttle("synerise")
        if retry_after is not None:
            return self.fault_response(429, retry_after)
        try:
            route = self._route(req)
            if self.settings.require_api_version and not req.header("Api-Version"):
                raise SyneriseError(400, "Missing Api-Version header (send Api-Version: 4.4)")
            if route is None:
                raise SyneriseError(404, f"No route for {req.method} {req.path}")
            handler, args = route
            if handler != self._login:
                self._authenticate(req)
            return handler(req, ctx, *args)
        except SyneriseError as exc:
            return exc.response(req.path, self.clock.iso())

    def _route(self, req: Request) -> tuple[Handler, tuple[Any, ...]] | None:
        s, m = req.segments, req.method
        if m == "POST" and s in _LOGIN_PATHS:
            return self._login, ()
        if m == "POST" and s == ["v4", "clients", "batch"]:
            return self._clients_batch, ()
        if m == "POST" and s in (["v4", "transactions"], ["v4", "transactions", "batch"]):
            return self._transactions, (s[-1] == "batch",)
        if s[:2] == ["catalogs", "bags"]:
            return self.catalogs.route(m, s[2:])
        return None

    def fault_response(self, status: int, retry_after: int | None) -> Response:
        message = "Too Many Requests" if status == 429 else f"Injected HTTP {status}"
        error = SyneriseError(status, message, error="Token expired." if status == 401 else message)
        return error.response("", self.clock.iso(), retry_after_headers(retry_after))

    def reset(self) -> None:
        super().reset()
        self.tokens.forget_all()
        self.settings = settings_from_env(SyneriseSettings, self.name)

    def _authenticate(self, req: Request) -> None:
        scheme, credential = authorization(req)
        if scheme == "basic":  # <workspace guid>:<api key>, as the php-sdk sends it
            _, key = basic_credentials(req) or ("", "")
            if key and same_secret(key, self._api_key):
                return
            raise SyneriseError(401, "Invalid credentials", error="Unauthorized")
        if scheme != "bearer" or not credential:
            raise SyneriseError(401, "Missing Bearer token", error="Unauthorized")
        issued = self.tokens.find(credential)
        if issued is None:
            raise SyneriseError(401, "Invalid token", error="Unauthorized")
        if issued.expired:
            raise SyneriseError(401, "Token expired.", error="Token expired.")

    def _login(self, req: Request, ctx: HandlerContext) -> Response:
        body = read_json(req)
        key = body.get("apiKey") if isinstance(body, dict) else None
        if not isinstance(key, str) or not key:
            raise SyneriseError(400, "apiKey is required", [{"code": 400, "field": "apiKey", "message": "is required"}])
        if not same_secret(key, self._api_key):
            raise SyneriseError(401, "Invalid API key", error="Unauthorized")
        return Response(200, {"token": self.tokens.issue(self.settings.token_ttl_seconds)})

    def _apply(
        self,
        req: Request,
        ctx: HandlerContext,
        accepted: list[tuple[int, Any]],
        rejected: list[dict[str, Any]],
        write: Callable[[sqlite3.Connection, Any], None],
    ) -> Response:
        """Write the accepted elements in one transaction; 202, or 207 naming the rejected ones."""
        with self.store.transaction() as db:
            for _, item in accepted:
                write(db, item)
        ctx.items_applied = len(accepted)
        return batch_answer(202, None, rejected, req.path, self.clock.iso())

    # ----------------------------------------------------------------- profiles

    def _clients_batch(self, req: Request, ctx: HandlerContext) -> Response:
        def identity(item: dict[str, Any]) -> tuple[str, Any]:
            return ("customId", item["customId"]) if item.get("customId") else ("email", item.get("email"))

        accepted, rejected = read_batch(req, ctx, self.settings, profile, identity)
        return self._apply(req, ctx, accepted, rejected, self._upsert_profile)

    def _upsert_profile(self, db: sqlite3.Connection, item: dict[str, Any]) -> None:
        row = None
        for key, expr in (("customId", "custom_id=?"), ("email", "lower(email)=lower(?)"), ("uuid", "uuid=?")):
            if item.get(key):
                row = db.execute(f"SELECT id, data_json FROM synerise_profiles WHERE {expr} ORDER BY id LIMIT 1", (item[key],)).fetchone()
                break
        if row is None and not any(item.get(k) for k in ("customId", "email", "uuid")):
            return  # clientId only and unknown: accepted, nothing created (documented)
        data: dict[str, Any] = json.loads(row[1]) if row else {}
        for name, value in item.items():
            if name in ("attributes", "agreements"):
                merged = dict(data.get(name) or {})
                for key, entry in (value or {}).items():
                    if name == "attributes" and key in RESERVED_ATTRIBUTES:
                        continue  # reserved names are ignored inside attributes
                    if entry is None:
                        merged.pop(key, None)
                    else:
                        merged[key] = entry in (True, 1, "true") if name == "agreements" else entry
                data[name] = merged
            elif name != "clientId":
                if value is None:
                    data.pop(name, None)  # null resets the native field
                else:
                    data[name] = value
        now, encoded = self.clock.iso(), compact_json(data)
        values = (data.get("customId"), data.get("email"), data.get("uuid"), encoded, now)
        if row is None:
            db.execute(
                "INSERT INTO synerise_profiles (custom_id, email, uuid, data_json, updated_at, created_at) VALUES (?,?,?,?,?,?)", (*values, now)
            )
        else:
            db.execute("UPDATE synerise_profiles SET custom_id=?, email=?, uuid=?, data_json=?, updated_at=? WHERE id=?", (*values, row[0]))

    # ----------------------------------------------------------------- transactions

    def _transactions(self, req: Request, ctx: HandlerContext, batch: bool) -> Response:
        if batch:
            accepted, rejected = read_batch(req, ctx, self.settings, transaction, lambda item: ("orderId", item["orderId"]))
        else:
            body = read_json(req)
            ctx.items_received = 1
            accepted, rejected = [(0, transaction(None, body))], []
        return self._apply(req, ctx, accepted, rejected, self._store_transaction)

    def _store_transaction(self, db: sqlite3.Connection, item: dict[str, Any]) -> None:
        salt = item.get("eventSalt")
        if salt:  # the same salt overwrites the transaction and the events derived from it
            old = [r[0] for r in db.execute("SELECT id FROM synerise_transactions WHERE event_salt=?", (salt,)).fetchall()]
            for tid in old:
                db.execute("DELETE FROM synerise_events WHERE transaction_id=?", (tid,))
                db.execute("DELETE FROM synerise_transactions WHERE id=?", (tid,))
        when = item.get("recordedAt") or self.clock.iso()
        tid = db.execute(
            "INSERT INTO synerise_transactions (order_id, event_salt, data_json, created_at) VALUES (?,?,?,?)",
            (item["orderId"], salt, compact_json(item), self.clock.iso()),
        ).lastrowid
        client = compact_json(item["client"])
        charge: dict[str, Any] = {
            k: item[k] for k in ("orderId", "revenue", "value", "discountAmount", "source", "paymentInfo", "metadata") if k in item
        }
        charge["productsCount"] = len(item["products"])
        events = [("transaction.charge", charge)] + [("product.buy", {"orderId": item["orderId"], **p}) for p in item["products"]]
        db.executemany(
            "INSERT INTO synerise_events (transaction_id, action, order_id, client_json, params_json, time) VALUES (?,?,?,?,?,?)",
            [(tid, action, item["orderId"], client, compact_json(params), when) for action, params in events],
        )

    # ----------------------------------------------------------------- admin (no auth)

    def admin(self, req: Request, segs: list[str]) -> Response:
        route = (req.method, "/".join(segs[:1]), segs[1:])
        if route == ("POST", "tokens", ["expire"]):
            return Response(200, {"expired": self.tokens.expire_all()})
        try:
            spec = optional_json(req)
            with self.store.transaction() as db:
                return self._admin(db, req, route, spec)
        except (ValueError, SyneriseError) as exc:
            error = exc if isinstance(exc, SyneriseError) else SyneriseError(400, str(exc))
            return error.response(req.path, self.clock.iso())

    def _admin(self, db: sqlite3.Connection, req: Request, route: tuple[str, str, list[str]], spec: Any) -> Response:
        method, head, rest = route
        if head == "profiles" and not rest:
            if method == "POST":
                if not isinstance(spec, list):
                    raise ValueError("body must be a list of profiles")
                for index, item in enumerate(spec):
                    self._upsert_profile(db, profile(index, item))
            elif method == "DELETE":
                db.execute("DELETE FROM synerise_profiles")
            rows = db.execute("SELECT id, data_json FROM synerise_profiles ORDER BY id").fetchall()
            return Response(200, {"profiles": [{"clientId": r[0], **json.loads(r[1])} for r in rows]})
        if head == "catalogs":
            answer = self.catalogs.admin(db, method, rest, spec)
            if answer is not None:
                return answer
        if head == "transactions" and method == "GET":
            rows = db.execute("SELECT id, data_json FROM synerise_transactions ORDER BY id").fetchall()
            return Response(200, {"transactions": [{"id": r[0], **json.loads(r[1])} for r in rows]})
        if head == "events" and method == "GET":
            rows = db.execute("SELECT action, order_id, client_json, params_json, time FROM synerise_events ORDER BY id").fetchall()
            events = [{"action": a, "orderId": o, "client": json.loads(c), "params": json.loads(p), "time": t} for a, o, c, p, t in rows]
            counts: dict[str, int] = {}
            for event in events:
                counts[event["action"]] = counts.get(event["action"], 0) + 1
            return Response(200, {"events": events, "counts": counts})
        if head == "config" and not rest and method in ("GET", "POST"):
            if method == "POST":
                self.settings.update(spec)
            return Response(200, asdict(self.settings))
        raise SyneriseError(404, f"No synerise admin route for {req.method} {req.path}")
