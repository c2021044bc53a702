"""Yotpo's customer object (Core API v3): the fields, identity and value rules an activation
and its records are checked against, the ``customer`` body of a PATCH, and reading the
bodies Yotpo answers with (customer lists, pagination cursors, error messages).

Which of these rules are verified and which are chosen here is set out in the docstring of
``activation_pipeline/platforms/yotpo/client.py`` and in docs/platforms/yotpo.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import requests

from activation_pipeline.platforms.base import E164_DIGITS, Record, TargetError, email_address_problem, non_finite_number
from activation_pipeline.platforms.http import body_parts, error_text, json_object, utc_wire
from activation_pipeline.platforms.yotpo.target import IDENTIFIER_FIELDS, YotpoTarget

# --- the customer contract ---------------------------------------------------------------
# Yotpo's rule: with an external_id it identifies the customer; without one, exactly one
# of email / phone_number. So an activation matching by email or phone may not send the others.
IDENTITY_FIELDS = frozenset(IDENTIFIER_FIELDS.values())
STANDARD_FIELDS = frozenset(
    {
        "external_id",
        "email",
        "phone_number",
        "first_name",
        "last_name",
        "gender",
        "account_created_at",
        "account_updated_at",
        "account_status",
        "default_language",
        "default_currency",
        "tags",
        "accepts_sms_marketing",
        "accepts_email_marketing",
    }
)
ADDRESS_FIELDS = frozenset({"address1", "address2", "city", "company", "state", "zip", "province_code", "country_code"})
# sent as JSON strings whatever the column type (a numeric zip or name would be refused)
TEXT_FIELDS = frozenset({"external_id", "email", "phone_number", "first_name", "last_name", "default_language", "default_currency", "tags"})
ENUMS = {"gender": ("F", "M", "Other"), "account_status": ("enabled", "disabled", "invited", "declined")}
BOOLEAN_FIELDS = frozenset({"accepts_sms_marketing", "accepts_email_marketing"})
DATETIME_FIELDS = frozenset({"account_created_at", "account_updated_at"})
CUSTOM_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
MAX_CUSTOM_VALUE = 255
MAX_STRING = 255
# E.164: "+", country code, subscriber number; at most 15 digits; the shortest numbers in use have
# 7 (a 3-digit country code + 4 digits, e.g. Niue +683). Per-country length plans are not checked.
E164 = re.compile(rf"^\+{E164_DIGITS}$")


def mapped_field_names() -> str:
    return ", ".join(sorted(STANDARD_FIELDS)) + ", address.<" + "|".join(sorted(ADDRESS_FIELDS)) + ">"


# --- config-time checks (PlatformSpec hooks) ---------------------------------------------
def activation_problem(activation: Any) -> tuple[str, str] | None:
    """(field, problem) when an activation cannot work against Yotpo; checked at config load."""
    try:
        target = YotpoTarget.parse(activation.object, activation.options)
    except TargetError:
        return None  # object_pattern reports it
    kind = target.kind
    if kind != "external_id" and activation.identifier is None:
        return "identifier", (
            f"matching Yotpo customers by {kind} needs `identifier:` set to the segment "
            f"column holding the {kind} (the default, the primary key, is not one)"
        )
    own = target.field
    forbidden = {own} if kind == "external_id" else IDENTITY_FIELDS
    for name in activation.mapping:
        if name in forbidden:
            if name == own:
                return f"mapping.{name}", f"{name} is the identifier here (`identifier:` names its column); do not map it again"
            return f"mapping.{name}", (
                f"customers matched by {kind} may not also send {name}: Yotpo identifies a customer "
                f"by external_id when present, else by exactly one of email or phone_number"
            )
        if name.startswith("address."):
            if name.split(".", 1)[1] not in ADDRESS_FIELDS:
                return f"mapping.{name}", f"not a Yotpo address field; allowed: {', '.join(sorted(ADDRESS_FIELDS))}"
        elif name not in STANDARD_FIELDS:
            return f"mapping.{name}", (f"not a Yotpo customer field (allowed: {mapped_field_names()}); send other columns with custom_attributes")
    for name in activation.custom_attributes:
        if not CUSTOM_NAME.fullmatch(name):
            return "custom_attributes", f"{name!r}: Yotpo custom property names are 1-32 lowercase letters, digits and underscores"
        if name in STANDARD_FIELDS:
            return "custom_attributes", f"{name!r} is a standard Yotpo customer field: map it under `mapping` instead"
        if name in activation.mapping:
            return "custom_attributes", f"{name!r} is also under mapping"
    return None


# --- record checks and payloads -----------------------------------------------------------
def identifier_problem(kind: str, value: str | None) -> str | None:
    if value is None or not str(value).strip():
        return f"no {kind}: the identifier is empty"
    if kind == "email":
        return email_address_problem(value)
    if kind == "phone":
        return None if E164.fullmatch(value) else f"phone {value!r} is not in E.164 format (+, then 7 to 15 digits)"
    return None if len(value) <= MAX_STRING else f"external_id longer than {MAX_STRING} characters"


def field_problem(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if problem := non_finite_number(name, value):  # never sent as the text "nan", alone or in a list
        return problem
    if name == "email":
        return identifier_problem("email", str(value))
    if name == "phone_number":
        return identifier_problem("phone", str(value))
    if name in ENUMS and value not in ENUMS[name]:
        return f"{name}: {value!r} is not one of {', '.join(ENUMS[name])}"
    if name in BOOLEAN_FIELDS and not isinstance(value, bool):
        return f"{name}: {value!r} is not a boolean"
    if name == "default_language" and not re.fullmatch(r"[a-z]{2}", str(value)):
        return f"default_language: {value!r} is not an ISO 639-1 code (two lowercase letters)"
    if name == "default_currency" and not re.fullmatch(r"[A-Z]{3}", str(value)):
        return f"default_currency: {value!r} is not an ISO 4217 code (three capital letters)"
    if isinstance(value, (list, tuple)) and name != "tags":
        return f"{name}: a list cannot be sent (Yotpo takes primitives)"
    if isinstance(value, dict):
        return f"{name}: an object cannot be sent (Yotpo takes primitives)"
    return None


def custom_problem(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if problem := non_finite_number(name, value):  # never sent as the text "nan", alone or in a list
        return problem
    if isinstance(value, (list, tuple, dict)):
        return f"{name}: custom properties take primitives (string, boolean, number, date), not {type(value).__name__}"
    if isinstance(value, str) and len(value) > MAX_CUSTOM_VALUE:
        return f"{name}: value of {len(value)} characters exceeds {MAX_CUSTOM_VALUE}"
    return None


def _wire(value: Any, *, datetime_field: bool = False) -> Any:
    if isinstance(value, datetime) or (isinstance(value, date) and datetime_field):
        return utc_wire(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _text(value: Any) -> str:
    wired = _wire(value)
    if isinstance(wired, float) and wired.is_integer():
        return str(int(wired))
    return wired if isinstance(wired, str) else str(wired)


def customer_payload(target: YotpoTarget, record: Record) -> dict[str, Any]:
    """The ``customer`` object of a PATCH: identifier, standard fields, address, custom properties."""
    customer: dict[str, Any] = {target.field: record.identifier}
    address: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    for name, value in record.fields.items():
        if name.startswith("address."):
            if value is not None:
                address[name.split(".", 1)[1]] = _text(value)
        elif name in STANDARD_FIELDS:
            if value is None:
                continue  # partial update: leave Yotpo's value alone
            if name == "tags" and isinstance(value, (list, tuple)):
                value = ",".join(str(v) for v in value)
            customer[name] = _text(value) if name in TEXT_FIELDS else _wire(value, datetime_field=name in DATETIME_FIELDS)
        else:
            custom[name] = "" if value is None else _wire(value)  # "" removes the property
    if address:
        customer["address"] = address
    if custom:
        customer["custom_properties"] = custom
    return {"customer": customer}


def error_parts(body: Any) -> list[str]:
    """What a Yotpo error body says (its shape is undocumented): each ``errors[]`` entry's message first
    (it names the field itself), then the rest of the body, then a nested ``status.message``."""
    if not isinstance(body, dict):
        return body_parts(body)
    listed = errors if isinstance(errors := body.get("errors"), list) else []
    entries = [str(e.get("message") or e.get("detail") or e) if isinstance(e, dict) else str(e) for e in listed]
    status = nested if isinstance(nested := body.get("status"), dict) else {}
    return [*entries, *body_parts({k: v for k, v in body.items() if k != "errors"}), str(status.get("message") or "")]


def error_message(response: requests.Response, scrub: Callable[[str], str] = lambda text: text) -> str:
    """``HTTP <status>: <Yotpo's message>``; ``scrub`` (the session's redaction) runs on the whole body before
    anything is cut, so a secret echoed across a truncation point cannot leak a fragment."""
    return error_text(response, scrub, read=error_parts)


# --- reading answers ----------------------------------------------------------------------
def normalised(kind: str, value: str) -> str:
    return value.strip().lower() if kind == "email" else value.strip()


def customers_of(response: requests.Response) -> list[dict[str, Any]]:
    customers = json_object(response).get("customers")
    return [c for c in customers if isinstance(c, dict)] if isinstance(customers, list) else []


def next_page_info(response: requests.Response) -> str | None:
    body = json_object(response)
    pagination = nested if isinstance(nested := body.get("pagination"), dict) else {}
    for value in (pagination.get("next_page_info"), pagination.get("page_info"), body.get("next_page_info"), body.get("page_info")):
        if isinstance(value, str) and value:
            return value
    return None
