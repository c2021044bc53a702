"""Emulator of Dotdigital's v2 lists/data fields and v3 contacts and insight data, under ``/dotdigital/...``.

Real base URL: ``https://{r1|r2|r3}-api.dotdigital.com``; here ``{sandbox}/dotdigital``. HTTP Basic
auth with env ``SANDBOX_DOTDIGITAL_API_USER`` (default ``apiuser-sandbox@apiconnector.com``) and
``SANDBOX_DOTDIGITAL_API_PASSWORD`` (default ``sandbox-dotdigital-password``). Body checks live in
:mod:`.dotdigital_validation`, the async import jobs and the insight data service in
:mod:`.dotdigital_imports`; this module holds routing, auth, lists, data fields and contacts; the admin routes: :mod:`.dotdigital_admin`.

Endpoints (shapes from Dotdigital's published OpenAPI documents, developer.dotdigital.com):
``GET/POST /v2/address-books`` (``select`` <= 1000, ``skip``), ``GET /v2/address-books/{id}``,
``GET /v2/address-books/{id}/contacts``, ``POST /v2/address-books/{id}/contacts/delete`` (contact ids
-> 202 ``{id, status: "Started"}``), ``DELETE /v2/address-books/{id}/contacts/{contactId}`` (204),
``GET/POST /v2/data-fields``; ``PUT /contacts/v3/import`` -> 202 ``{importId}``,
``GET /contacts/v3/import/{id}``, ``GET /contacts/v3/{identifier}/{value}``;
``PUT /insightData/v3/import`` -> 202 ``{importId}``, ``GET /insightData/v3/import/{id}``,
``DELETE /insightData/v3/accounts/{collection}/deleteRecords`` ``{keys}`` -> 200 ``{summary, notFound}``,
``GET /insightData/v3/account/{collection}/{key}``.

Verified (docs/platforms/dotdigital.md and the OpenAPI documents): Basic auth; 401 body
``{"message": "Authorization has been denied for this request."}``; duplicate list names
``ERROR_ADDRESSBOOK_DUPLICATE``; data-field names ``[a-zA-Z0-9_-]{1,20}``, unique case-insensitively
(``ERROR_NON_UNIQUE_DATAFIELD``), types String/Numeric/Date/Boolean; v3 import bodies and report shape
(``created``/``updated``/``failures`` with ``failureCode``/``description``), statuses; 25 active contact
imports and 5 insight imports, beyond which 429 with ``errorCode``; collections auto-created by an
import; contact-scoped records need ``contactIdentity`` and an existing contact
(``ContactEmailDoesNotExist``); errors v3 ``{errorCode, description, details}``, v2 ``{message}``;
429 with ``x-ratelimit-scope``/``-limit``/``-reset``.

The emulator's own choices (configurable where marked [cfg], ``GET/POST /_sandbox/dotdigital/config``
or env ``SANDBOX_DOTDIGITAL_<NAME>``):
* an import is applied when it is submitted; its status answers ``NotFinished`` (insight:
  ``NotStarted``) [cfg] ``polls_before_finished`` times (default 2), then [cfg] ``final_status``
  (``Finished``; a failure status applies nothing). Insight imports end ``Finished`` (not the schema's
  ``Complete``: the spec's own example and the Magento extension say ``Finished``);
* an import counts as active until its final status was read or [cfg] ``active_import_seconds`` passed;
* per-contact failures: ``invalidEmail``, ``invalidMobileNumber``, ``duplicateIdentifier`` (the same
  identifier twice in one import), ``invalidDataField`` (a key that is not a data field; [cfg]
  ``unknown_data_fields`` reject|ignore), ``invalidDataFieldValue`` (a value that does not fit the
  field's type, text over 255 characters); an unknown list id refuses the whole import (400);
* data-field keys of an import match case-insensitively; the stored contact keeps the field's name;
* the standard fields FIRSTNAME, LASTNAME, FULLNAME, GENDER, POSTCODE (String) exist from the start;
* a removal from a list (bulk or single) is applied at once; the contact stays in the account;
* rate limiting: the sandbox's shared limiter, keyed ``dotdigital:<api user>``; every call counts;
  429 carries ``Retry-After`` and ``x-ratelimit-reset`` (seconds), ``x-ratelimit-limit``,
  ``x-ratelimit-scope: account``;
* ``reject_ids`` / ``reject_rate`` faults: a contact whose identifier value, or an insight record whose
  key, is drawn fails in the import report (``failureCode`` ``rejected`` / ``failureReason`` ``Unknown``).

Admin (no auth): ``GET /_sandbox/dotdigital/state`` -> ``{lists, data_fields, contacts, insight}``;
``POST /_sandbox/dotdigital/contacts`` (``[{email?, mobileNumber?, dataFields?, lists?: [name]}]``),
``POST /_sandbox/dotdigital/lists`` (``[name]``), ``POST /_sandbox/dotdigital/lists/{name}/remove``
(``[email]``: take contacts out behind the client's back); ``GET/POST /_sandbox/dotdigital/config``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from typing import Any

from .dotdigital_admin import DotdigitalAdmin
from .dotdigital_imports import IMPORT_SCHEMA, ImportJobs, InsightData
from .dotdigital_validation import (
    DotdigitalError,
    DotdigitalSettings,
    address_book,
    contact_ids,
    contact_import,
    data_field,
    data_field_failure,
    error_response,
    identifier_failure,
    v2_error,
    v3_error,
)
from .emulator_kit import Clock, Emulator, basic_credentials, retry_after_headers, same_secret, settings_from_env
from .platform_interface import HandlerContext, Request, Response, parse_json
from .store import Store

DEFAULT_USER, DEFAULT_PASSWORD = "apiuser-sandbox@apiconnector.com", "sandbox-dotdigital-password"
STANDARD_FIELDS = ("FIRSTNAME", "LASTNAME", "FULLNAME", "GENDER", "POSTCODE")
DENIED = "Authorization has been denied for this request."
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS dd_lists (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE COLLATE NOCASE, visibility TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dd_data_fields (name TEXT PRIMARY KEY COLLATE NOCASE, type TEXT NOT NULL, "
    "visibility TEXT NOT NULL, default_json TEXT)",
    "CREATE TABLE IF NOT EXISTS dd_contacts (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT UNIQUE COLLATE NOCASE, "
    "mobile TEXT UNIQUE, data_json TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dd_members (list_id INTEGER NOT NULL, contact_id INTEGER NOT NULL, PRIMARY KEY (list_id, contact_id))",
)


class DotdigitalPlatform(DotdigitalAdmin, Emulator):
    """Routes ``/dotdigital/...``; see the module docstring for the contract."""

    name = "dotdigital"
    schema = _SCHEMA + IMPORT_SCHEMA

    def __init__(self, store: Store, clock: Clock) -> None:
        super().__init__(store, clock)
        self.user = os.environ.get("SANDBOX_DOTDIGITAL_API_USER", DEFAULT_USER)
        self._password = os.environ.get("SANDBOX_DOTDIGITAL_API_PASSWORD", DEFAULT_PASSWORD)
        self.settings = settings_from_env(DotdigitalSettings, self.name)
        self.jobs = ImportJobs(store, clock, lambda: self.settings)
        self.insight = InsightData(store, self.jobs)
        with store.transaction() as db:
            self._seed_standard_fields(db)

    # ----------------------------------------------------------------- plumbing
    def handle(self, req: Request, ctx: HandlerContext) -> Response:
        v2 = bool(req.segments) and req.segments[0] == "v2"
        account = self._account(req)
        retry_after = ctx.throttle(f"dotdigital:{account or 'anonymous'}")
        if retry_after is not None:
            return self.fault_response(429, retry_after)
        try:
            if account is None:
                raise DotdigitalError(401, "unauthorized", DENIED, v2=True)
            return self._route(req, ctx)
        except DotdigitalError as exc:
            return error_response(exc)
        except ValueError as exc:  # unreadable JSON
            service = "contacts" if not v2 and req.segments[:1] == ["contacts"] else "insightData"
            return error_response(v2_error(400, "ERROR_PARAMETER_INVALID", str(exc)) if v2 else v3_error(400, service, "badJson", str(exc)))

    def _route(self, req: Request, ctx: HandlerContext) -> Response:
        s, m = req.segments, req.method
        if s[:2] == ["v2", "address-books"]:
            if len(s) == 2:
                return self._list_books(req) if m == "GET" else self._create_book(req) if m == "POST" else self._not_allowed(req)
            book = self._book(s[2])
            if len(s) == 3 and m == "GET":
                return Response(200, book)
            if s[3:] == ["contacts"] and m == "GET":
                return self._book_contacts(book["id"], req)
            if s[3:] == ["contacts", "delete"] and m == "POST":
                return self._remove_members(book["id"], contact_ids(parse_json(req.body)))
            if len(s) == 5 and s[3] == "contacts" and m == "DELETE" and s[4].isdigit():
                self._remove_members(book["id"], [int(s[4])])
                return Response(204)
        elif s == ["v2", "data-fields"]:
            return self._data_fields() if m == "GET" else self._create_data_field(req) if m == "POST" else self._not_allowed(req)
        elif s[:2] == ["contacts", "v3"]:
            if s[2:] == ["import"] and m == "PUT":
                return self._import_contacts(req, ctx)
            if len(s) == 4 and s[2] == "import" and m == "GET":
                return self.jobs.status("contacts", s[3])
            if len(s) == 4 and m == "GET":
                return self._get_contact(s[2], s[3])
        elif s[:2] == ["insightData", "v3"]:
            if s[2:] == ["import"] and m == "PUT":
                return self.insight.import_records(req, ctx)
            if len(s) == 4 and s[2] == "import" and m == "GET":
                return self.jobs.status("insightData", s[3])
            if len(s) == 5 and s[2] == "accounts" and s[4] == "deleteRecords" and m == "DELETE":
                return self.insight.delete_records(s[3], req)
            if len(s) == 5 and s[2] == "account" and m == "GET":
                return self.insight.get_record(s[3], s[4])
        raise DotdigitalError(404, "notFound", f"No route for {m} {req.path}", v2=bool(s) and s[0] == "v2")

    @staticmethod
    def _not_allowed(req: Request) -> Response:
        return error_response(v2_error(405, "", f"The requested resource does not support http method '{req.method}'."))

    def fault_response(self, status: int, retry_after: int | None) -> Response:
        headers = retry_after_headers(retry_after)
        if status == 429:
            reset = str(max(1, retry_after or 1))
            headers.update({"Retry-After": reset, "x-ratelimit-reset": reset, "x-ratelimit-scope": "account", "x-ratelimit-limit": "tiered"})
            return error_response(v3_error(429, "contacts", "tooManyRequests", "Too many requests: the call rate limit was exceeded"), headers)
        return error_response(v3_error(status, "contacts", "serverError", f"Injected HTTP {status}"), headers)

    def reset(self) -> None:
        super().reset()
        with self.store.transaction() as db:
            db.execute("DELETE FROM sqlite_sequence WHERE name IN ('dd_lists', 'dd_contacts')")
            self._seed_standard_fields(db)
        self.settings = settings_from_env(DotdigitalSettings, self.name)

    @staticmethod
    def _seed_standard_fields(db: sqlite3.Connection) -> None:
        db.executemany("INSERT OR IGNORE INTO dd_data_fields VALUES (?, 'String', 'Public', NULL)", [(n,) for n in STANDARD_FIELDS])

    def _account(self, req: Request) -> str | None:
        user, password = basic_credentials(req) or ("", "")
        ok = same_secret(user, self.user) & same_secret(password, self._password)
        return user if ok else None

    # ----------------------------------------------------------------- v2 lists and data fields
    def _list_books(self, req: Request) -> Response:
        try:
            select, skip = int(req.query.get("select", 1000)), int(req.query.get("skip", 0))
        except ValueError:
            raise v2_error(400, "ERROR_PARAMETER_INVALID", "select and skip must be integers.") from None
        if not 1 <= select <= 1000 or skip < 0:
            raise v2_error(400, "ERROR_PARAMETER_INVALID", "select must be 1 to 1000 and skip at least 0.")
        with self.store.transaction() as db:
            rows = db.execute(
                "SELECT id, name, visibility, (SELECT count(*) FROM dd_members WHERE list_id = id) FROM dd_lists ORDER BY id LIMIT ? OFFSET ?",
                (select, skip),
            ).fetchall()
        return Response(200, [{"id": r[0], "name": r[1], "visibility": r[2], "contacts": r[3]} for r in rows])

    def _create_book(self, req: Request) -> Response:
        book = address_book(parse_json(req.body))
        with self.store.transaction() as db:
            try:
                cursor = db.execute("INSERT INTO dd_lists (name, visibility) VALUES (?, ?)", (book["name"], book["visibility"]))
            except sqlite3.IntegrityError:
                raise v2_error(400, "ERROR_ADDRESSBOOK_DUPLICATE", "That name is in use already, please choose another.") from None
        return Response(201, {"id": cursor.lastrowid, **book, "contacts": 0})

    def _book(self, raw_id: str) -> dict[str, Any]:
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT id, name, visibility, (SELECT count(*) FROM dd_members WHERE list_id = id) FROM dd_lists WHERE id = ?",
                (int(raw_id) if raw_id.isdigit() else -1,),
            ).fetchone()
        if row is None:
            raise v2_error(404, "ERROR_ADDRESSBOOK_NOT_FOUND", "Error:")
        return {"id": row[0], "name": row[1], "visibility": row[2], "contacts": row[3]}

    def _book_contacts(self, list_id: int, req: Request) -> Response:
        select, skip = int(req.query.get("select", 1000)), int(req.query.get("skip", 0))
        with self.store.transaction() as db:
            rows = db.execute(
                "SELECT c.id, c.email, c.data_json FROM dd_contacts c JOIN dd_members m ON m.contact_id = c.id "
                "WHERE m.list_id = ? ORDER BY c.id LIMIT ? OFFSET ?",
                (list_id, min(select, 1000), skip),
            ).fetchall()
        return Response(200, [{"id": r[0], "email": r[1], "dataFields": [{"key": k, "value": v} for k, v in json.loads(r[2]).items()]} for r in rows])

    def _remove_members(self, list_id: int, ids: list[int]) -> Response:
        with self.store.transaction() as db:
            db.executemany("DELETE FROM dd_members WHERE list_id = ? AND contact_id = ?", [(list_id, i) for i in ids])
        return Response(202, {"id": str(uuid.uuid4()), "status": "Started"})

    def _data_fields(self) -> Response:
        with self.store.transaction() as db:
            rows = db.execute("SELECT name, type, visibility, default_json FROM dd_data_fields ORDER BY name").fetchall()
        return Response(200, [{"name": r[0], "type": r[1], "visibility": r[2], "defaultValue": json.loads(r[3] or "null")} for r in rows])

    def _create_data_field(self, req: Request) -> Response:
        field = data_field(parse_json(req.body))
        with self.store.transaction() as db:
            try:
                db.execute(
                    "INSERT INTO dd_data_fields VALUES (?, ?, ?, ?)",
                    (field["name"], field["type"], field["visibility"], json.dumps(field["defaultValue"])),
                )
            except sqlite3.IntegrityError:
                raise v2_error(400, "ERROR_NON_UNIQUE_DATAFIELD", "Field already exists.") from None
        return Response(201, field)

    # ----------------------------------------------------------------- v3 contacts
    def _import_contacts(self, req: Request, ctx: HandlerContext) -> Response:
        merge, contacts = contact_import(parse_json(req.body))
        ctx.items_received = len(contacts)
        report: dict[str, Any] = {"created": [], "updated": [], "failures": []}
        with self.store.transaction() as db:
            self.jobs.check_capacity(db, "contacts")
            fields = {r[0].upper(): (r[0], r[1]) for r in db.execute("SELECT name, type FROM dd_data_fields")}
            known_lists = {r[0] for r in db.execute("SELECT id FROM dd_lists")}
            for index, contact in enumerate(contacts):
                for list_id in contact.get("lists", []):
                    if list_id not in known_lists:
                        raise v3_error(400, "contacts", "badRequest", f"List {list_id} does not exist", f"contacts[{index}].lists")
            seen: set[str] = set()
            for contact in contacts:
                kind, identifiers = contact["matchIdentifier"], contact["identifiers"]
                value = identifiers.get(kind)
                failure = (
                    identifier_failure(kind, value)
                    if kind in ("email", "mobileNumber")
                    else {"failureCode": "invalidIdentifier", "description": f"'{kind}' is not an identifier of this account"}
                )
                if failure is None and str(value).lower() in seen:
                    failure = {"failureCode": "duplicateIdentifier", "description": f"Duplicate identifier detected for {kind} '{value}'"}
                kind_of = ctx.rejection(value) if failure is None else None
                if kind_of:
                    failure = {"failureCode": "rejected", "description": f"Contact rejected by the platform (sandbox fault {kind_of})"}
                data, failure = (None, failure) if failure else self._data_fields_of(contact.get("dataFields") or {}, fields)
                if failure or data is None:
                    report["failures"].append({"matchIdentifier": kind, "identifiers": identifiers, "failures": [failure]})
                    continue
                seen.add(str(value).lower())
                contact_id, created = self._upsert_contact(db, kind, identifiers, data, merge)
                db.executemany("INSERT OR IGNORE INTO dd_members VALUES (?, ?)", [(i, contact_id) for i in contact.get("lists", [])])
                report["created" if created else "updated"].append({"contactId": contact_id, "identifiers": identifiers})
            ctx.items_applied = len(report["created"]) + len(report["updated"])
            report["summary"] = {
                "newContacts": len(report["created"]),
                "updatedContacts": len(report["updated"]),
                "globallySuppressed": 0,
                "invalidEntries": len(report["failures"]),
                "duplicateIdentifiers": sum(1 for f in report["failures"] if f["failures"][0]["failureCode"] == "duplicateIdentifier"),
            }
            return self.jobs.start(db, "contacts", report)

    def _data_fields_of(self, sent: dict[str, Any], fields: dict[str, tuple[str, str]]) -> tuple[dict[str, Any] | None, dict[str, str] | None]:
        data: dict[str, Any] = {}
        for key, value in sent.items():
            known = fields.get(key.upper())
            if known is None:
                if self.settings.unknown_data_fields == "reject":
                    return None, {"failureCode": "invalidDataField", "description": f"Data field '{key}' does not exist"}
                continue
            failure = data_field_failure(known[0], known[1], value)
            if failure:
                return None, failure
            data[known[0]] = value
        return data, None

    def _upsert_contact(self, db: sqlite3.Connection, kind: str, identifiers: dict[str, Any], data: dict[str, Any], merge: str) -> tuple[int, bool]:
        column = "email" if kind == "email" else "mobile"
        row = db.execute(f"SELECT id, data_json FROM dd_contacts WHERE {column} = ?", (identifiers[kind],)).fetchone()
        stored = json.loads(row[1]) if row else {}
        for name, value in data.items():
            if (
                merge == "overwrite"
                or (merge == "overwriteIfNotEmpty" and value not in (None, ""))
                or (merge == "overwriteIfEmpty" and stored.get(name) in (None, ""))
            ):
                if value is None:
                    stored.pop(name, None)
                else:
                    stored[name] = value
        encoded, now = json.dumps(stored, sort_keys=True), self.clock.iso("seconds")
        if row is None:
            cursor = db.execute(
                "INSERT INTO dd_contacts (email, mobile, data_json, created, updated) VALUES (?, ?, ?, ?, ?)",
                (identifiers.get("email"), identifiers.get("mobileNumber"), encoded, now, now),
            )
            assert cursor.lastrowid is not None  # sqlite3 sets it after every INSERT
            return cursor.lastrowid, True
        db.execute("UPDATE dd_contacts SET data_json = ?, updated = ? WHERE id = ?", (encoded, now, row[0]))
        return int(row[0]), False

    def _get_contact(self, kind: str, value: str) -> Response:
        if kind not in ("email", "mobileNumber", "contactId"):
            raise v3_error(400, "contacts", "invalidId", f"'{kind}' is not a contact identifier")
        column = {"email": "email", "mobileNumber": "mobile", "contactId": "id"}[kind]
        with self.store.transaction() as db:
            row = db.execute(f"SELECT id, email, mobile, data_json, created, updated FROM dd_contacts WHERE {column} = ?", (value,)).fetchone()
            if row is None:
                raise v3_error(404, "contacts", "contactNotFound", "The contact could not be found", value)
            lists = db.execute(
                "SELECT l.id, l.name FROM dd_lists l JOIN dd_members m ON m.list_id = l.id WHERE m.contact_id = ?", (row[0],)
            ).fetchall()
        identifiers = {k: v for k, v in (("email", row[1]), ("mobileNumber", row[2])) if v}
        return Response(
            200,
            {
                "contactId": row[0],
                "status": "subscribed",
                "created": row[4],
                "updated": row[5],
                "identifiers": identifiers,
                "dataFields": json.loads(row[3]),
                "lists": [{"id": i, "name": n, "status": "subscribed"} for i, n in lists],
            },
        )
