"""A configurable JSON sink for the generic ``http`` destination (``/http/...``).

Not any vendor's API: a small, strict stand-in for "a JSON API we have no client for", whose
behaviour a test sets through ``POST /_sandbox/http/config`` (reset by ``POST /_sandbox/reset``):

* auth: ``<auth_header>: <auth_scheme> <token>`` (default ``Authorization: Bearer sandbox-http-token``,
  token from env ``SANDBOX_HTTP_TOKEN``); anything else is 401 ``{"error", "message"}``;
* ``POST /http/<collection>`` ``{"items": [{"id": "...", ...}]}``: stores each item whole by id (200
  ``{"stored": n}``); ``POST /http/<collection>/delete`` ``{"ids": ["..."]}``: deletes them (absent ids
  are ignored); ``PUT|PATCH /http/<collection>/<id>`` a JSON object: stores it (PATCH merges);
  ``DELETE /http/<collection>/<id>``: 204, or 404 when absent;
* ``max_items`` (100) and ``max_bytes`` (1,000,000) per request: beyond, 413 naming the limit;
* ids marked by the ``reject_ids`` / ``reject_rate`` faults: with ``item_errors: false`` (default) the
  request is refused whole (400 naming the item; 422 for a one-record request); with ``item_errors:
  true`` the other items are applied and the answer is 207 ``{"stored": n, "errors": [{"index", "id",
  "message"}]}``;
* a malformed body or an item without a string ``id``: 400; rate limit (when on): 429 with ``Retry-After``.

Inspection (no auth): ``GET /_sandbox/http/<collection>/records`` (``{"records": {id: item}}``),
``GET /_sandbox/http/collections`` (``{"collections": {name: count}}``), ``GET|POST /_sandbox/http/config``
(the token is never shown).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

from .emulator_kit import Clock, Emulator, compact_json, json_body, optional_json, retry_after_headers, same_secret
from .platform_interface import HandlerContext, Request, Response
from .store import Store

DEFAULT_TOKEN = "sandbox-http-token"
NAME = re.compile(r"[A-Za-z0-9_-]{1,100}")
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS http_records (collection TEXT NOT NULL, id TEXT NOT NULL, body_json TEXT NOT NULL, PRIMARY KEY (collection, id))"
)


@dataclass
class SinkConfig:
    """The sink's behaviour, set by `POST /_sandbox/http/config` (reset by `POST /_sandbox/reset`)."""

    max_items: int = 100
    max_bytes: int = 1_000_000
    item_errors: bool = False
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"


class Refused(Exception):
    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.error, self.message, self.headers = status, error, message, headers or {}


def _answer(status: int, error: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, {"error": error, "message": message}, dict(headers or {}))


class HttpSinkPlatform(Emulator):
    """Routes ``/http/<collection>[/<id>|/delete]``; see the module docstring."""

    name = "http"
    schema = (_SCHEMA,)

    def __init__(self, store: Store, clock: Clock) -> None:
        super().__init__(store, clock)
        self._token = os.environ.get("SANDBOX_HTTP_TOKEN", DEFAULT_TOKEN)
        self.config = SinkConfig()

    def handle(self, req: Request, ctx: HandlerContext) -> Response:
        if not self._authenticated(req):
            return _answer(401, "unauthorized", "missing or wrong credentials")
        segs = req.segments
        try:
            if not segs or not NAME.fullmatch(segs[0]):
                raise Refused(404, "not_found", f"no route for {req.method} {req.path}")
            if len(segs) == 1 and req.method == "POST":
                return self._upsert_many(segs[0], req, ctx)
            if len(segs) == 2 and segs[1] == "delete" and req.method == "POST":
                return self._delete_many(segs[0], req, ctx)
            if len(segs) == 2 and req.method in ("PUT", "PATCH", "DELETE"):
                return self._one(segs[0], segs[1], req, ctx)
            raise Refused(404, "not_found", f"no route for {req.method} {req.path}")
        except Refused as refused:
            return _answer(refused.status, refused.error, refused.message, refused.headers)

    def _authenticated(self, req: Request) -> bool:
        expected = f"{self.config.auth_scheme} {self._token}" if self.config.auth_scheme else self._token
        return same_secret((req.header(self.config.auth_header) or "").strip(), expected)

    def fault_response(self, status: int, retry_after: int | None) -> Response:
        error = "too_many_requests" if status == 429 else "server_error"
        return _answer(status, error, f"HTTP {status} (sandbox)", retry_after_headers(retry_after))

    def reset(self) -> None:
        super().reset()
        self.config = SinkConfig()

    # ----------------------------------------------------------------- requests
    def _body(self, req: Request, ctx: HandlerContext, key: str | None) -> Any:
        if len(req.body) > self.config.max_bytes:
            raise Refused(413, "too_large", f"the body is {len(req.body)} bytes; at most {self.config.max_bytes} per request")
        body = json_body(req, lambda reason: Refused(400, "malformed_json", f"the body is not valid JSON: {reason}"))
        if key is None:
            if not isinstance(body, dict):
                raise Refused(400, "invalid_body", "the body must be a JSON object")
            return body
        items = body.get(key) if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise Refused(400, "invalid_body", f'the body must be an object with a list "{key}"')
        ctx.items_received = len(items)
        if len(items) > self.config.max_items:
            raise Refused(413, "too_many_items", f"{len(items)} items; at most {self.config.max_items} per request")
        self._throttle(ctx, len(items))
        return items

    @staticmethod
    def _throttle(ctx: HandlerContext, items: int) -> None:
        retry_after = ctx.throttle("http", items)
        if retry_after is not None:
            raise Refused(429, "too_many_requests", "rate limit", retry_after_headers(retry_after))

    def _refusals(self, ids: list[str], ctx: HandlerContext) -> list[dict[str, Any]]:
        """The items the faults refuse; refused whole unless item errors are on."""
        errors = [
            {"index": i, "id": item_id, "message": f"item rejected by the platform (sandbox fault {ctx.rejection(item_id)})"}
            for i, item_id in enumerate(ids)
            if ctx.rejection(item_id)
        ]
        if errors and not self.config.item_errors:
            first = errors[0]
            raise Refused(400, "invalid_item", f"items[{first['index']}] (id {compact_json(first['id'])}): {first['message']}")
        return errors

    def _upsert_many(self, collection: str, req: Request, ctx: HandlerContext) -> Response:
        items = self._body(req, ctx, "items")
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
                raise Refused(400, "invalid_item", f'items[{index}]: an object with a non-empty string "id"')
        errors = self._refusals([item["id"] for item in items], ctx)
        refused = {e["index"] for e in errors}
        kept = [(collection, item["id"], compact_json(item)) for i, item in enumerate(items) if i not in refused]
        with self.store.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO http_records VALUES (?,?,?)", kept)
        ctx.items_applied = len(kept)
        return Response(207, {"stored": len(kept), "errors": errors}) if errors else Response(200, {"stored": len(kept)})

    def _delete_many(self, collection: str, req: Request, ctx: HandlerContext) -> Response:
        ids = self._body(req, ctx, "ids")
        if not all(isinstance(i, str) and i for i in ids):
            raise Refused(400, "invalid_item", '"ids" must hold non-empty strings')
        errors = self._refusals(ids, ctx)
        refused = {e["index"] for e in errors}
        with self.store.transaction() as db:
            deleted = sum(
                db.execute("DELETE FROM http_records WHERE collection=? AND id=?", (collection, i)).rowcount
                for n, i in enumerate(ids)
                if n not in refused
            )
        ctx.items_applied = deleted
        return Response(207, {"deleted": deleted, "errors": errors}) if errors else Response(200, {"deleted": deleted})

    def _one(self, collection: str, item_id: str, req: Request, ctx: HandlerContext) -> Response:
        ctx.items_received = 1
        self._throttle(ctx, 1)
        body = self._body(req, ctx, None) if req.method != "DELETE" else None
        if ctx.rejection(item_id):
            raise Refused(422, "invalid_item", f"id {compact_json(item_id)}: item rejected by the platform (sandbox fault {ctx.rejection(item_id)})")
        with self.store.transaction() as db:
            row = db.execute("SELECT body_json FROM http_records WHERE collection=? AND id=?", (collection, item_id)).fetchone()
            if req.method == "DELETE":
                if row is None:
                    raise Refused(404, "not_found", f"no record {compact_json(item_id)} in {collection}")
                db.execute("DELETE FROM http_records WHERE collection=? AND id=?", (collection, item_id))
                ctx.items_applied = 1
                return Response(204)
            stored = {**(json.loads(row[0]) if row and req.method == "PATCH" else {}), **(body or {})}
            db.execute("INSERT OR REPLACE INTO http_records VALUES (?,?,?)", (collection, item_id, compact_json(stored)))
        ctx.items_applied = 1
        return Response(200, {"id": item_id})

    # ----------------------------------------------------------------- admin (no auth)
    def admin(self, req: Request, segs: list[str]) -> Response:
        if segs == ["config"] and req.method in ("GET", "POST"):
            if req.method == "POST":
                try:
                    changes = optional_json(req)
                    self.config = SinkConfig(**{**asdict(self.config), **changes})
                except (ValueError, TypeError) as exc:
                    return _answer(400, "invalid_config", f"{exc}; knobs: {', '.join(asdict(self.config))}")
            return Response(200, asdict(self.config))
        if segs == ["collections"] and req.method == "GET":
            with self.store.transaction() as db:
                rows = db.execute("SELECT collection, COUNT(*) FROM http_records GROUP BY collection ORDER BY collection").fetchall()
            return Response(200, {"collections": dict(rows)})
        if len(segs) == 2 and segs[1] == "records" and req.method == "GET":
            with self.store.transaction() as db:
                rows = db.execute("SELECT id, body_json FROM http_records WHERE collection=? ORDER BY id", (segs[0],)).fetchall()
            return Response(200, {"records": {item_id: json.loads(body) for item_id, body in rows}})
        return _answer(404, "not_found", f"no http admin route for {req.method} {req.path}")
