"""Validation of Yotpo Core v3 customer payloads for the emulator in :mod:`.yotpo`.

Checks the body of ``PATCH .../customers`` (``{"customer": {...}}``), the body of
``POST .../access_tokens`` and the query of ``GET .../customers`` without any
stored state, and holds the emulator's run-time :class:`YotpoSettings`. Which
rules are verified against Yotpo's docs and which are the emulator's choices is
listed in :mod:`.yotpo`'s docstring. Every failure raises
:class:`YotpoError` naming the offending field (``customer.email``,
``customer.custom_properties.tier``, ...); validation stops at the first error.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

MAX_STRING_CHARS = 255  # external_id, names, email, phone, address parts (core-api checkout-info page)
MAX_TAGS_CHARS = 4096
MAX_PROPERTY_NAME_CHARS, MAX_PROPERTY_VALUE_CHARS = 32, 255
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
MAX_LIMIT = 100
DEFAULT_TOKEN_TTL_SECONDS = 14 * 86400.0

GENDERS = ("F", "M", "Other")
ACCOUNT_STATUSES = ("enabled", "disabled", "invited", "declined")
STRING_FIELDS = ("first_name", "last_name")
ADDRESS_FIELDS = ("address1", "address2", "city", "company", "state", "zip", "province_code", "country_code", "phone_number")
CUSTOMER_FIELDS = (
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
    "address",
    "accepts_sms_marketing",
    "accepts_email_marketing",
    "custom_properties",
)
#: query parameter -> stored column; plural comma-separated forms and singular aliases.
FILTERS = {
    "external_ids": "external_id",
    "external_id": "external_id",
    "emails": "email",
    "email": "email",
    "phone_numbers": "phone_number",
    "phone_number": "phone_number",
}

# all patterns are used with fullmatch (``$`` would accept a trailing newline)
E164_RE = re.compile(r"\+[1-9][0-9]{1,14}")
EMAIL_RE = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
PROPERTY_NAME_RE = re.compile(r"[a-z0-9_]+")
_ISO_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?)?"
)


class YotpoError(Exception):
    """Raised by handlers; turned into a Yotpo-shaped error response by :mod:`.yotpo`."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


@dataclass
class YotpoSettings:
    """Run-time settings (see :mod:`.yotpo`'s docstring); env ``SANDBOX_YOTPO_<NAME upper>``."""

    token_ttl_seconds: float = DEFAULT_TOKEN_TTL_SECONDS
    patch_status: int = 200
    validation_status: int = 400
    require_external_id: bool = False
    unknown_fields: str = "reject"

    def update(self, spec: Any) -> None:
        if not isinstance(spec, dict):
            raise ValueError("body must be a JSON object")
        checks: dict[str, Callable[[Any], bool]] = {
            "token_ttl_seconds": lambda v: type(v) in (int, float) and math.isfinite(v) and v >= 0,
            "patch_status": lambda v: type(v) is int and v in (200, 201, 204),
            "validation_status": lambda v: type(v) is int and v in (400, 422),
            "require_external_id": lambda v: type(v) is bool,
            "unknown_fields": lambda v: v in ("reject", "ignore"),
        }
        for key, value in spec.items():
            if key not in checks:
                raise ValueError(f"unknown setting {key!r}; known: {', '.join(checks)}")
            if not checks[key](value):
                raise ValueError(f"invalid value for {key!r}: {value!r}")
        for key, value in spec.items():
            setattr(self, key, float(value) if key == "token_ttl_seconds" else value)


def invalid(field: str, message: str, status: int = 400) -> YotpoError:
    return YotpoError(status, "invalid_field", f"{field}: {message}", field)


def _is_iso8601(value: str) -> bool:
    match = _ISO_RE.fullmatch(value)
    if not match:
        return False
    y, mo, d, h, mi, s = (int(g) if g else 0 for g in match.groups()[:6])
    try:
        dt.datetime(y, mo, d, h, mi, min(s, 59))
    except ValueError:
        return False
    return s <= 60


def is_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= MAX_STRING_CHARS and bool(EMAIL_RE.fullmatch(value)) and len(value.partition("@")[0]) <= 64


def is_e164(value: Any) -> bool:
    return isinstance(value, str) and bool(E164_RE.fullmatch(value))


def _string(field: str, value: Any, max_chars: int = MAX_STRING_CHARS) -> str:
    if not isinstance(value, str):
        raise invalid(field, f"must be a string (got {type(value).__name__})")
    if len(value) > max_chars:
        raise invalid(field, f"must be at most {max_chars} characters (got {len(value)})")
    return value


def _custom_properties(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid("customer.custom_properties", "must be a JSON object of name: primitive value")
    for name, prop in value.items():
        where = f"customer.custom_properties.{name}"
        if not PROPERTY_NAME_RE.fullmatch(name) or len(name) > MAX_PROPERTY_NAME_CHARS:
            raise invalid(where, f"property names may contain only a-z, 0-9 and _ (1 to {MAX_PROPERTY_NAME_CHARS} characters)")
        if prop is None:
            raise invalid(where, 'null values are not supported (send "" to remove a property)')
        if isinstance(prop, bool):
            continue
        if isinstance(prop, int):
            if not LONG_MIN <= prop <= LONG_MAX:
                raise invalid(where, "integers must fit in a 64-bit long")
        elif isinstance(prop, float):
            if not math.isfinite(prop):
                raise invalid(where, "numbers must be finite")
        elif isinstance(prop, str):
            if len(prop) > MAX_PROPERTY_VALUE_CHARS:
                raise invalid(where, f"values must be at most {MAX_PROPERTY_VALUE_CHARS} characters")
        else:
            raise invalid(where, "must be a string, boolean, integer, number or ISO date (not an object or array)")
    return dict(value)


def _known_entries(obj: dict[str, Any], known: tuple[str, ...], prefix: str, unknown: str, reject_unknown: bool) -> Iterator[tuple[str, str, Any]]:
    """``(key, field path, value)`` of ``obj``'s non-null known keys; an unknown key raises ``unknown`` or is skipped."""
    for key, value in obj.items():
        where = f"{prefix}.{key}"
        if key not in known:
            if reject_unknown:
                raise invalid(where, unknown)
            continue
        if value is not None:
            yield key, where, value


def _address(value: Any, reject_unknown: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid("customer.address", "must be a JSON object")
    out: dict[str, Any] = {}
    unknown = f"unknown address field (known: {', '.join(ADDRESS_FIELDS)})"
    for key, where, part in _known_entries(value, ADDRESS_FIELDS, "customer.address", unknown, reject_unknown):
        _string(where, part)
        if key == "country_code" and not re.fullmatch(r"[A-Za-z]{2}", part):
            raise invalid(where, "must be an ISO 3166-1 alpha-2 country code")
        if key == "phone_number" and not is_e164(part):
            raise invalid(where, "must be in E.164 format (e.g. +14155552671)")
        out[key] = part
    return out


def customer_payload(body: Any, require_external_id: bool, reject_unknown: bool) -> dict[str, Any]:
    """Validate a ``PATCH .../customers`` body; return the customer's non-null fields.

    ``null`` (or an absent key) means "leave as is". Identity: ``external_id``;
    without it, exactly one of ``email`` / ``phone_number``.
    """
    if not isinstance(body, dict):
        raise YotpoError(400, "invalid_request", "Request body must be a JSON object")
    if reject_unknown:
        for key in body:
            if key != "customer":
                raise invalid(key, 'unknown top-level field; the body must be {"customer": {...}}')
    if "customer" not in body or body["customer"] is None:
        raise invalid("customer", 'is required: the body must be {"customer": {...}}')
    raw = body["customer"]
    if not isinstance(raw, dict):
        raise invalid("customer", "must be a JSON object")
    out: dict[str, Any] = {}
    for key, where, value in _known_entries(raw, CUSTOMER_FIELDS, "customer", "unknown customer field", reject_unknown):
        if key == "external_id":
            if not _string(where, value):
                raise invalid(where, "must not be empty")
        elif key == "email":
            if not is_email(_string(where, value)):
                raise invalid(where, "must be a valid email address (user@domain.tld)")
        elif key == "phone_number":
            if not is_e164(_string(where, value)):
                raise invalid(where, "must be in E.164 format (e.g. +14155552671)")
        elif key in STRING_FIELDS:
            _string(where, value)
        elif key == "gender":
            if value not in GENDERS:
                raise invalid(where, f"must be one of {', '.join(GENDERS)}")
        elif key == "account_status":
            if value not in ACCOUNT_STATUSES:
                raise invalid(where, f"must be one of {', '.join(ACCOUNT_STATUSES)}")
        elif key in ("account_created_at", "account_updated_at"):
            if not _is_iso8601(_string(where, value)):
                raise invalid(where, "must be an ISO 8601 date or date-time (e.g. 2020-09-08T08:43:27Z)")
        elif key == "default_language":
            if not re.fullmatch(r"[A-Za-z]{2}", _string(where, value)):
                raise invalid(where, "must be an ISO 639-1 language code (2 letters)")
        elif key == "default_currency":
            if not re.fullmatch(r"[A-Za-z]{3}", _string(where, value)):
                raise invalid(where, "must be an ISO 4217 currency code (3 letters)")
        elif key == "tags":
            _string(where, value, MAX_TAGS_CHARS)
        elif key in ("accepts_sms_marketing", "accepts_email_marketing"):
            if not isinstance(value, bool):
                raise invalid(where, f"must be a boolean (got {type(value).__name__})")
        elif key == "address":
            value = _address(value, reject_unknown)
        elif key == "custom_properties":
            value = _custom_properties(value)
        out[key] = value
    if "external_id" not in out:
        if require_external_id:
            raise invalid("customer.external_id", "is required")
        if "email" in out and "phone_number" in out:
            raise invalid(
                "customer.external_id", "is required when both email and phone_number are sent (without external_id, send only one of them)"
            )
        if "email" not in out and "phone_number" not in out:
            raise invalid("customer.external_id", "is required (or exactly one of email / phone_number)")
    return out


def token_secret(body: Any) -> str:
    """The ``secret`` of a ``POST .../access_tokens`` body."""
    if not isinstance(body, dict):
        raise YotpoError(400, "invalid_request", "Request body must be a JSON object")
    secret = body.get("secret")
    if not isinstance(secret, str) or not secret:
        raise invalid("secret", "is required and must be a non-empty string")
    return secret


def customer_filters(query: dict[str, str]) -> tuple[dict[str, list[str]], int, str | None]:
    """Validate a ``GET .../customers`` query into ``(filters, limit, page_info)``.

    ``filters`` maps a column to the accepted values (comma-separated lists).
    """
    limit_raw = query.get("limit", str(MAX_LIMIT))
    if not re.fullmatch(r"\d{1,3}", limit_raw) or not 1 <= int(limit_raw) <= MAX_LIMIT:
        raise invalid("limit", f"must be an integer between 1 and {MAX_LIMIT}")
    page_info = query.get("page_info")
    filters: dict[str, list[str]] = {}
    for name, value in query.items():
        if name in ("limit", "page_info"):
            continue
        if name not in FILTERS:
            raise invalid(name, f"unknown query parameter (known: limit, page_info, {', '.join(FILTERS)})")
        if page_info is not None:
            raise invalid(name, "a request with page_info may only also carry limit")
        values = [v.strip() for v in value.split(",") if v.strip()]
        if not values:
            raise invalid(name, "must not be empty")
        if len(values) > MAX_LIMIT:
            raise invalid(name, f"at most {MAX_LIMIT} values")
        filters.setdefault(FILTERS[name], []).extend(values)
    return filters, int(limit_raw), page_info
