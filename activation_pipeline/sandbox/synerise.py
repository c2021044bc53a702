"""Emulator of Synerise's profiles, catalogs and transactions APIs, under ``/synerise/...``.

Real hosts: ``https://api.synerise.com`` (``/v4/...``, ``/catalogs/...``); here
``{sandbox}/synerise``. Credential: env ``SANDBOX_SYNERISE_API_KEY`` (default
``sandbox-synerise-api-key``). Stateless body checks live in :mod:`.synerise_validation`.

Endpoints: ``POST /v4/auth/login/profile`` (and ``/uauth/v2/auth/login/profile``)
``{"apiKey"}`` -> 200 ``{"token"}``; ``POST /v4/clients/batch`` (202);
``POST /v4/transactions`` and ``/v4/transactions/batch`` (202); ``GET|POST /catalogs/bags``
(``?searchBy=``), ``GET /catalogs/bags/{id}``, ``POST /catalogs/bags/{id}/items/batch`` (200
``true``), ``GET /catalogs/bags/{id}/items``, ``GET /catalogs/bags/{id}/items/itemKey/{key}``.
Admin (no auth) under ``/_sandbox/synerise/``: ``GET|POST|DELETE profiles``, ``GET catalogs``,
``POST catalogs/{name}/items`` (``{itemKey: value}``, behind the client's back),
``DELETE catalogs/{name}``, ``GET transactions``, ``GET events`` (with ``counts`` per action),
``GET|POST config``, ``POST tokens/expire``.

Verified (sources in /work/shared/platforms/REFERENCE.md section 5, re-checked in
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

import base64
import datetime as dt
import hashlib
import hmac
import json
import math
import os
import secrets
import sqlite3
import time
from dataclasses import asdict
from typing import Any

from .platform_interface import HandlerContext, Request, Response, parse_json
from .store import Store
from .synerise_validation import (CATALOG_NAME_RE, RESERVED_ATTRIBUTES, SyneriseError, SyneriseSettings, catalog_item,
                                  check_batch, profile, transaction)

DEFAULT_API_KEY = "sandbox-synerise-api-key"
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS synerise_tokens (token_hash TEXT PRIMARY KEY, expires_at REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS synerise_profiles (id INTEGER PRIMARY KEY AUTOINCREMENT, custom_id TEXT, email TEXT, "
    "uuid TEXT, data_json TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS synerise_profiles_custom_id ON synerise_profiles (custom_id)",
    "CREATE INDEX IF NOT EXISTS synerise_profiles_email ON synerise_profiles (lower(email))",
    "CREATE TABLE IF NOT EXISTS synerise_catalogs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, "
    "created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS synerise_items (id INTEGER PRIMARY KEY AUTOINCREMENT, catalog_id INTEGER NOT NULL, "
    "item_key TEXT NOT NULL, value_json TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT, "
    "UNIQUE (catalog_id, item_key))",
    "CREATE TABLE IF NOT EXISTS synerise_transactions (id INTEGER PRIMARY KEY AUTOINCREMENT, order_id TEXT NOT NULL, "
    "event_salt TEXT, data_json TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS synerise_events (id INTEGER PRIMARY KEY AUTOINCREMENT, transaction_id INTEGER NOT NULL, "
    "action TEXT NOT NULL, order_id TEXT, client_json TEXT NOT NULL, params_json TEXT NOT NULL, time TEXT)",
)
_TABLES = ("synerise_tokens", "synerise_profiles", "synerise_catalogs", "synerise_items", "synerise_transactions", "synerise_events")
_NATIVE = ("customId", "email", "uuid", "phone", "firstName", "lastName", "displayName", "avatarUrl", "birthDate", "company",
           "city", "address", "zipCode", "province", "countryCode", "sex", "tags")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SynerisePlatform:
    """Routes ``/synerise/...``; see the module docstring for the contract."""

    name = "synerise"

    def __init__(self, store: Store) -> None:
        self.store = store
        self._api_key = os.environ.get("SANDBOX_SYNERISE_API_KEY", DEFAULT_API_KEY)
        self.settings = SyneriseSettings.from_env()
        with store.transaction() as db:
            for statement in _SCHEMA:
                db.execute(statement)

    # ----------------------------------------------------------------- plumbing

    def handle(self, req: Request, ctx: HandlerContext) -> Response:
        wait = ctx.rate_check("synerise", 0)
        if wait is not None:
            return self.fault_response(429, max(1, math.ceil(wait)))
        try:
            route = self._route(req)
            if self.settings.require_api_version and not req.header("Api-Version"):
                raise SyneriseError(400, "Missing Api-Version header (send Api-Version: 4.4)")
            if route is None:
                raise SyneriseError(404, f"No route for {req.method} {req.path}")
            handler, args = route
            if handler not in (SynerisePlatform._login,):
                self._authenticate(req)
            return handler(self, req, ctx, *args)
        except SyneriseError as exc:
            return self._error(exc, req.path)

    @staticmethod
    def _route(req: Request) -> tuple[Any, tuple[Any, ...]] | None:
        s, m = req.segments, req.method
        if m == "POST" and s in (["v4", "auth", "login", "profile"], ["uauth", "v2", "auth", "login", "profile"]):
            return SynerisePlatform._login, ()
        if m == "POST" and s == ["v4", "clients", "batch"]:
            return SynerisePlatform._clients_batch, ()
        if m == "POST" and s in (["v4", "transactions"], ["v4", "transactions", "batch"]):
            return SynerisePlatform._transactions, (s[-1] == "batch",)
        if s[:2] == ["catalogs", "bags"]:
            rest = s[2:]
            if not rest:
                return (SynerisePlatform._list_bags if m == "GET" else SynerisePlatform._create_bag if m == "POST" else None), ()
            if not rest[0].isdigit():
                return None
            bag = int(rest[0])
            if rest[1:] == [] and m == "GET":
                return SynerisePlatform._get_bag, (bag,)
            if rest[1:] == ["items", "batch"] and m == "POST":
                return SynerisePlatform._add_items, (bag,)
            if rest[1:] == ["items"] and m == "GET":
                return SynerisePlatform._list_items, (bag, None)
            if len(rest) == 4 and rest[1:3] == ["items", "itemKey"] and m == "GET":
                return SynerisePlatform._list_items, (bag, rest[3])
        return None

    def _error(self, exc: SyneriseError, path: str, headers: dict[str, str] | None = None) -> Response:
        body = {"timestamp": _now(), "status": exc.status, "error": exc.error, "message": exc.message, "path": path,
                "errors": exc.errors}
        return Response(exc.status, body, dict(headers or {}))

    def fault_response(self, status: int, retry_after: int | None) -> Response:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        message = "Too Many Requests" if status == 429 else f"Injected HTTP {status}"
        error = SyneriseError(status, message, error="Token expired." if status == 401 else message)
        return self._error(error, "", headers)

    def reset(self) -> None:
        with self.store.transaction() as db:
            for table in _TABLES:
                db.execute(f"DELETE FROM {table}")
        self.settings = SyneriseSettings.from_env()

    def _json(self, req: Request) -> Any:
        content_type = (req.header("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise SyneriseError(415, "Content-Type must be application/json")
        try:
            return parse_json(req.body)
        except ValueError as exc:
            raise SyneriseError(400, f"Malformed JSON: {exc}") from None

    def _authenticate(self, req: Request) -> None:
        header = (req.header("Authorization") or "").strip()
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                _, _, key = base64.b64decode(credential).decode().partition(":")
            except ValueError:
                key = ""
            if key and hmac.compare_digest(key.encode(), self._api_key.encode()):
                return
            raise SyneriseError(401, "Invalid credentials", error="Unauthorized")
        if scheme.lower() != "bearer" or not credential:
            raise SyneriseError(401, "Missing Bearer token", error="Unauthorized")
        with self.store.transaction() as db:
            row = db.execute("SELECT expires_at FROM synerise_tokens WHERE token_hash=?", (_hash(credential),)).fetchone()
        if row is None:
            raise SyneriseError(401, "Invalid token", error="Unauthorized")
        if row[0] <= time.time():
            raise SyneriseError(401, "Token expired.", error="Token expired.")

    @staticmethod
    def _rejected(ctx: HandlerContext, index: int, field: str, value: Any) -> dict[str, Any] | None:
        if not isinstance(value, str) or value not in ctx.rejected_ids:
            return None
        kind = getattr(ctx.rejected_ids, "kind", lambda _: "reject_ids")(value)
        return {"code": 400, "field": f"[{index}].{field}", "rejectedValue": value,
                "message": f"{json.dumps(value)} rejected by the platform (sandbox fault {kind})"}

    def _batch(self, req: Request, ctx: HandlerContext, check: Any, identity: Any) -> tuple[list[tuple[int, Any]], list[dict[str, Any]]]:
        """Validate a batch body: the (index, checked item) pairs to apply, and the per-item rejections."""
        body = check_batch(self._json(req), self.settings, len(req.body))
        ctx.items_received = len(body)
        accepted: list[tuple[int, Any]] = []
        invalid: list[dict[str, Any]] = []
        rejected: list[dict[str, Any]] = []
        for index, item in enumerate(body):
            try:
                checked = check(index, item)
            except SyneriseError as exc:
                invalid.extend(exc.errors)
                continue
            rejection = self._rejected(ctx, index, *identity(checked))
            if rejection:
                rejected.append(rejection)
            else:
                accepted.append((index, checked))
        if invalid:
            raise SyneriseError(400, f"{len(invalid)} invalid item(s) in the batch; nothing was applied", invalid)
        return accepted, rejected

    @staticmethod
    def _answer(status: int, body: Any, rejected: list[dict[str, Any]], path: str) -> Response:
        if not rejected:
            return Response(status, body)
        return Response(207, {"timestamp": _now(), "status": 207, "error": "Multi-Status",
                              "message": "Request partially accepted", "path": path, "errors": rejected})

    # ----------------------------------------------------------------- auth

    def _login(self, req: Request, ctx: HandlerContext) -> Response:
        body = self._json(req)
        key = body.get("apiKey") if isinstance(body, dict) else None
        if not isinstance(key, str) or not key:
            raise SyneriseError(400, "apiKey is required", [{"code": 400, "field": "apiKey", "message": "is required"}])
        if not hmac.compare_digest(key.encode(), self._api_key.encode()):
            raise SyneriseError(401, "Invalid API key", error="Unauthorized")
        token, now = secrets.token_urlsafe(32), time.time()
        with self.store.transaction() as db:
            db.execute("DELETE FROM synerise_tokens WHERE expires_at <= ?", (now,))
            db.execute("INSERT INTO synerise_tokens VALUES (?,?)", (_hash(token), now + self.settings.token_ttl_seconds))
        return Response(200, {"token": token})

    # ----------------------------------------------------------------- profiles

    def _clients_batch(self, req: Request, ctx: HandlerContext) -> Response:
        def identity(item: dict[str, Any]) -> tuple[str, Any]:
            return ("customId", item["customId"]) if item.get("customId") else ("email", item.get("email"))

        accepted, rejected = self._batch(req, ctx, profile, identity)
        with self.store.transaction() as db:
            for _, item in accepted:
                self._upsert_profile(db, item)
        ctx.items_applied = len(accepted)
        return self._answer(202, None, rejected, req.path)

    @staticmethod
    def _upsert_profile(db: sqlite3.Connection, item: dict[str, Any]) -> None:
        row = None
        for column, key, expr in (("custom_id", "customId", "custom_id=?"), ("email", "email", "lower(email)=lower(?)"),
                                  ("uuid", "uuid", "uuid=?")):
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
        now, encoded = _now(), _dumps(data)
        values = (data.get("customId"), data.get("email"), data.get("uuid"), encoded, now)
        if row is None:
            db.execute("INSERT INTO synerise_profiles (custom_id, email, uuid, data_json, updated_at, created_at) "
                       "VALUES (?,?,?,?,?,?)", (*values, now))
        else:
            db.execute("UPDATE synerise_profiles SET custom_id=?, email=?, uuid=?, data_json=?, updated_at=? WHERE id=?",
                       (*values, row[0]))

    # ----------------------------------------------------------------- transactions

    def _transactions(self, req: Request, ctx: HandlerContext, batch: bool) -> Response:
        if batch:
            accepted, rejected = self._batch(req, ctx, transaction, lambda item: ("orderId", item["orderId"]))
        else:
            body = self._json(req)
            ctx.items_received = 1
            accepted, rejected = [(0, transaction(None, body))], []
        with self.store.transaction() as db:
            for _, item in accepted:
                self._store_transaction(db, item)
        ctx.items_applied = len(accepted)
        return self._answer(202, None, rejected, req.path)

    @staticmethod
    def _store_transaction(db: sqlite3.Connection, item: dict[str, Any]) -> None:
        salt = item.get("eventSalt")
        if salt:  # the same salt overwrites the transaction and the events derived from it
            old = [r[0] for r in db.execute("SELECT id FROM synerise_transactions WHERE event_salt=?", (salt,)).fetchall()]
            for tid in old:
                db.execute("DELETE FROM synerise_events WHERE transaction_id=?", (tid,))
                db.execute("DELETE FROM synerise_transactions WHERE id=?", (tid,))
        when = item.get("recordedAt") or _now()
        tid = db.execute("INSERT INTO synerise_transactions (order_id, event_salt, data_json, created_at) VALUES (?,?,?,?)",
                         (item["orderId"], salt, _dumps(item), _now())).lastrowid
        client = _dumps(item["client"])
        charge = {k: item[k] for k in ("orderId", "revenue", "value", "discountAmount", "source", "paymentInfo", "metadata") if k in item}
        charge["productsCount"] = len(item["products"])
        events = [("transaction.charge", charge)] + [("product.buy", {"orderId": item["orderId"], **p}) for p in item["products"]]
        db.executemany("INSERT INTO synerise_events (transaction_id, action, order_id, client_json, params_json, time) VALUES (?,?,?,?,?,?)",
                       [(tid, action, item["orderId"], client, _dumps(params), when) for action, params in events])

    # ----------------------------------------------------------------- catalogs

    @staticmethod
    def _bag(row: tuple[Any, ...]) -> dict[str, Any]:
        return {"id": row[0], "name": row[1], "author": "sandbox", "businessProfileId": 1, "creationDate": row[2],
                "lastModified": row[2], "fields": [], "mappings": [], "primaryKey": {"name": "itemKey"}}

    def _list_bags(self, req: Request, ctx: HandlerContext) -> Response:
        search = req.query.get("searchBy", "")
        with self.store.transaction() as db:
            rows = db.execute("SELECT id, name, created_at FROM synerise_catalogs WHERE instr(lower(name), lower(?)) > 0 "
                              "ORDER BY id", (search,)).fetchall()
        return Response(200, {"data": [self._bag(r) for r in rows], "metaData": {"requestTime": _now(), "totalCount": len(rows)}})

    def _create_bag(self, req: Request, ctx: HandlerContext) -> Response:
        body = self._json(req)
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not CATALOG_NAME_RE.fullmatch(name):
            raise SyneriseError(400, "name: catalog names are letters and digits only",
                                [{"code": 400, "field": "name", "message": "must match [a-zA-Z0-9]+", "rejectedValue": name}])
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM synerise_catalogs WHERE name=?", (name,)).fetchone():
                raise SyneriseError(409, f"Catalog {name!r} already exists", error="Conflict")
            cursor = db.execute("INSERT INTO synerise_catalogs (name, created_at) VALUES (?,?)", (name, _now()))
            row = db.execute("SELECT id, name, created_at FROM synerise_catalogs WHERE id=?", (cursor.lastrowid,)).fetchone()
        return Response(200, {"data": self._bag(row), "metaData": {"requestTime": _now(), "totalCount": 1}})

    def _bag_row(self, db: sqlite3.Connection, bag: int) -> tuple[Any, ...]:
        row = db.execute("SELECT id, name, created_at FROM synerise_catalogs WHERE id=?", (bag,)).fetchone()
        if row is None:
            raise SyneriseError(404, f"Catalog {bag} not found")
        return row

    def _get_bag(self, req: Request, ctx: HandlerContext, bag: int) -> Response:
        with self.store.transaction() as db:
            return Response(200, {"data": self._bag(self._bag_row(db, bag))})

    def _add_items(self, req: Request, ctx: HandlerContext, bag: int) -> Response:
        with self.store.transaction() as db:
            self._bag_row(db, bag)
        accepted, rejected = self._batch(req, ctx, catalog_item, lambda pair: ("itemKey", pair[0]))
        with self.store.transaction() as db:
            self._bag_row(db, bag)
            for _, (key, value) in accepted:
                self._upsert_item(db, bag, key, value)
        ctx.items_applied = len(accepted)
        return self._answer(200, True, rejected, req.path)

    @staticmethod
    def _upsert_item(db: sqlite3.Connection, bag: int, key: str, value: dict[str, Any]) -> None:
        db.execute("INSERT INTO synerise_items (catalog_id, item_key, value_json, created_at) VALUES (?,?,?,?) "
                   "ON CONFLICT (catalog_id, item_key) DO UPDATE SET value_json=excluded.value_json, updated_at=excluded.created_at",
                   (bag, key, _dumps(value), _now()))

    def _list_items(self, req: Request, ctx: HandlerContext, bag: int, key: str | None) -> Response:
        with self.store.transaction() as db:
            row = self._bag_row(db, bag)
            sql = "SELECT id, item_key, value_json, created_at, updated_at FROM synerise_items WHERE catalog_id=?"
            args: list[Any] = [bag]
            if key is not None or req.query.get("itemKey"):
                sql, args = sql + " AND item_key=?", [bag, key if key is not None else req.query["itemKey"]]
            limit, offset = int(req.query.get("limit") or 100), int(req.query.get("offset") or 0)
            items = db.execute(sql + " ORDER BY id LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
        described = [{"id": i[0], "itemKey": i[1], "value": i[2], "creationDate": i[3], "lastModified": i[4],
                      "bag": self._bag(row)} for i in items]
        if key is not None:
            if not described:
                raise SyneriseError(404, f"Item {key!r} not found in catalog {bag}")
            return Response(200, {"data": described[0]})
        return Response(200, {"data": described, "metaData": {"requestTime": _now(), "totalCount": len(described)}})

    # ----------------------------------------------------------------- admin (no auth)

    def admin(self, req: Request, segs: list[str]) -> Response:
        route = (req.method, "/".join(segs[:1]), segs[1:])
        try:
            spec = parse_json(req.body) if req.body else {}
            with self.store.transaction() as db:
                return self._admin(db, req, route, spec)
        except (ValueError, SyneriseError) as exc:
            return self._error(exc if isinstance(exc, SyneriseError) else SyneriseError(400, str(exc)), req.path)

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
        if head == "catalogs" and method == "GET" and not rest:
            out: dict[str, Any] = {}
            for bag, name in db.execute("SELECT id, name FROM synerise_catalogs ORDER BY id").fetchall():
                items = db.execute("SELECT item_key, value_json FROM synerise_items WHERE catalog_id=? ORDER BY id", (bag,)).fetchall()
                out[name] = {"id": bag, "items": {k: json.loads(v) for k, v in items}}
            return Response(200, {"catalogs": out})
        if head == "catalogs" and len(rest) >= 1:
            row = db.execute("SELECT id FROM synerise_catalogs WHERE name=?", (rest[0],)).fetchone()
            if row is None:
                raise SyneriseError(404, f"no catalog named {rest[0]!r}")
            if method == "DELETE" and len(rest) == 1:
                db.execute("DELETE FROM synerise_items WHERE catalog_id=?", (row[0],))
                db.execute("DELETE FROM synerise_catalogs WHERE id=?", (row[0],))
                return Response(200, {"deleted": rest[0]})
            if method == "POST" and rest[1:] == ["items"] and isinstance(spec, dict):
                for key, value in spec.items():
                    self._upsert_item(db, row[0], key, value)
                return Response(200, {"upserted": len(spec)})
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
        if (method, head, rest) == ("POST", "tokens", ["expire"]):
            return Response(200, {"expired": db.execute("UPDATE synerise_tokens SET expires_at=0").rowcount})
        raise SyneriseError(404, f"No synerise admin route for {req.method} {req.path}")
