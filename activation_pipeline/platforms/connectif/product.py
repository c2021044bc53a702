"""Connectif's product object: the writable fields, the rules a record is checked against
before sending, the body of a patch-or-create, and the comparison of a product read back
with what was sent (verification).

Which rules are verified and which are chosen here is set out in the docstring of
``activation_pipeline/platforms/connectif/client.py`` and in docs/platforms/connectif.md.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import urlparse

import requests

from activation_pipeline.platforms.base import non_finite_number
from activation_pipeline.platforms.http import body_parts, error_text, utc_wire

# --- the product contract (ProductCreation, api-docs.connectif.cloud) -------------------
TEXT_FIELDS = frozenset({"name", "description", "brand", "customField1", "customField2", "customField3"})
URL_FIELDS = frozenset({"productDetailUrl", "imageUrl", "thumbnailUrl"})
PRICE_FIELDS = frozenset({"unitPrice", "unitPriceOriginal", "unitPriceWithoutVAT", "discountedAmount"})
NUMBER_FIELDS = frozenset({"discountedPercentage", "rating"})
INTEGER_FIELDS = frozenset({"inStockUnits", "ratingCount", "reviewCount", "priority"})
LIST_FIELDS = frozenset({"categories", "tags", "relatedExternalProductIds"})
WRITABLE_FIELDS = (
    TEXT_FIELDS | URL_FIELDS | PRICE_FIELDS | NUMBER_FIELDS | INTEGER_FIELDS | LIST_FIELDS | {"availability", "isBlacklisted", "publishedAt"}
)
# mandatory for a new product in the product import [V]; assumed for patch-or-create [I]
CREATION_FIELDS = ("name", "productDetailUrl", "unitPrice")
# written: instock / outofstock [V]; discontinued [U] (the read resource documents it)
AVAILABILITY = ("instock", "outofstock", "discontinued")
LIST_SEPARATOR = "|"  # the product import's list separator [V]; used to split a text column into a list
MAX_IDENTIFIER = 255  # the emulator's and this client's bound on a store product id [U]
MAX_TEXT = 10_000  # [U]: no documented limit; a bound that catches runaway values


def field_names() -> str:
    return ", ".join(sorted(WRITABLE_FIELDS))


# --- config-time check (PlatformSpec hook) -----------------------------------------------
def activation_problem(activation: Any) -> tuple[str, str] | None:
    """(field, problem) when an activation cannot work against Connectif; checked at config load."""
    for name in activation.mapping:
        if name not in WRITABLE_FIELDS:
            return f"mapping.{name}", f"not a writable Connectif product field; allowed: {field_names()}"
    for name in activation.custom_attributes:
        if name not in WRITABLE_FIELDS:
            return "custom_attributes", (
                f"{name!r}: Connectif products take no free custom attributes; map the column "
                "to customField1, customField2 or customField3 under `mapping`"
            )
    if activation.operation in ("upsert", "mirror"):
        sent = set(activation.mapping) | set(activation.custom_attributes)
        missing = [name for name in CREATION_FIELDS if name not in sent]
        if missing:
            return "mapping", (
                f"creating Connectif products needs {', '.join(CREATION_FIELDS)}; map {', '.join(missing)} "
                "(or use operation update_only to update existing products only)"
            )
    return None  # the object and `removal` are the target model's (target.py)


# --- record checks -------------------------------------------------------------------------
def identifier_problem(value: str | None) -> str | None:
    if value is None or not str(value).strip():
        return "no product id: the identifier is empty"
    if len(value) > MAX_IDENTIFIER:
        return f"product id longer than {MAX_IDENTIFIER} characters"
    return None


def availability_of(value: Any) -> str | None:
    """Connectif's availability for a column value: ``in_stock``, ``In Stock``, ``in-stock`` → ``instock``."""
    if not isinstance(value, str):
        return None
    folded = re.sub(r"[\s_-]+", "", value.strip().lower())
    return folded if folded in AVAILABILITY else None


def field_problem(name: str, value: Any) -> str | None:
    """Why Connectif would refuse this value of a writable field; None if it may be sent."""
    if value is None:
        return None
    if problem := non_finite_number(name, value):  # never sent as the text "nan", alone or in a list
        return problem
    if name == "availability":
        if availability_of(value) is None:
            return (
                f"availability: {value!r} is not one of {', '.join(AVAILABILITY)} (in_stock / out_of_stock and other spellings of these are accepted)"
            )
        return None
    if name in URL_FIELDS:
        return _url_problem(name, value)
    if name in PRICE_FIELDS or name in NUMBER_FIELDS:
        number = _number(value)
        if number is None:
            return f"{name}: {value!r} is not a number"
        if not math.isfinite(number):
            return f"{name}: {value} is not a finite number"
        if number < 0:
            return f"{name}: {number} is negative"
        if name == "discountedPercentage" and number > 100:
            return f"discountedPercentage: {number} is over 100"
        return None
    if name in INTEGER_FIELDS:
        number = _number(value)
        if number is None or not math.isfinite(number) or not float(number).is_integer():
            return f"{name}: {value!r} is not a whole number"
        if number < 0 and name != "priority":
            return f"{name}: {int(number)} is negative"
        return None
    if name == "isBlacklisted":
        return None if isinstance(value, bool) else f"isBlacklisted: {value!r} is not a boolean"
    if name == "publishedAt":
        if isinstance(value, (date, datetime)) or (isinstance(value, str) and _iso_moment(value) is not None):
            return None
        return f"publishedAt: {value!r} is not an ISO 8601 date-time"
    if name in LIST_FIELDS:
        items = as_list(value)
        if items is None:
            return f"{name}: {value!r} is neither a list nor {LIST_SEPARATOR!r}-separated text"
        too_long = next((item for item in items if len(item) > MAX_TEXT), None)
        return f"{name}: an entry of {len(too_long)} characters exceeds {MAX_TEXT}" if too_long else None
    if isinstance(value, (list, tuple, dict)):
        return f"{name}: a {type(value).__name__} cannot be sent (Connectif takes text here)"
    if len(str(value)) > MAX_TEXT:
        return f"{name}: text of {len(str(value))} characters exceeds {MAX_TEXT}"
    return None


def creation_problem(fields: dict[str, Any]) -> str | None:
    """A product that may be created needs its name, detail URL and price."""
    missing = [name for name in CREATION_FIELDS if fields.get(name) is None]
    if missing:
        return f"{', '.join(missing)} null: Connectif needs {', '.join(CREATION_FIELDS)} to create a product"
    return None


def _url_problem(name: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{name}: {value!r} is not a URL"
    parsed = urlparse(value.strip())
    if parsed.scheme not in ("http", "https") or not parsed.netloc or any(c.isspace() for c in value.strip()):
        return f"{name}: {value!r} is not an absolute http(s) URL"
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    return None


def _iso_moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def as_list(value: Any) -> list[str] | None:
    """A list field's entries: a list as it is, text split on ``|`` (blank entries dropped)."""
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value if item is not None and str(item).strip()]
    if isinstance(value, str):
        return [part.strip() for part in value.split(LIST_SEPARATOR) if part.strip()]
    return None


# --- the wire ----------------------------------------------------------------------------
def wire_value(name: str, value: Any) -> Any:
    """The JSON value sent for a (valid, non-null) field."""
    if name == "availability":
        return availability_of(value)
    if name in LIST_FIELDS:
        return as_list(value)
    if name in PRICE_FIELDS or name in NUMBER_FIELDS:
        return float(value)
    if name in INTEGER_FIELDS:
        return int(value)
    if name == "isBlacklisted":
        return value
    if name == "publishedAt":
        moment = value if isinstance(value, (date, datetime)) else _iso_moment(value)
        return utc_wire(moment) if moment is not None else value  # unparseable text was refused before sending
    if name in URL_FIELDS:
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value if isinstance(value, str) else str(value)


def product_body(fields: dict[str, Any]) -> dict[str, Any]:
    """The ProductCreation body of a PATCH: every non-null field (a null leaves Connectif's value alone)."""
    return {name: wire_value(name, value) for name, value in fields.items() if value is not None}


# --- verification ----------------------------------------------------------------------------
def differences(sent: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """One ``field: sent X, Connectif has Y`` per field of ``sent`` Connectif holds otherwise."""
    out = []
    for name, value in sent.items():
        held = found.get(name)
        if not _same(name, value, held):
            out.append(f"{name}: sent {_show(value)}, Connectif has {_show(held)}")
    return out


def _same(name: str, sent: Any, held: Any) -> bool:
    if held is None:
        return False
    if name in PRICE_FIELDS or name in NUMBER_FIELDS or name in INTEGER_FIELDS:
        number = _number(held)
        return number is not None and math.isclose(float(sent), number, rel_tol=1e-9, abs_tol=1e-6)
    if name in LIST_FIELDS:
        return isinstance(held, list) and sorted(sent) == sorted(str(item) for item in held)
    if name == "publishedAt":
        return isinstance(held, str) and _iso_moment(held) == _iso_moment(sent)
    return sent == held


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    if isinstance(value, (int, bool)):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=False)


# --- reading answers -------------------------------------------------------------------------
def error_parts(body: Any) -> list[str]:
    """What a problem-JSON error says, Connectif's way: ``detail`` (else ``title``), each ``validationErrors``
    entry as ``path: reason``, then ``code <code>``."""
    if not isinstance(body, dict):
        return body_parts(body)
    said = [str(body["detail"])] if body.get("detail") else ([str(body["title"])] if body.get("title") else [])
    said += body_parts({"validationErrors": body.get("validationErrors")})
    return [*said, f"code {body['code']}"] if body.get("code") else said


def error_message(response: requests.Response, scrub: Callable[[str], str] = lambda text: text) -> str:
    """``HTTP <status>: <Connectif's message>``, the body scrubbed before anything is cut."""
    return error_text(response, scrub, read=error_parts)
