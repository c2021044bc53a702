"""Validation of Batch catalog API payloads for the emulator in :mod:`.batch`.

Checks request values that need no stored state: catalog names, catalog
``fields`` arrays, and the ``items`` of ``POST /catalogs/items/edit`` (ids,
actions, attribute keys and values). The rules and which of them are verified
against the vendor's docs versus chosen by the emulator are listed in
:mod:`.batch`'s docstring. Every failure raises :class:`ApiError` (400
``INVALID_PARAMETER``); validation is all-or-nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Any
from urllib.parse import urlsplit

MAX_FIELDS, MAX_ITEMS_PER_REQUEST = 25, 200
MAX_ID_CHARS, MAX_STRING_CHARS, MAX_ARRAY_ITEMS, MAX_ARRAY_STRING_CHARS = 512, 10_000, 15, 64
FIELD_TYPES = ("array", "bool", "date", "float", "integer", "string", "url")
ITEM_ACTIONS = ("add", "update", "upsert", "delete", "remove")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# all patterns are used with fullmatch (``$`` would accept a trailing newline)
NAME_RE = re.compile(r"[a-z0-9_]+")
_KEY_RE = re.compile(r"([a-z0-9_]+)|url\(([a-z0-9_]+)\)|date\(([a-z0-9_]+)\)")
_RFC3339_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|[+-](\d{2}):(\d{2}))")


class ApiError(Exception):
    """Raised by handlers; turned into a Batch-shaped error response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER", message)


def _quoted(text: str) -> str:
    """``text`` as a JSON string literal, for error messages."""
    return json.dumps(text, ensure_ascii=False)


# --------------------------------------------------------------------------- catalogs


def catalog_name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value) or len(value) > 100:
        raise invalid('"name" must be a catalog name matching ^[a-z0-9_]+$ (at most 100 characters)')
    return value


def catalog_fields(value: Any, update: bool) -> list[tuple[str, str, str | None]]:
    """Validate a create/update ``fields`` array into ``(action, name, type)`` triples."""
    if not isinstance(value, list) or not value:
        raise invalid('"fields" must be a non-empty array')
    out: list[tuple[str, str, str | None]] = []
    for index, raw in enumerate(value):
        if not isinstance(raw, dict):
            raise invalid(f"fields[{index}] must be a JSON object")
        name, action = raw.get("name"), raw.get("action") if update else "add"
        if not isinstance(name, str) or not NAME_RE.fullmatch(name) or len(name) > 250:
            raise invalid(f'fields[{index}]: "name" must match ^[a-z0-9_]+$ (1 to 250 characters)')
        if action not in ("add", "remove"):
            raise invalid(f'fields[{index}]: "action" must be "add" or "remove"')
        if action == "add" and raw.get("type") not in FIELD_TYPES:
            raise invalid(f'fields[{index}]: "type" must be one of {", ".join(FIELD_TYPES)}')
        if any(name == seen for _, seen, _ in out):
            raise invalid(f'fields[{index}]: duplicate field name "{name}"')
        out.append((action, name, raw["type"] if action == "add" else None))
    return out


def check_field_count(count: int) -> None:
    if not 1 <= count <= MAX_FIELDS:
        raise invalid(f"A catalog must have between 1 and {MAX_FIELDS} fields, got {count}")


# --------------------------------------------------------------------------- items


def _is_url(value: Any) -> bool:
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        return False


def _is_date(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return INT64_MIN <= value <= INT64_MAX
    match = _RFC3339_RE.fullmatch(value) if isinstance(value, str) else None
    if not match:
        return False
    y, mo, d, h, mi, s, oh, om = (int(g) if g else 0 for g in match.groups())
    try:
        dt.datetime(y, mo, d, h, mi, min(s, 59))
    except ValueError:
        return False
    return s <= 60 and oh <= 23 and om <= 59


def _value_error(value: Any) -> str | None:
    """Why ``value`` is not a valid plain attribute value (None if valid)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else "must be a 64-bit integer"
    if isinstance(value, float):
        return None if math.isfinite(value) else "must be a finite number"
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            return f"must be a string of at most {MAX_STRING_CHARS} characters (got {len(value)})"
        return None
    if isinstance(value, list):
        if len(value) > MAX_ARRAY_ITEMS:
            return f"must be an array of at most {MAX_ARRAY_ITEMS} strings (got {len(value)})"
        for pos, element in enumerate(value):
            if not isinstance(element, str) or len(element) > MAX_ARRAY_STRING_CHARS:
                return f"[{pos}] must be a string of at most {MAX_ARRAY_STRING_CHARS} characters"
        return None
    return "must be a boolean, number, string, array of strings or null (got an object)"


def _validate_item(index: int, raw: Any) -> tuple[str, str, dict[str, Any] | None]:
    """Return ``(id, action, attributes)`` or raise naming ``items[index]``."""
    if not isinstance(raw, dict):
        raise invalid(f"items[{index}]: must be a JSON object")
    item_id = raw.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise invalid(f'items[{index}]: "id" must be a non-empty string')
    shown = _quoted(item_id if len(item_id) <= 80 else item_id[:80] + "...")
    where = f"items[{index}] (id {shown})"
    if len(item_id) > MAX_ID_CHARS:
        raise invalid(f'{where}: "id" must be at most {MAX_ID_CHARS} characters (got {len(item_id)})')
    action = raw.get("action")
    if action not in ITEM_ACTIONS:
        raise invalid(f'{where}: "action" must be one of {", ".join(ITEM_ACTIONS)}')
    if action in ("delete", "remove"):
        return item_id, action, None
    attributes = raw.get("attributes")
    if not isinstance(attributes, dict):
        raise invalid(f'{where}: "attributes" must be a JSON object for action "{action}"')
    for key, value in attributes.items():
        match = _KEY_RE.fullmatch(key)
        if not match:
            raise invalid(f"{where}: attribute key {_quoted(key)} is invalid (expected ^[a-z0-9_]+$, url(name) or date(name))")
        if value is None:
            continue
        if match.group(2) and not _is_url(value):
            raise invalid(f'{where}: attribute "{key}" must be an absolute http(s) URL')
        if match.group(3) and not _is_date(value):
            raise invalid(f'{where}: attribute "{key}" must be an RFC 3339 date-time or an integer Unix timestamp')
        problem = _value_error(value) if match.group(1) else None
        if problem:
            raise invalid(f'{where}: attribute "{key}" {problem}')
    return item_id, action, attributes


def edit_items(items: Any) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Validate an items/edit ``items`` array into ``(id, action, attributes)`` ops, in order."""
    if not isinstance(items, list):
        raise invalid('"items" must be an array')
    count = len(items)
    if not 1 <= count <= MAX_ITEMS_PER_REQUEST:
        raise invalid(f'"items" must contain between 1 and {MAX_ITEMS_PER_REQUEST} items per request, got {count}')
    return [_validate_item(index, raw) for index, raw in enumerate(items)]
