"""Dotdigital's rules and bodies: the rules data-field names follow (checked at config load), the
rules each record's values follow (checked before sending), the bodies of the import requests, and
reading the platform's answers (error bodies, import reports). What ``object`` and ``options`` mean
is the target model (``target.py``).

Which rules are verified and which are chosen here is set out in the docstring of ``client.py``
and in docs/platforms/dotdigital.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import requests

from activation_pipeline.platforms.base import (
    E164_DIGITS,
    PlatformError,
    Record,
    TargetError,
    answer_error,
    email_address_problem,
    non_finite_number,
)
from activation_pipeline.platforms.dotdigital.target import CONTACT_INSIGHT, LIST, OBJECT_PATTERN, DotdigitalTarget
from activation_pipeline.platforms.http import body_parts, error_text, json_object, json_value

FIELD_PATTERN = r"^[A-Za-z0-9_]+$"
FIELD_RULE = "letters, digits and underscores only"
MAX_DATA_FIELD_NAME = 20
MAX_TEXT_VALUE = 255  # a Text data field holds at most 255 characters
STANDARD_FIELDS = frozenset({"FIRSTNAME", "LASTNAME", "FULLNAME", "GENDER", "POSTCODE"})
DATA_FIELD_TYPES = {"string": "String", "integer": "Numeric", "float": "Numeric", "date": "Date", "bool": "Boolean"}
MOBILE = re.compile(rf"^\+?{E164_DIGITS}$")  # E.164, the leading + optional (the spec's examples omit it)


def data_field_name(name: str) -> str:
    """Dotdigital data-field names are case-insensitive; they are created and sent in upper case."""
    return name.upper()


# --- config-time checks (PlatformSpec.activation_problem) ------------------------------------
def activation_problem(activation: Any) -> tuple[str, str] | None:
    """(field, problem) when an activation cannot work against Dotdigital; checked at config load after the
    target model (``DotdigitalTarget.parse``) took its object and options."""
    if not re.fullmatch(OBJECT_PATTERN, activation.object):
        return None  # object_pattern reports it (an unreplaced {scope} included)
    try:
        target = DotdigitalTarget.parse(activation.object, activation.options)
    except TargetError as refused:
        return refused.field, str(refused)
    if target.kind == LIST:
        return _data_field_problem(activation)
    if target.kind == CONTACT_INSIGHT and target.contact_email not in activation.mapping:
        return "options.contact_email", (f"names the mapped field holding the contact's email ({target.contact_email!r} is not under mapping)")
    return None


def _data_field_problem(activation: Any) -> tuple[str, str] | None:
    seen: dict[str, str] = {}
    for name in [*activation.mapping, *activation.custom_attributes]:
        where = f"mapping.{name}" if name in activation.mapping else "custom_attributes"
        if len(name) > MAX_DATA_FIELD_NAME:
            return where, (f"{name!r} has {len(name)} characters; Dotdigital data-field names have at most {MAX_DATA_FIELD_NAME} ({FIELD_RULE})")
        upper = data_field_name(name)
        if upper in seen:
            return where, (f"{name!r} clashes with {seen[upper]!r}: Dotdigital data-field names are unique case-insensitively")
        seen[upper] = name
    return None


# --- record checks ------------------------------------------------------------------------------
def identifier_problem(kind: str, value: str | None) -> str | None:
    if value is None or not str(value).strip():
        return f"no {kind}: the identifier is empty"
    if kind == "email":
        return email_address_problem(value)
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
def contact_import_body(target: DotdigitalTarget, list_id: int, records: list[Record]) -> dict[str, Any]:
    """``PUT /contacts/v3/import``: each contact matched by its identifier and added to the list."""
    return {
        "mergeOption": target.merge_option,
        "contacts": [
            {
                "matchIdentifier": target.match_identifier,
                "identifiers": {target.match_identifier: r.identifier},
                "dataFields": {data_field_name(n): json_value(v) for n, v in r.fields.items()},  # null clears a field
                "lists": [list_id],
            }
            for r in records
        ],
    }


def insight_import_body(target: DotdigitalTarget, collection: str, records: list[Record]) -> dict[str, Any]:
    """``PUT /insightData/v3/import``: account-scoped records, or contact-scoped ones with their contact's email."""
    scope = target.scope
    out = []
    for r in records:
        item: dict[str, Any] = {"key": r.identifier, "json": {n: json_value(v) for n, v in r.fields.items() if v is not None}}
        if scope == "contact":
            item["contactIdentity"] = {"identifier": "email", "value": r.fields.get(target.contact_email)}
        out.append(item)
    return {"collectionName": collection, "collectionScope": scope, "collectionType": target.collection_type, "records": out}


# --- answers ------------------------------------------------------------------------------------
def error_message(response: requests.Response, scrub: Callable[[str], str] = lambda text: text) -> str:
    """v3 ``{"errorCode", "description", "details"}`` as Dotdigital's SDK words it, ``<errorCode> - <description>``
    (github.com/dotmailer/dotdigital-php ``src/Exception/ResponseValidationException.php``) with the details in
    brackets; v2 ``{"message"}`` and anything else as the kit reads it. Scrubbed before it is cut."""
    body = json_object(response)
    if not body.get("errorCode"):
        return error_text(response, scrub)
    details = "; ".join(body_parts({"details": body.get("details")}))
    said = f"{body['errorCode']} - {body.get('description', '')}" + (f" ({details})" if details else "")
    return scrub(f"HTTP {response.status_code}: {said}")[:500]


def names_error(response: requests.Response, code: str) -> bool:
    """Whether the answer names this error code anywhere (``ERROR_ADDRESSBOOK_DUPLICATE``, ``collectionNotFound``):
    matched in the body's text, as the error bodies' shapes vary between v2 and v3 and between services."""
    return code in (response.text or "")


def answer_failure(response: requests.Response, what: str, scrub: Callable[[str], str]) -> PlatformError:
    """The run-stopping error for an unexpected answer, in Dotdigital's words (``CredentialsRefused`` for a 401/403)."""
    return answer_error(response.status_code, f"{what}: {error_message(response, scrub)}")
