"""Dotdigital's objects as an activation sees them: what an activation's ``object`` means,
the rules its data-field names and options follow (checked at config load), the rules each
record's values follow (checked before sending), the bodies of the import requests, and
reading the platform's answers (error bodies, import reports).

Which rules are verified and which are chosen here is set out in the docstring of
``activation_pipeline.platforms.dotdigital`` (the client) and in docs/platforms/dotdigital.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from activation_pipeline.platforms.base import E164_DIGITS, EMAIL, Record, non_finite_number

# --- the contract --------------------------------------------------------------------------
LIST = "list"
ACCOUNT_INSIGHT, CONTACT_INSIGHT = "insight", "contact_insight"
COLLECTION_NAME = r"[-A-Za-z_][-A-Za-z0-9_]{1,255}"  # insight-data-service.json, schema collectionName
OBJECT_PATTERN = rf"^(list|insight:{COLLECTION_NAME}|contact_insight:{COLLECTION_NAME})$"
OBJECT_RULE = ("list (contacts in the list named after the title), insight:<collection> (account-scoped insight data) "
               "or contact_insight:<collection> (contact-scoped, e.g. orders); <collection> is an alias under the "
               "destination's settings.collections or a collection name matching ^[-A-Za-z_][-A-Za-z0-9_]{1,255}$")
FIELD_PATTERN = r"^[A-Za-z0-9_]+$"
FIELD_RULE = "letters, digits and underscores only"
MAX_DATA_FIELD_NAME = 20
MAX_TEXT_VALUE = 255  # a Text data field holds at most 255 characters
MAX_LIST_NAME = 128
STANDARD_FIELDS = frozenset({"FIRSTNAME", "LASTNAME", "FULLNAME", "GENDER", "POSTCODE"})
DATA_FIELD_TYPES = {"string": "String", "integer": "Numeric", "float": "Numeric", "date": "Date", "bool": "Boolean"}
MATCH_IDENTIFIERS = ("email", "mobileNumber")
MERGE_OPTIONS = ("overwrite", "overwriteIfNotEmpty", "overwriteIfEmpty")
COLLECTION_TYPES = ("cartInsight", "catalog", "consentInsight", "custom", "easyEditorExtensions", "nostoEmailCampaigns",
                    "orders", "productCategories", "webInsight", "wishList")
OPTIONS = ("list_id", "match_identifier", "merge_option", "collection_type", "contact_email")
LIST_OPTIONS = frozenset({"list_id", "match_identifier", "merge_option"})
INSIGHT_OPTIONS = frozenset({"collection_type", "contact_email"})
MOBILE = re.compile(rf"^\+?{E164_DIGITS}$")  # E.164, the leading + optional (the spec's examples omit it)


@dataclass(frozen=True)
class Target:
    """What an activation's ``object`` and ``options`` resolve to."""

    kind: str  # list | insight | contact_insight
    collection: str = ""  # the alias or collection name after the colon
    collection_type: str = ""
    contact_email: str = ""  # contact_insight: the platform field holding the contact's email
    match_identifier: str = "email"
    merge_option: str = "overwrite"
    list_id: int | None = None


def parse_target(obj: str, options: dict[str, Any]) -> Target:
    kind, _, collection = obj.partition(":")
    if kind == LIST:
        list_id = options.get("list_id")
        return Target(LIST, match_identifier=options.get("match_identifier", "email"),
                      merge_option=options.get("merge_option", "overwrite"), list_id=int(list_id) if list_id else None)
    default_type = "orders" if kind == CONTACT_INSIGHT else "catalog"
    return Target(kind, collection, options.get("collection_type", default_type),
                  options.get("contact_email", "email") if kind == CONTACT_INSIGHT else "")


def data_field_name(name: str) -> str:
    """Dotdigital data-field names are case-insensitive; they are created and sent in upper case."""
    return name.upper()


# --- config-time checks (PlatformSpec.activation_problem) ------------------------------------
def activation_problem(activation: Any) -> tuple[str, str] | None:
    """(field, problem) when an activation cannot work against Dotdigital; checked at config load."""
    if not re.fullmatch(OBJECT_PATTERN, activation.object):
        return None  # object_pattern reports it
    kind = activation.object.partition(":")[0]
    allowed = LIST_OPTIONS if kind == LIST else INSIGHT_OPTIONS - ({"contact_email"} if kind == ACCOUNT_INSIGHT else set())
    for option in sorted(set(activation.options) - allowed):
        return f"options.{option}", f"not an option of a Dotdigital {kind} activation; it takes {', '.join(sorted(allowed))}"
    problem = _option_problem(activation.options)
    if problem:
        return problem
    if kind == LIST:
        return _data_field_problem(activation)
    if kind == CONTACT_INSIGHT:
        if activation.operation != "upsert":
            return "operation", ("contact-scoped insight records are deleted per contact, and a record that left the "
                                 "segment carries no contact email: use upsert")
        email_field = activation.options.get("contact_email", "email")
        if email_field not in activation.mapping:
            return "options.contact_email", (f"names the mapped field holding the contact's email ({email_field!r} "
                                             f"is not under mapping)")
    return None


def _option_problem(options: dict[str, Any]) -> tuple[str, str] | None:
    if "match_identifier" in options and options["match_identifier"] not in MATCH_IDENTIFIERS:
        return "options.match_identifier", f"{options['match_identifier']!r}; allowed: {', '.join(MATCH_IDENTIFIERS)}"
    if "merge_option" in options and options["merge_option"] not in MERGE_OPTIONS:
        return "options.merge_option", f"{options['merge_option']!r}; allowed: {', '.join(MERGE_OPTIONS)}"
    if "collection_type" in options and options["collection_type"] not in COLLECTION_TYPES:
        return "options.collection_type", f"{options['collection_type']!r}; allowed: {', '.join(COLLECTION_TYPES)}"
    list_id = options.get("list_id")
    if list_id is not None and (isinstance(list_id, bool) or not isinstance(list_id, int) or list_id <= 0):
        return "options.list_id", f"{list_id!r} is not a list id (a positive integer)"
    return None


def _data_field_problem(activation: Any) -> tuple[str, str] | None:
    seen: dict[str, str] = {}
    for name in [*activation.mapping, *activation.custom_attributes]:
        where = f"mapping.{name}" if name in activation.mapping else "custom_attributes"
        if len(name) > MAX_DATA_FIELD_NAME:
            return where, (f"{name!r} has {len(name)} characters; Dotdigital data-field names have at most "
                           f"{MAX_DATA_FIELD_NAME} ({FIELD_RULE})")
        upper = data_field_name(name)
        if upper in seen:
            return where, (f"{name!r} clashes with {seen[upper]!r}: Dotdigital data-field names are unique "
                           "case-insensitively")
        seen[upper] = name
    return None


# --- record checks ------------------------------------------------------------------------------
def identifier_problem(kind: str, value: str | None) -> str | None:
    if value is None or not str(value).strip():
        return f"no {kind}: the identifier is empty"
    if kind == "email":
        return None if len(value) <= 254 and EMAIL.fullmatch(value) else f"malformed email {value!r}"
    if kind == "mobileNumber":
        return None if MOBILE.fullmatch(value) else f"mobile number {value!r} is not in E.164 format (7 to 15 digits)"
    return None if len(value) <= 256 else f"{kind} longer than 256 characters"


def value_problem(name: str, value: Any, *, data_field: bool) -> str | None:
    if value is None:
        return None
    if problem := non_finite_number(name, value):
        return problem
    if data_field:
        if isinstance(value, (list, tuple, dict)):
            return f"{name}: a data field holds text, a number, a date or a yes/no, not a {type(value).__name__}"
        if isinstance(value, str) and len(value) > MAX_TEXT_VALUE:
            return f"{name}: {len(value)} characters exceed a text data field's {MAX_TEXT_VALUE}"
        return None
    if isinstance(value, (list, tuple)) and any(isinstance(v, (list, tuple)) for v in value):
        return f"{name}: insight data cannot hold an array inside an array"
    return None


# --- bodies -------------------------------------------------------------------------------------
def wire(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [wire(v) for v in value]
    if isinstance(value, dict):
        return {k: wire(v) for k, v in value.items()}
    return value


def contact_import_body(target: Target, list_id: int, records: list[Record]) -> dict[str, Any]:
    """``PUT /contacts/v3/import``: each contact matched by its identifier and added to the list."""
    return {"mergeOption": target.merge_option, "contacts": [
        {"matchIdentifier": target.match_identifier,
         "identifiers": {target.match_identifier: r.identifier},
         "dataFields": {data_field_name(n): wire(v) for n, v in r.fields.items()},  # null clears a field
         "lists": [list_id]}
        for r in records]}


def insight_import_body(target: Target, collection: str, records: list[Record]) -> dict[str, Any]:
    """``PUT /insightData/v3/import``: account-scoped records, or contact-scoped ones with their contact's email."""
    scope = "contact" if target.kind == CONTACT_INSIGHT else "account"
    out = []
    for r in records:
        item: dict[str, Any] = {"key": r.identifier, "json": {n: wire(v) for n, v in r.fields.items() if v is not None}}
        if scope == "contact":
            item["contactIdentity"] = {"identifier": "email", "value": r.fields.get(target.contact_email)}
        out.append(item)
    return {"collectionName": collection, "collectionScope": scope, "collectionType": target.collection_type, "records": out}


# --- answers ------------------------------------------------------------------------------------
def error_message(response: Any, scrub: Any = lambda text: text) -> str:
    """v3 ``{"errorCode", "description", "details"}`` or v2 ``{"message"}``, as one line (scrubbed before cut)."""
    raw = scrub(response.text or "")
    prefix = f"HTTP {response.status_code}"
    try:
        body = json.loads(raw)
    except ValueError:
        return f"{prefix}: {raw.strip()[:300]}" if raw.strip() else prefix
    if not isinstance(body, dict):
        return f"{prefix}: {str(body)[:300]}"
    if body.get("errorCode"):
        details = "; ".join(f"{d.get('item')}: {d.get('description')}" for d in body.get("details") or [] if isinstance(d, dict))
        return (f"{prefix}: {body['errorCode']} - {body.get('description', '')}" + (f" ({details})" if details else ""))[:500]
    return f"{prefix}: {str(body.get('message') or body)[:500]}"


def contact_failures(report: dict[str, Any], kind: str) -> dict[str, str]:
    """identifier value (normalised) -> "failureCode: description" for each contact the import refused."""
    out: dict[str, str] = {}
    for failure in report.get("failures") or []:
        value = (failure.get("identifiers") or {}).get(kind)
        if value is None:
            continue
        reasons = "; ".join(f"{f.get('failureCode')}: {f.get('description')}" for f in failure.get("failures") or [])
        out[normalised(kind, str(value))] = reasons or "refused by the import (no reason given)"
    return out


def contact_successes(report: dict[str, Any], kind: str) -> set[str]:
    found = set()
    for entry in [*(report.get("created") or []), *(report.get("updated") or [])]:
        value = (entry.get("identifiers") or {}).get(kind)
        if value is not None:
            found.add(normalised(kind, str(value)))
    return found


def insight_failures(report: dict[str, Any]) -> dict[str, str]:
    """record key -> "failureReason: details" for each insight record the import refused."""
    out = {}
    for failure in report.get("failures") or []:
        details = "; ".join(str(d) for d in failure.get("details") or [])
        out[str(failure.get("key"))] = f"{failure.get('failureReason', 'Unknown')}" + (f": {details}" if details else "")
    return out


def normalised(kind: str, value: str) -> str:
    return value.strip().lower() if kind == "email" else value.strip().lstrip("+")
