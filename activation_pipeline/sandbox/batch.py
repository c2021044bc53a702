"""Emulator of the Batch.com CEP Catalog API (``/batch/{version}/catalogs/...``).

Real base URL: ``https://api.batch.com/{version}`` (default version 2.11); here
``{sandbox}/batch/{version}`` with any version of the form ``\\d+\\.\\d+``.
The stateless payload checks listed below (names, fields, items, attributes)
are implemented in :mod:`.batch_validation`; this module holds routing, auth,
storage and the state-dependent checks.

Verified from the vendor's OpenAPI pages (doc.batch.com/developer/api/cep/catalogs/*):

* auth: ``Authorization: Bearer <REST API key>`` and ``X-Batch-Project: <project key>``;
  401 with ``error_code`` ``AUTHENTICATION_INVALID`` / "The Rest API Key is not
  valid for this project"; error bodies are ``{"error_code", "error_message"}``;
  statuses 400, 401, 429, 500, 503 are documented.
* ``POST /catalogs/create`` -> 201 ``{}``; at most 5 catalogs per project; 1..25
  fields; field name ``[a-z0-9_]+`` (1..250 chars); field types array, bool, date,
  float, integer, string, url.
* ``POST /catalogs/update`` with field ``action`` add/remove -> 202 ``{}`` (the
  docs say "HTTP 202 confirmation" / "accepted for asynchronous processing").
* ``GET /catalogs/view?name=&indexing_token=`` -> name, fields, items, size,
  created, updated and ``indexing_state`` IN_PROGRESS/APPLIED. The docs say "If
  there is no indexing token provided, no indexing state will be returned", so
  without a token the field is omitted (the same in ``/catalogs/list``).
* ``GET /catalogs/list?from=&limit=`` (limit 1..100, default 10) -> catalogs,
  ``count`` (first page only), ``has_more``, ``next_from``.
* ``POST /catalogs/items/edit`` -> 202 ``{"indexing_token"}``; at most 200 items
  per request; action ``"add"`` appears in the docs' example; attribute keys
  ``^[a-z0-9_]+$``, ``url(...)`` (valid URL), ``date(...)`` (RFC 3339 or Unix
  timestamp); values: array of <= 15 strings of <= 64 chars, boolean, integer
  (int64), float, string <= 10,000 chars.
* rate limit on items/edit: token bucket, 5 requests/s and 1000 item updates/s,
  one update per item in a request, 429 beyond.

The emulator's own choices (unverified; a real-API run may contradict them):

* action strings beyond ``"add"``: ``update`` (merge), ``upsert`` (replace),
  ``delete``/``remove``; ``add`` replaces an existing item whole.
* ``update`` of an id that does not exist is ignored (not created) and the 202
  body carries ``"ignored_ids": [...]`` -- that field is the emulator's, chosen
  because the real API's behaviour for this case is unverified.
* Validation is all-or-nothing: one invalid item rejects the whole request
  (400 ``INVALID_PARAMETER`` naming ``items[i] (id "...")`` and the rule).
  Values may also be ``null``. NaN/Infinity make the body invalid JSON (400
  ``MALFORMED_JSON``); numbers overflowing to infinity are "not finite".
* ``Retry-After`` (integer seconds, >= 1) on 429; only items/edit is rate limited.
* error codes other than AUTHENTICATION_INVALID: INVALID_PARAMETER,
  MALFORMED_JSON, CATALOG_ALREADY_EXISTS, CATALOG_NOT_FOUND (404), NOT_FOUND
  (unknown route, 404), TOO_MANY_REQUESTS, SERVER_ERROR (500),
  SERVICE_UNAVAILABLE (503). Catalog name ``^[a-z0-9_]+$`` (<= 100 chars); item id
  a non-empty string of <= 512 chars. Item attributes are not checked against
  the catalog's declared fields. An unknown ``indexing_token`` is 400. Catalog
  update: adding an existing field with the same type is a no-op (another type:
  400); removing an absent field is a no-op.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import sqlite3
from collections.abc import Callable
from typing import Any

from .batch_validation import NAME_RE, ApiError, catalog_fields, catalog_name, check_field_count, edit_items, invalid
from .emulator_kit import Clock, Emulator, authorization, compact_json, json_body, retry_after_headers, same_secret
from .platform_interface import HandlerContext, Request, Response, error_response
from .store import Store

DEFAULT_REST_API_KEY = "sandbox-batch-rest-key"
DEFAULT_PROJECT_KEY = "project_sandbox"
MAX_CATALOGS = 5

# all patterns are used with fullmatch (``$`` would accept a trailing newline)
_VERSION_RE = re.compile(r"\d+\.\d+")
_STATUS_ERRORS = {
    400: ("INVALID_PARAMETER", "The request is malformed"),
    401: ("AUTHENTICATION_INVALID", "The Rest API Key is not valid for this project"),
    404: ("NOT_FOUND", "Not found"),
    429: ("TOO_MANY_REQUESTS", "Too Many Requests"),
    500: ("SERVER_ERROR", "Unexpected error"),
    503: ("SERVICE_UNAVAILABLE", "Batch's services are under maintenance. Please try again later"),
}
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS batch_catalogs (project TEXT NOT NULL, name TEXT NOT NULL, "
    "fields_json TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL, "
    "items INTEGER NOT NULL DEFAULT 0, size INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (project, name))",
    "CREATE TABLE IF NOT EXISTS batch_items (project TEXT NOT NULL, catalog TEXT NOT NULL, id TEXT NOT NULL, "
    "attributes_json TEXT NOT NULL, updated TEXT NOT NULL, PRIMARY KEY (project, catalog, id))",
    "CREATE TABLE IF NOT EXISTS batch_indexing (token TEXT PRIMARY KEY, project TEXT NOT NULL, "
    "catalog TEXT NOT NULL, polls INTEGER NOT NULL DEFAULT 0)",
)


# --------------------------------------------------------------------------- the platform


class BatchPlatform(Emulator):
    """Routes ``/batch/{version}/...``; see the module docstring for the contract."""

    name = "batch"
    schema = _SCHEMA

    def __init__(self, store: Store, clock: Clock) -> None:
        super().__init__(store, clock)
        self._rest_key = os.environ.get("SANDBOX_BATCH_REST_API_KEY", DEFAULT_REST_API_KEY)
        self.project_key = os.environ.get("SANDBOX_BATCH_PROJECT_KEY", DEFAULT_PROJECT_KEY)

    # ----------------------------------------------------------------- plumbing

    def handle(self, req: Request, ctx: HandlerContext) -> Response:
        segs = req.segments
        route = _ROUTES.get((req.method, "/".join(segs[1:])))
        if len(segs) < 2 or not _VERSION_RE.fullmatch(segs[0]) or route is None:
            return error_response(404, "NOT_FOUND", f"Unknown route {req.method} {req.path}")
        if not self._authenticated(req):
            return self.fault_response(401, None)
        try:
            return route(self, req, ctx)
        except ApiError as exc:
            return error_response(exc.status, exc.code, exc.message)

    def _authenticated(self, req: Request) -> bool:
        scheme, key = authorization(req)
        project = (req.header("X-Batch-Project") or "").strip()
        key_ok, project_ok = same_secret(key, self._rest_key), same_secret(project, self.project_key)
        return scheme == "bearer" and key_ok and project_ok

    def fault_response(self, status: int, retry_after: int | None) -> Response:
        code, message = _STATUS_ERRORS.get(status, ("SANDBOX_FAULT", f"Injected HTTP {status}"))
        return error_response(status, code, message, retry_after_headers(retry_after))

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        body = json_body(req, lambda why: ApiError(400, "MALFORMED_JSON", f"Request body is not valid JSON: {why}"))
        if not isinstance(body, dict):
            raise invalid("Request body must be a JSON object")
        return body

    def _catalog_row(self, db: sqlite3.Connection, project: str, name: str) -> tuple[Any, ...]:
        row = db.execute(
            "SELECT fields_json, created, updated, items, size FROM batch_catalogs WHERE project=? AND name=?", (project, name)
        ).fetchone()
        if row is None:
            raise ApiError(404, "CATALOG_NOT_FOUND", f'Catalog "{name}" does not exist')
        return row

    @staticmethod
    def _describe(name: str, row: tuple[Any, ...]) -> dict[str, Any]:
        """Public shape of a catalog from ``(fields_json, created, updated, items, size)``."""
        return {"name": name, "fields": json.loads(row[0]), "items": row[3], "size": row[4], "created": row[1], "updated": row[2]}

    # ----------------------------------------------------------------- catalogs

    def _create(self, req: Request, ctx: HandlerContext) -> Response:
        body = self._body(req)
        name = catalog_name(body.get("name"))
        fields = {n: str(t) for _, n, t in catalog_fields(body.get("fields"), update=False)}
        check_field_count(len(fields))
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM batch_catalogs WHERE project=? AND name=?", (self.project_key, name)).fetchone():
                raise ApiError(400, "CATALOG_ALREADY_EXISTS", f'Catalog "{name}" already exists')
            (count,) = db.execute("SELECT COUNT(*) FROM batch_catalogs WHERE project=?", (self.project_key,)).fetchone()
            if count >= MAX_CATALOGS:
                raise invalid(f"A project can have at most {MAX_CATALOGS} catalogs")
            now = self.clock.iso()
            db.execute(
                "INSERT INTO batch_catalogs VALUES (?,?,?,?,?,0,0)",
                (self.project_key, name, compact_json([{"name": n, "type": t} for n, t in fields.items()]), now, now),
            )
        return Response(201, {})

    def _update(self, req: Request, ctx: HandlerContext) -> Response:
        body = self._body(req)
        name = catalog_name(body.get("name"))
        ops = catalog_fields(body.get("fields"), update=True)
        with self.store.transaction() as db:
            row = self._catalog_row(db, self.project_key, name)
            fields = {f["name"]: f["type"] for f in json.loads(row[0])}
            for action, field_name, field_type in ops:
                if action == "remove":
                    fields.pop(field_name, None)
                elif fields.get(field_name, field_type) != field_type:
                    raise invalid(f'field "{field_name}" already exists with type "{fields[field_name]}"')
                else:
                    fields[field_name] = str(field_type)
            check_field_count(len(fields))
            db.execute(
                "UPDATE batch_catalogs SET fields_json=?, updated=? WHERE project=? AND name=?",
                (compact_json([{"name": n, "type": t} for n, t in fields.items()]), self.clock.iso(), self.project_key, name),
            )
        return Response(202, {})

    def _view(self, req: Request, ctx: HandlerContext) -> Response:
        if "name" not in req.query:
            raise invalid('query parameter "name" is required')
        name = catalog_name(req.query["name"])
        token = req.query.get("indexing_token")
        with self.store.transaction() as db:
            out = self._describe(name, self._catalog_row(db, self.project_key, name))
            if token is not None:
                row = db.execute(
                    "SELECT polls FROM batch_indexing WHERE token=? AND project=? AND catalog=?", (token, self.project_key, name)
                ).fetchone()
                if row is None:
                    raise invalid(f'Unknown indexing_token for catalog "{name}"')
                db.execute("UPDATE batch_indexing SET polls = polls + 1 WHERE token=?", (token,))
                out["indexing_state"] = "IN_PROGRESS" if row[0] == 0 else "APPLIED"
        return Response(200, out)

    def _list(self, req: Request, ctx: HandlerContext) -> Response:
        raw_limit = req.query.get("limit", "10")
        if not re.fullmatch(r"\d{1,3}", raw_limit) or not 1 <= int(raw_limit) <= 100:
            raise invalid('"limit" must be an integer between 1 and 100')
        limit, cursor = int(raw_limit), req.query.get("from")
        after = ""
        if cursor is not None:
            try:
                after = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise invalid('"from" is not a valid cursor') from None
            if not NAME_RE.fullmatch(after):
                raise invalid('"from" is not a valid cursor')
        with self.store.transaction() as db:
            rows = db.execute(
                "SELECT name, fields_json, created, updated, items, size FROM batch_catalogs WHERE project=? AND name>? ORDER BY name LIMIT ?",
                (self.project_key, after, limit + 1),
            ).fetchall()
            page = [self._describe(r[0], r[1:]) for r in rows[:limit]]
            (total,) = db.execute("SELECT COUNT(*) FROM batch_catalogs WHERE project=?", (self.project_key,)).fetchone()
        out: dict[str, Any] = {"catalogs": page}
        if cursor is None:
            out["count"] = total
        out["has_more"] = len(rows) > limit
        if out["has_more"]:
            out["next_from"] = base64.urlsafe_b64encode(page[-1]["name"].encode()).decode().rstrip("=")
        return Response(200, out)

    def _remove(self, req: Request, ctx: HandlerContext) -> Response:
        name = catalog_name(self._body(req).get("name"))
        with self.store.transaction() as db:
            self._catalog_row(db, self.project_key, name)
            for table, column in (("batch_items", "catalog"), ("batch_indexing", "catalog"), ("batch_catalogs", "name")):
                db.execute(f"DELETE FROM {table} WHERE project=? AND {column}=?", (self.project_key, name))
        return Response(202, {})

    # ----------------------------------------------------------------- items

    def _edit_items(self, req: Request, ctx: HandlerContext) -> Response:
        body = self._body(req)
        items = body.get("items")
        count = len(items) if isinstance(items, list) else 0
        ctx.items_received = count
        retry_after = ctx.throttle(self.project_key, count)
        if retry_after is not None:
            return self.fault_response(429, retry_after)
        name = catalog_name(body.get("name"))
        ops = edit_items(items)
        for index, (item_id, _, _) in enumerate(ops):
            kind = ctx.rejection(item_id)
            if kind:
                raise invalid(f"items[{index}] (id {compact_json(item_id)}): item rejected by the platform (sandbox fault {kind})")
        with self.store.transaction() as db:
            self._catalog_row(db, self.project_key, name)
            ignored = self._apply(db, name, ops)
            token = secrets.token_hex(20)
            db.execute("INSERT INTO batch_indexing VALUES (?,?,?,0)", (token, self.project_key, name))
        ctx.items_applied = count - len(ignored)
        out: dict[str, Any] = {"indexing_token": token}
        if ignored:
            out["ignored_ids"] = ignored
        return Response(202, out)

    def _apply(self, db: sqlite3.Connection, catalog: str, ops: list[tuple[str, str, Any]]) -> list[str]:
        """Apply validated ops in order; return the ids of ignored updates.

        One indexed read of the touched ids (existence, old size, current attributes
        for merges), then one ``executemany`` per write kind, then the catalog's
        ``items``/``size`` counters are adjusted so views never scan the items.
        """
        project = self.project_key
        ids = list(dict.fromkeys(item_id for item_id, _, _ in ops))
        rows = db.execute(
            f"SELECT id, attributes_json FROM batch_items WHERE project=? AND catalog=? AND id IN ({','.join('?' * len(ids))})",
            (project, catalog, *ids),
        ).fetchall()
        stored: dict[str, str] = dict(rows)
        final: dict[str, dict[str, Any] | None] = {}
        ignored: list[str] = []
        for item_id, action, attributes in ops:
            if action in ("add", "upsert"):
                final[item_id] = dict(attributes)
            elif action == "update":
                if item_id in final:
                    current = final[item_id]
                else:
                    current = json.loads(stored[item_id]) if item_id in stored else None
                if current is None:
                    ignored.append(item_id)
                else:
                    final[item_id] = {**current, **attributes}
            else:
                final[item_id] = None
        now = self.clock.iso()
        upserts: list[tuple[str, str, str, str, str]] = []
        deletes: list[tuple[str, str, str]] = []
        delta_items = delta_size = 0
        for item_id, attributes in final.items():
            old = stored.get(item_id)
            if old is not None:
                delta_items -= 1
                delta_size -= len(old.encode())
            if attributes is None:
                if old is not None:
                    deletes.append((project, catalog, item_id))
                continue
            encoded = compact_json(attributes)
            delta_items += 1
            delta_size += len(encoded.encode())
            upserts.append((project, catalog, item_id, encoded, now))
        db.executemany("INSERT OR REPLACE INTO batch_items VALUES (?,?,?,?,?)", upserts)
        db.executemany("DELETE FROM batch_items WHERE project=? AND catalog=? AND id=?", deletes)
        db.execute(
            "UPDATE batch_catalogs SET items = items + ?, size = size + ?, updated = ? WHERE project=? AND name=?",
            (delta_items, delta_size, now, project, catalog),
        )
        return ignored

    # ----------------------------------------------------------------- admin (no auth)

    def admin(self, req: Request, segs: list[str]) -> Response:
        if req.method == "GET" and segs == ["catalogs"]:
            with self.store.transaction() as db:
                rows = db.execute("SELECT project, name, fields_json, items FROM batch_catalogs ORDER BY project, name").fetchall()
            return Response(200, {"catalogs": [{"project": p, "name": n, "fields": json.loads(f), "items": c} for p, n, f, c in rows]})
        if req.method == "GET" and len(segs) == 3 and segs[0] == "catalogs" and segs[2] == "items":
            project = req.query.get("project", self.project_key)
            with self.store.transaction() as db:
                try:
                    self._catalog_row(db, project, segs[1])
                except ApiError as exc:
                    return error_response(exc.status, exc.code, exc.message)
                rows = db.execute(
                    "SELECT id, attributes_json FROM batch_items WHERE project=? AND catalog=? ORDER BY id", (project, segs[1])
                ).fetchall()
            return Response(200, {"items": {item_id: json.loads(attrs) for item_id, attrs in rows}})
        return error_response(404, "NOT_FOUND", f"No batch admin route for {req.method} {req.path}")


_ROUTES: dict[tuple[str, str], Callable[[BatchPlatform, Request, HandlerContext], Response]] = {
    ("POST", "catalogs/create"): BatchPlatform._create,
    ("POST", "catalogs/update"): BatchPlatform._update,
    ("GET", "catalogs/view"): BatchPlatform._view,
    ("GET", "catalogs/list"): BatchPlatform._list,
    ("POST", "catalogs/remove"): BatchPlatform._remove,
    ("POST", "catalogs/items/edit"): BatchPlatform._edit_items,
}
