"""Stateless checks of Dotdigital request bodies for the emulator in :mod:`.dotdigital`, and its
run-time :class:`DotdigitalSettings`.

Shapes follow Dotdigital's OpenAPI documents (v2 swagger; v3 ``contacts-service`` and
``insight-data-service``). A whole-request problem raises :class:`DotdigitalError` (v2 bodies
``{"message": "… ERROR_CODE"}``, v3 ``{"errorCode", "description", "details"}``); per-item
problems are returned as failure entries of the import report instead.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, fields
from typing import Any

from .platform_interface import Response

DATA_FIELD_NAME = re.compile(r"[a-zA-Z0-9_-]{1,20}")  # v2 contact-data-fields spec
DATA_FIELD_TYPES = ("String", "Numeric", "Date", "Boolean")
VISIBILITIES = ("Private", "Public")
COLLECTION_NAME = re.compile(r"[-A-Za-z_][-A-Za-z0-9_]{1,255}")
COLLECTION_SCOPES = ("account", "contact")
COLLECTION_TYPES = (
    "cartInsight",
    "catalog",
    "consentInsight",
    "custom",
    "easyEditorExtensions",
    "nostoEmailCampaigns",
    "orders",
    "productCategories",
    "webInsight",
    "wishList",
)
MERGE_OPTIONS = ("overwrite", "overwriteIfNotEmpty", "overwriteIfEmpty")
MATCH_IDENTIFIER = re.compile(r"[-A-Za-z0-9_]{1,50}")
EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
MOBILE = re.compile(r"\+?[1-9][0-9]{6,14}")
MAX_TEXT = 255
MAX_LIST_NAME = 128
MAX_LISTS_PER_CONTACT = 100
MAX_DELETE_KEYS = 5000
MAX_JSON_KEY = 128  # the emulator's choice: JsonKeyTooLong beyond this


class DotdigitalError(Exception):
    """A whole-request refusal; ``v2`` picks the v2 body shape."""

    def __init__(self, status: int, code: str, description: str, *, v2: bool = False, details: list[dict[str, str]] | None = None):
        super().__init__(description)
        self.status, self.code, self.description, self.v2, self.details = status, code, description, v2, details


def v3_error(status: int, service: str, code: str, description: str, item: str | None = None) -> DotdigitalError:
    details = [{"item": item, "description": description}] if item else None
    return DotdigitalError(status, f"{service}:{code}", description, details=details)


def v2_error(status: int, code: str, text: str) -> DotdigitalError:
    return DotdigitalError(status, code, f"{text} {code}".strip(), v2=True)


@dataclass
class DotdigitalSettings:
    """Run-time settings; env ``SANDBOX_DOTDIGITAL_<NAME upper>`` or ``POST /_sandbox/dotdigital/config``."""

    polls_before_finished: int = 2  # status answers NotFinished (insight: NotStarted) this many times first
    final_status: str = "Finished"  # force Failed / RejectedByWatchdog / … to test a failed job
    max_active_contact_imports: int = 25
    max_active_insight_imports: int = 5
    unknown_data_fields: str = "reject"  # reject: a per-contact failure; ignore: dropped silently
    active_import_seconds: float = 30.0  # an unpolled import stops counting as active after this

    def update(self, spec: Any) -> None:
        if not isinstance(spec, dict):
            raise ValueError("config must be an object")
        known = {f.name: f.type for f in fields(self)}
        for name, value in spec.items():
            if name not in known:
                raise ValueError(f"unknown setting {name!r}; known: {', '.join(known)}")
            current = getattr(self, name)
            if isinstance(current, (int, float)) and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"{name} must be a number")
            if isinstance(current, str) and not isinstance(value, str):
                raise ValueError(f"{name} must be a string")
            setattr(self, name, type(current)(value))
        if self.unknown_data_fields not in ("reject", "ignore"):
            raise ValueError("unknown_data_fields must be reject or ignore")


# --- v2 bodies ---------------------------------------------------------------------------------
def address_book(body: Any) -> dict[str, str]:
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not body["name"].strip():
        raise v2_error(400, "ERROR_PARAMETER_INVALID", "Name is required.")
    if len(body["name"]) > MAX_LIST_NAME:
        raise v2_error(400, "ERROR_PARAMETER_INVALID", f"Name may not exceed {MAX_LIST_NAME} characters.")
    visibility = body.get("visibility", "Private")
    if visibility not in VISIBILITIES:
        raise v2_error(400, "ERROR_PARAMETER_INVALID", "Visibility must be Private or Public.")
    return {"name": body["name"], "visibility": visibility}


def data_field(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not DATA_FIELD_NAME.fullmatch(body["name"]):
        raise v2_error(400, "ERROR_DATAFIELD_INVALID", "Data field names have 1 to 20 letters, digits, hyphens or underscores.")
    if body.get("type") not in DATA_FIELD_TYPES:
        raise v2_error(400, "ERROR_DATAFIELD_INVALID", f"Type must be one of {', '.join(DATA_FIELD_TYPES)}.")
    if body.get("visibility", "Private") not in VISIBILITIES:
        raise v2_error(400, "ERROR_DATAFIELD_INVALID", "Visibility must be Private or Public.")
    return {"name": body["name"], "type": body["type"], "visibility": body.get("visibility", "Private"), "defaultValue": body.get("defaultValue")}


def contact_ids(body: Any) -> list[int]:
    if not isinstance(body, list) or not body or not all(isinstance(i, int) and not isinstance(i, bool) for i in body):
        raise v2_error(400, "ERROR_PARAMETER_INVALID", "The body must be a non-empty array of contact ids.")
    return body


# --- v3 contact import -------------------------------------------------------------------------
def contact_import(body: Any) -> tuple[str, list[dict[str, Any]]]:
    """(mergeOption, contacts) of ``PUT /contacts/v3/import``; shape errors refuse the whole request."""
    if not isinstance(body, dict):
        raise v3_error(400, "contacts", "badJson", "The request JSON is badly formed")
    merge = body.get("mergeOption", "overwrite")
    if merge not in MERGE_OPTIONS:
        raise v3_error(400, "contacts", "badRequest", f"mergeOption must be one of {', '.join(MERGE_OPTIONS)}", "mergeOption")
    contacts = body.get("contacts")
    if not isinstance(contacts, list) or not contacts:
        raise v3_error(400, "contacts", "noContactsSpecified", "At least one contact must be specified", "contacts")
    for index, contact in enumerate(contacts):
        where = f"contacts[{index}]"
        if not isinstance(contact, dict):
            raise v3_error(400, "contacts", "badRequest", "A contact must be an object", where)
        if not isinstance(contact.get("matchIdentifier"), str) or not MATCH_IDENTIFIER.fullmatch(contact["matchIdentifier"]):
            raise v3_error(400, "contacts", "badRequest", "The MatchIdentifier field is required", f"{where}.matchIdentifier")
        if not isinstance(contact.get("identifiers"), dict) or not contact["identifiers"]:
            raise v3_error(400, "contacts", "badRequest", "The Identifiers field is required", f"{where}.identifiers")
        if "dataFields" in contact and not isinstance(contact["dataFields"], dict):
            raise v3_error(400, "contacts", "badRequest", "dataFields must be an object", f"{where}.dataFields")
        lists = contact.get("lists", [])
        if (
            not isinstance(lists, list)
            or len(lists) > MAX_LISTS_PER_CONTACT
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in lists)
        ):
            raise v3_error(400, "contacts", "badRequest", "lists must be 1 to 100 list ids", f"{where}.lists")
    return merge, contacts


def identifier_failure(kind: str, value: Any) -> dict[str, str] | None:
    if not isinstance(value, str) or not value:
        return {"failureCode": "invalidIdentifier", "description": f"Missing value for '{kind}'"}
    if kind == "email" and not (len(value) <= 254 and EMAIL.fullmatch(value)):
        return {"failureCode": "invalidEmail", "description": "Invalid value for 'email'"}
    if kind == "mobileNumber" and not MOBILE.fullmatch(value):
        return {"failureCode": "invalidMobileNumber", "description": "Invalid value for 'mobileNumber'"}
    return None


def data_field_failure(name: str, kind: str, value: Any) -> dict[str, str] | None:
    """Whether ``value`` fits a data field of type ``kind`` (null always does: it clears the field)."""
    problem = None
    if value is None:
        return None
    if kind == "String" and (not isinstance(value, str) or len(value) > MAX_TEXT):
        problem = f"expects text of at most {MAX_TEXT} characters"
    elif kind == "Numeric" and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        problem = "expects a number"
    elif kind == "Boolean" and not isinstance(value, bool):
        problem = "expects true or false"
    elif kind == "Date" and not _is_date(value):
        problem = "expects an ISO 8601 date"
    if problem:
        return {"failureCode": "invalidDataFieldValue", "description": f"Data field '{name}' {problem}"}
    return None


def _is_date(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False


# --- v3 insight data ---------------------------------------------------------------------------
def insight_import(body: Any) -> tuple[str, str, str, list[dict[str, Any]]]:
    if not isinstance(body, dict):
        raise v3_error(400, "insightData", "badJson", "The request JSON is badly formed")
    name, scope, kind, records = (body.get(k) for k in ("collectionName", "collectionScope", "collectionType", "records"))
    if not isinstance(name, str) or not COLLECTION_NAME.fullmatch(name):
        raise v3_error(400, "insightData", "badRequest", "collectionName is invalid", "collectionName")
    if scope not in COLLECTION_SCOPES:
        raise v3_error(400, "insightData", "badRequest", "collectionScope must be account or contact", "collectionScope")
    if kind not in COLLECTION_TYPES:
        raise v3_error(400, "insightData", "badRequest", "collectionType is invalid", "collectionType")
    if not isinstance(records, list) or not records:
        raise v3_error(400, "insightData", "noRecordsSpecified", "You must specify at least one record", "records")
    for index, record in enumerate(records):
        where = f"records[{index}]"
        if not isinstance(record, dict) or not isinstance(record.get("key"), (str, int)) or isinstance(record.get("key"), bool):
            raise v3_error(400, "insightData", "badRequest", "Each record needs a key", f"{where}.key")
        if not isinstance(record.get("json"), dict):
            raise v3_error(400, "insightData", "badRequest", "Each record needs a json object", f"{where}.json")
        identity = record.get("contactIdentity")
        if scope == "contact" and (not isinstance(identity, dict) or not isinstance(identity.get("identifier"), str)):
            raise v3_error(
                400, "insightData", "badRequest", "A contact scoped collection requires a contactIdentity on each record", f"{where}.contactIdentity"
            )
    return name, scope, kind, records


def json_failure(document: dict[str, Any]) -> tuple[str, str] | None:
    """(failureReason, detail) when a record's json cannot be stored."""

    def walk(value: Any, path: str, in_array: bool) -> tuple[str, str] | None:
        if isinstance(value, dict):
            for key, item in value.items():
                if len(key) > MAX_JSON_KEY:
                    return "JsonKeyTooLong", f"Key '{key[:40]}…' exceeds {MAX_JSON_KEY} characters"
                found = walk(item, f"{path}.{key}" if path else key, False)
                if found:
                    return found
        elif isinstance(value, list):
            if in_array:
                return "JsonContainsNestedArray", f"'{path}' is an array inside an array"
            for item in value:
                found = walk(item, path, True)
                if found:
                    return found
        elif isinstance(value, float) and not math.isfinite(value):
            return "InvalidJson", f"'{path}' is not a finite number"
        return None

    return walk(document, "", False)


def error_response(exc: DotdigitalError, headers: dict[str, str] | None = None) -> Response:
    """The answer carrying a refusal: v2 ``{"message"}``, v3 ``{"errorCode", "description", "details"}``."""
    if exc.v2:
        return Response(exc.status, {"message": exc.description}, dict(headers or {}))
    body: dict[str, Any] = {"errorCode": exc.code, "description": exc.description}
    if exc.details:
        body["details"] = exc.details
    return Response(exc.status, body, dict(headers or {}))
