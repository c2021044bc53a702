"""The catalogs API of the Synerise emulator (:mod:`.synerise`): ``/synerise/catalogs/bags/...``.

Bags (catalogs) with numeric ids, found by ``searchBy`` name; items upserted by ``itemKey`` and
replaced whole; ``value`` returned as a JSON string. Catalog names are letters and digits and
unique (409 on a duplicate). ``items/batch`` goes through the same batch intake as profiles
(:func:`~.synerise_validation.read_batch`: limits, whole-batch 400, per-item 207 rejections).
Admin (no auth): ``GET /_sandbox/synerise/catalogs``, ``DELETE /_sandbox/synerise/catalogs/{name}``,
``POST /_sandbox/synerise/catalogs/{name}/items`` (``{itemKey: value}``, behind the client's back).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any

from .emulator_kit import Clock, compact_json
from .platform_interface import HandlerContext, Request, Response
from .store import Store
from .synerise_validation import CATALOG_NAME_RE, SyneriseError, SyneriseSettings, batch_answer, catalog_item, read_batch, read_json

CATALOG_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS synerise_catalogs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS synerise_items (id INTEGER PRIMARY KEY AUTOINCREMENT, catalog_id INTEGER NOT NULL, "
    "item_key TEXT NOT NULL, value_json TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT, "
    "UNIQUE (catalog_id, item_key))",
)

Handler = Callable[..., Response]


class SyneriseCatalogs:
    """Bags and their items; the tables are created and emptied by :class:`~.synerise.SynerisePlatform`."""

    def __init__(self, store: Store, clock: Clock, settings: Callable[[], SyneriseSettings]) -> None:
        self.store, self.clock, self._settings = store, clock, settings

    def route(self, method: str, rest: list[str]) -> tuple[Handler, tuple[Any, ...]] | None:
        """The handler of ``/catalogs/bags/<rest>`` and its arguments after ``(req, ctx)``; None when unknown."""
        if not rest:
            return {"GET": (self._list_bags, ()), "POST": (self._create_bag, ())}.get(method)
        if not rest[0].isdigit():
            return None
        bag = int(rest[0])
        if rest[1:] == [] and method == "GET":
            return self._get_bag, (bag,)
        if rest[1:] == ["items", "batch"] and method == "POST":
            return self._add_items, (bag,)
        if rest[1:] == ["items"] and method == "GET":
            return self._list_items, (bag, None)
        if len(rest) == 4 and rest[1:3] == ["items", "itemKey"] and method == "GET":
            return self._list_items, (bag, rest[3])
        return None

    @staticmethod
    def _bag(row: tuple[Any, ...]) -> dict[str, Any]:
        return {
            "id": row[0],
            "name": row[1],
            "author": "sandbox",
            "businessProfileId": 1,
            "creationDate": row[2],
            "lastModified": row[2],
            "fields": [],
            "mappings": [],
            "primaryKey": {"name": "itemKey"},
        }

    def _list_bags(self, req: Request, ctx: HandlerContext) -> Response:
        search = req.query.get("searchBy", "")
        with self.store.transaction() as db:
            rows = db.execute(
                "SELECT id, name, created_at FROM synerise_catalogs WHERE instr(lower(name), lower(?)) > 0 ORDER BY id", (search,)
            ).fetchall()
        return Response(200, {"data": [self._bag(r) for r in rows], "metaData": {"requestTime": self.clock.iso(), "totalCount": len(rows)}})

    def _create_bag(self, req: Request, ctx: HandlerContext) -> Response:
        body = read_json(req)
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not CATALOG_NAME_RE.fullmatch(name):
            raise SyneriseError(
                400,
                "name: catalog names are letters and digits only",
                [{"code": 400, "field": "name", "message": "must match [a-zA-Z0-9]+", "rejectedValue": name}],
            )
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM synerise_catalogs WHERE name=?", (name,)).fetchone():
                raise SyneriseError(409, f"Catalog {name!r} already exists", error="Conflict")
            cursor = db.execute("INSERT INTO synerise_catalogs (name, created_at) VALUES (?,?)", (name, self.clock.iso()))
            row = db.execute("SELECT id, name, created_at FROM synerise_catalogs WHERE id=?", (cursor.lastrowid,)).fetchone()
        return Response(200, {"data": self._bag(row), "metaData": {"requestTime": self.clock.iso(), "totalCount": 1}})

    @staticmethod
    def _bag_row(db: sqlite3.Connection, bag: int) -> tuple[Any, ...]:
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
        accepted, rejected = read_batch(req, ctx, self._settings(), catalog_item, lambda pair: ("itemKey", pair[0]))
        with self.store.transaction() as db:
            self._bag_row(db, bag)
            for _, (key, value) in accepted:
                self._upsert_item(db, bag, key, value)
        ctx.items_applied = len(accepted)
        return batch_answer(200, True, rejected, req.path, self.clock.iso())

    def _upsert_item(self, db: sqlite3.Connection, bag: int, key: str, value: dict[str, Any]) -> None:
        db.execute(
            "INSERT INTO synerise_items (catalog_id, item_key, value_json, created_at) VALUES (?,?,?,?) "
            "ON CONFLICT (catalog_id, item_key) DO UPDATE SET value_json=excluded.value_json, updated_at=excluded.created_at",
            (bag, key, compact_json(value), self.clock.iso()),
        )

    def _list_items(self, req: Request, ctx: HandlerContext, bag: int, key: str | None) -> Response:
        with self.store.transaction() as db:
            row = self._bag_row(db, bag)
            sql = "SELECT id, item_key, value_json, created_at, updated_at FROM synerise_items WHERE catalog_id=?"
            args: list[Any] = [bag]
            if key is not None or req.query.get("itemKey"):
                sql, args = sql + " AND item_key=?", [bag, key if key is not None else req.query["itemKey"]]
            limit, offset = int(req.query.get("limit") or 100), int(req.query.get("offset") or 0)
            items = db.execute(sql + " ORDER BY id LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
        described = [{"id": i[0], "itemKey": i[1], "value": i[2], "creationDate": i[3], "lastModified": i[4], "bag": self._bag(row)} for i in items]
        if key is not None:
            if not described:
                raise SyneriseError(404, f"Item {key!r} not found in catalog {bag}")
            return Response(200, {"data": described[0]})
        return Response(200, {"data": described, "metaData": {"requestTime": self.clock.iso(), "totalCount": len(described)}})

    # ----------------------------------------------------------------- admin (no auth)

    def admin(self, db: sqlite3.Connection, method: str, rest: list[str], spec: Any) -> Response | None:
        """``/_sandbox/synerise/catalogs[/<name>[/items]]``; None when no such admin route."""
        if method == "GET" and not rest:
            out: dict[str, Any] = {}
            for bag, name in db.execute("SELECT id, name FROM synerise_catalogs ORDER BY id").fetchall():
                items = db.execute("SELECT item_key, value_json FROM synerise_items WHERE catalog_id=? ORDER BY id", (bag,)).fetchall()
                out[name] = {"id": bag, "items": {k: json.loads(v) for k, v in items}}
            return Response(200, {"catalogs": out})
        if len(rest) >= 1:
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
        return None
