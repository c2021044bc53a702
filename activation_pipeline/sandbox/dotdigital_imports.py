"""Dotdigital's v3 asynchronous imports and its insight data service, for the emulator in :mod:`.dotdigital`.

:class:`ImportJobs` is what both v3 import services share: an import is applied when it is
submitted; its status answers ``NotFinished`` (insight: ``NotStarted``) ``polls_before_finished``
times, then ``final_status`` with the report; at most ``max_active_contact_imports`` /
``max_active_insight_imports`` count as active (429 beyond) until their final status was read or
``active_import_seconds`` passed on the sandbox's clock. :class:`InsightData` is
``PUT /insightData/v3/import``, ``DELETE /insightData/v3/accounts/{collection}/deleteRecords`` and
``GET /insightData/v3/account/{collection}/{key}``: collections are created by an import,
contact-scoped records need an existing contact, and a drawn ``reject_ids`` / ``reject_rate`` key
fails in the report (``failureReason`` ``Unknown``).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from typing import Any

from .dotdigital_validation import DotdigitalSettings, insight_import, json_failure, v3_error
from .emulator_kit import Clock
from .platform_interface import HandlerContext, Request, Response, parse_json
from .store import Store

IMPORT_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS dd_imports (id TEXT PRIMARY KEY, service TEXT NOT NULL, polls_left INTEGER NOT NULL, "
    "created REAL NOT NULL, report_json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dd_collections (name TEXT PRIMARY KEY COLLATE NOCASE, scope TEXT NOT NULL, type TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dd_insight (collection TEXT NOT NULL COLLATE NOCASE, owner INTEGER NOT NULL, key TEXT NOT NULL, "
    "json TEXT NOT NULL, PRIMARY KEY (collection, owner, key))",  # owner 0: account scope, else the contact id
)


class ImportJobs:
    """The asynchronous jobs of ``PUT /contacts/v3/import`` and ``PUT /insightData/v3/import``."""

    def __init__(self, store: Store, clock: Clock, settings: Callable[[], DotdigitalSettings]) -> None:
        self.store, self.clock, self._settings = store, clock, settings

    def check_capacity(self, db: sqlite3.Connection, service: str) -> None:
        """429 when ``service`` already runs as many imports as the account may."""
        settings = self._settings()
        limit = settings.max_active_contact_imports if service == "contacts" else settings.max_active_insight_imports
        active = db.execute(
            "SELECT count(*) FROM dd_imports WHERE service = ? AND polls_left >= 0 AND created > ?",
            (service, self.clock.time() - settings.active_import_seconds),
        ).fetchone()[0]
        if active >= limit:
            code = "tooManyActiveImports" if service == "contacts" else "tooManyConcurrentImports"
            error = v3_error(
                429,
                service,
                code,
                "Your import request cannot be accepted as too many imports are being "
                "processed for your account. Please wait for an import to complete and then resubmit.",
            )
            raise error

    def start(self, db: sqlite3.Connection, service: str, report: dict[str, Any]) -> Response:
        """Record an import already applied, whose ``report`` its status shows once finished; 202 ``{importId}``."""
        import_id = str(uuid.uuid4())
        db.execute(
            "INSERT INTO dd_imports VALUES (?, ?, ?, ?, ?)",
            (import_id, service, self._settings().polls_before_finished, self.clock.time(), json.dumps(report)),
        )
        return Response(202, {"importId": import_id})

    def status(self, service: str, import_id: str) -> Response:
        with self.store.transaction() as db:
            row = db.execute("SELECT polls_left, report_json FROM dd_imports WHERE id = ? AND service = ?", (import_id, service)).fetchone()
            if row is None:
                raise v3_error(404, service, "importNotFound", f"The import request '{import_id}' could not be found!")
            db.execute("UPDATE dd_imports SET polls_left = polls_left - 1 WHERE id = ?", (import_id,))
        if row[0] > 0:
            return Response(200, {"importId": import_id, "status": "NotFinished" if service == "contacts" else "NotStarted"})
        status = self._settings().final_status
        if status != "Finished":
            return Response(200, {"importId": import_id, "status": status})
        return Response(200, {"importId": import_id, "status": status, **json.loads(row[1])})


class InsightData:
    """The insight data endpoints; imports go through :class:`ImportJobs`."""

    def __init__(self, store: Store, jobs: ImportJobs) -> None:
        self.store, self.jobs = store, jobs

    def import_records(self, req: Request, ctx: HandlerContext) -> Response:
        name, scope, kind, records = insight_import(parse_json(req.body))
        ctx.items_received = len(records)
        failures: list[dict[str, Any]] = []
        with self.store.transaction() as db:
            self.jobs.check_capacity(db, "insightData")
            existing = db.execute("SELECT scope FROM dd_collections WHERE name = ?", (name,)).fetchone()
            if existing and existing[0] != scope:
                raise v3_error(400, "insightData", "badRequest", f"Collection '{name}' is {existing[0]} scoped", "collectionScope")
            db.execute("INSERT OR IGNORE INTO dd_collections VALUES (?, ?, ?)", (name, scope, kind))
            seen: set[tuple[int, str]] = set()
            for record in records:
                key, owner = str(record["key"]), 0
                reason = json_failure(record["json"])
                identity = record.get("contactIdentity") or {}
                if reason is None and scope == "contact":
                    owner, reason = self._owner(db, identity)
                if reason is None and (owner, key) in seen:
                    reason = ("DuplicateKey", f"Key '{key}' appears twice in this import")
                rejected_by = ctx.rejection(key) if reason is None else None
                if rejected_by:
                    reason = ("Unknown", f"Record rejected by the platform (sandbox fault {rejected_by})")
                if reason:
                    owner_json = {"ownerType": scope, **({"contactIdentity": identity} if scope == "contact" else {})}
                    failures.append(
                        {"collectionOwner": owner_json, "failureReason": reason[0], "details": [reason[1]], "key": key, "json": record["json"]}
                    )
                    continue
                seen.add((owner, key))
                db.execute("INSERT OR REPLACE INTO dd_insight VALUES (?, ?, ?, ?)", (name, owner, key, json.dumps(record["json"], sort_keys=True)))
            ctx.items_applied = len(records) - len(failures)
            report: dict[str, Any] = {
                "collectionName": name,
                "summary": {"totalRecords": len(records), "totalImported": len(records) - len(failures), "totalRejected": len(failures)},
            }
            if failures:
                report["failures"] = failures
            return self.jobs.start(db, "insightData", report)

    @staticmethod
    def _owner(db: sqlite3.Connection, identity: dict[str, Any]) -> tuple[int, tuple[str, str] | None]:
        kind, value = identity.get("identifier"), identity.get("value")
        column = {"email": "email", "mobileNumber": "mobile", "contactId": "id"}.get(str(kind))
        if column is None or value is None:
            return 0, ("InvalidContactIdentifier", f"'{kind}' is not a contact identifier")
        row = db.execute(f"SELECT id FROM dd_contacts WHERE {column} = ?", (value,)).fetchone()
        if row is None:
            reason = "ContactEmailDoesNotExist" if kind == "email" else "ContactIdDoesNotExist"
            return 0, (reason, f"No contact with {kind} '{value}'")
        return int(row[0]), None

    def delete_records(self, collection: str, req: Request) -> Response:
        body = parse_json(req.body)
        keys = body.get("keys") if isinstance(body, dict) else None
        if not isinstance(keys, list) or not 1 <= len(keys) <= 5000 or not all(isinstance(k, str) for k in keys):
            raise v3_error(400, "insightData", "noRecordsSpecified", "You must specify 1 to 5000 keys of records to delete")
        with self.store.transaction() as db:
            found = db.execute("SELECT scope FROM dd_collections WHERE name = ?", (collection,)).fetchone()
            if found is None or found[0] != "account":
                raise v3_error(404, "insightData", "collectionNotFound", "The collection could not be found", collection)
            missing = [
                k for k in keys if db.execute("DELETE FROM dd_insight WHERE collection = ? AND owner = 0 AND key = ?", (collection, k)).rowcount == 0
            ]
        return Response(
            200,
            {"summary": {"totalRecords": len(keys), "totalDeleted": len(keys) - len(missing), "totalNotFound": len(missing)}, "notFound": missing},
        )

    def get_record(self, collection: str, key: str) -> Response:
        with self.store.transaction() as db:
            row = db.execute("SELECT json FROM dd_insight WHERE collection = ? AND owner = 0 AND key = ?", (collection, key)).fetchone()
        if row is None:
            raise v3_error(404, "insightData", "recordNotFound", "The record could not be found", key)
        return Response(200, {"key": key, "json": json.loads(row[0])})

    @staticmethod
    def state(db: sqlite3.Connection) -> dict[str, Any]:
        """Every collection with its records, by owner (``account`` or the contact's email, else mobile)."""
        emails = {i: e or m for i, e, m in db.execute("SELECT id, email, mobile FROM dd_contacts")}
        insight: dict[str, Any] = {}
        for name, scope, kind in db.execute("SELECT name, scope, type FROM dd_collections ORDER BY name").fetchall():
            records: dict[str, Any] = {}
            for owner, key, doc in db.execute("SELECT owner, key, json FROM dd_insight WHERE collection = ? ORDER BY owner, key", (name,)):
                records.setdefault("account" if owner == 0 else emails.get(owner, str(owner)), {})[key] = json.loads(doc)
            insight[name] = {"scope": scope, "type": kind, "records": records}
        return insight
