"""Validation of Synerise request bodies for the emulator in :mod:`.synerise`.

Stateless checks of ``clients/batch``, ``transactions[/batch]`` and catalog ``items/batch``
bodies, and the emulator's run-time :class:`SyneriseSettings`. Each failure is a
:class:`SyneriseError` in Synerise's v4 error shape (``errors[]`` with ``field``,
``message``, ``rejectedValue``); an item's field is prefixed with its index (``[3].email``).
Which rules are verified and which are the emulator's choice: :mod:`.synerise`'s docstring.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .emulator_kit import json_body
from .platform_interface import HandlerContext, Request, Response

MAX_ITEMS = 1000
MAX_BODY_BYTES = 1_000_000
PROFILE_STRINGS = (
    "customId",
    "email",
    "uuid",
    "phone",
    "firstName",
    "lastName",
    "displayName",
    "avatarUrl",
    "company",
    "city",
    "address",
    "zipCode",
    "province",
    "countryCode",
    "clientId",
)
PROFILE_FIELDS = frozenset({*PROFILE_STRINGS, "birthDate", "sex", "agreements", "tags", "attributes"})
RESERVED_ATTRIBUTES = frozenset(
    {
        "email",
        "clientId",
        "phone",
        "customId",
        "uuid",
        "firstName",
        "lastName",
        "displayName",
        "company",
        "address",
        "city",
        "province",
        "zipCode",
        "countryCode",
        "birthDate",
        "sex",
        "avatarUrl",
        "agreements",
        "tags",
    }
)
AGREEMENTS = frozenset({"email", "sms", "push", "webPush", "bluetooth", "rfid", "wifi"})
SEXES = ("FEMALE", "MALE", "NOT_SPECIFIED", "OTHER")
SOURCES = ("WEB_DESKTOP", "WEB_MOBILE", "MOBILE_APP", "POS", "MOBILE", "DESKTOP")
TRANSACTION_FIELDS = frozenset(
    {"client", "orderId", "recordedAt", "eventSalt", "paymentInfo", "products", "revenue", "value", "discountAmount", "source", "metadata"}
)
EMAIL_RE = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
PHONE_RE = re.compile(r"\+?[0-9]{6,15}")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
ISO_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})")
ATTRIBUTE_RE = re.compile(r"[-_a-zA-Z0-9]+")
CATALOG_NAME_RE = re.compile(r"[a-zA-Z0-9]+")


class SyneriseError(Exception):
    """Raised by handlers; turned into Synerise's v4 error body by :mod:`.synerise`."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None, error: str | None = None):
        super().__init__(message)
        self.status, self.message, self.errors = status, message, errors or []
        self.error = error or {
            400: "Bad Request",
            401: "Unauthorized",
            403: "Forbidden",
            404: "Not Found",
            413: "Payload Too Large",
            415: "Unsupported Media Type",
        }.get(status, "Error")

    def response(self, path: str, now: str, headers: dict[str, str] | None = None) -> Response:
        body = {"timestamp": now, "status": self.status, "error": self.error, "message": self.message, "path": path, "errors": self.errors}
        return Response(self.status, body, dict(headers or {}))


def field_error(field: str, message: str, value: Any = None) -> SyneriseError:
    return SyneriseError(400, f"{field}: {message}", [{"code": 400, "field": field, "message": message, "rejectedValue": value}])


@dataclass
class SyneriseSettings:
    """Run-time settings; env ``SANDBOX_SYNERISE_<NAME upper>``; ``GET/POST /_sandbox/synerise/config``."""

    token_ttl_seconds: float = 3600.0
    require_api_version: bool = False
    max_items: int = MAX_ITEMS
    max_body_bytes: int = MAX_BODY_BYTES

    def update(self, spec: Any) -> None:
        if not isinstance(spec, dict):
            raise ValueError("body must be a JSON object")
        current = asdict(self)
        for name, value in spec.items():
            if name not in current:
                raise ValueError(f"unknown setting {name!r}; known: {', '.join(current)}")
            kind = type(current[name])
            if kind is bool:
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be a boolean")
            else:
                value = kind(value)
                if value <= 0:
                    raise ValueError(f"{name} must be positive")
            setattr(self, name, value)


def read_json(req: Request) -> Any:
    """The JSON body of a write: 415 unless ``application/json``, 400 ``Malformed JSON`` when unreadable."""
    return json_body(
        req, lambda why: SyneriseError(400, f"Malformed JSON: {why}"), lambda: SyneriseError(415, "Content-Type must be application/json")
    )


def read_batch(
    req: Request, ctx: HandlerContext, settings: SyneriseSettings, check: Callable[[int, Any], Any], identity: Callable[[Any], tuple[str, Any]]
) -> tuple[list[tuple[int, Any]], list[dict[str, Any]]]:
    """Validate a batch body: the (index, checked item) pairs to apply, and the per-item rejections.

    Any invalid element refuses the whole batch (400 naming every one); an element a
    ``reject_ids`` / ``reject_rate`` fault draws (by its ``identity`` field) is rejected alone.
    """
    body = check_batch(read_json(req), settings, len(req.body))
    ctx.items_received = len(body)
    accepted: list[tuple[int, Any]] = []
    invalid: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for index, item in enumerate(body):
        try:
            checked = check(index, item)
        except SyneriseError as exc:
            invalid.extend(exc.errors)
            continue
        field, value = identity(checked)
        kind = ctx.rejection(value) if isinstance(value, str) else None
        if kind:
            rejected.append(
                {
                    "code": 400,
                    "field": f"[{index}].{field}",
                    "rejectedValue": value,
                    "message": f"{json.dumps(value)} rejected by the platform (sandbox fault {kind})",
                }
            )
        else:
            accepted.append((index, checked))
    if invalid:
        raise SyneriseError(400, f"{len(invalid)} invalid item(s) in the batch; nothing was applied", invalid)
    return accepted, rejected


def batch_answer(status: int, body: Any, rejected: list[dict[str, Any]], path: str, now: str) -> Response:
    """``status`` with ``body`` when every element was applied, else 207 listing the rejected ones."""
    if not rejected:
        return Response(status, body)
    return Response(
        207, {"timestamp": now, "status": 207, "error": "Multi-Status", "message": "Request partially accepted", "path": path, "errors": rejected}
    )


def check_batch(body: Any, settings: SyneriseSettings, size: int) -> list[Any]:
    if size > settings.max_body_bytes:
        raise SyneriseError(413, f"Request body of {size} bytes exceeds the limit of {settings.max_body_bytes} bytes")
    if not isinstance(body, list):
        raise SyneriseError(400, "Request body must be a JSON array")
    if not body:
        raise SyneriseError(400, "Request body must not be an empty array")
    if len(body) > settings.max_items:
        raise SyneriseError(400, f"Batch of {len(body)} items exceeds the limit of {settings.max_items} items")
    return body


def _string(where: str, value: Any, allow_null: bool = True) -> None:
    if value is None and allow_null:
        return
    if not isinstance(value, str):
        raise field_error(where, "must be a string", value)


def _number(where: str, value: Any, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise field_error(where, "must be a number", value)
    if value < minimum:
        raise field_error(where, f"must be greater than or equal to {minimum:g}", value)
    return float(value)


def profile(index: int, item: Any) -> dict[str, Any]:
    """One element of ``clients/batch``, checked; returned unchanged."""
    at = f"[{index}]"
    if not isinstance(item, dict):
        raise field_error(at, "must be an object")
    for name, value in item.items():
        where = f"{at}.{name}"
        if name not in PROFILE_FIELDS:
            raise field_error(where, "unknown field", value)
        if name in PROFILE_STRINGS:
            _string(where, value)
    if not any(item.get(k) for k in ("customId", "email", "uuid", "clientId")):
        raise field_error(at, "one of customId, email, uuid is required to identify the profile")
    email, phone = item.get("email"), item.get("phone")
    if email is not None and not EMAIL_RE.fullmatch(email):
        raise field_error(f"{at}.email", "must be a well-formed email address", email)
    if phone is not None and not PHONE_RE.fullmatch(phone):
        raise field_error(f"{at}.phone", "must be a phone number", phone)
    birth = item.get("birthDate")
    if birth is not None and (not isinstance(birth, str) or not DATE_RE.fullmatch(birth) or birth <= "1900-01-01"):
        raise field_error(f"{at}.birthDate", "must be a yyyy-mm-dd date after 1900-01-01", birth)
    if item.get("sex") is not None and item["sex"] not in SEXES:
        raise field_error(f"{at}.sex", f"must be one of {', '.join(SEXES)}", item["sex"])
    tags = item.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise field_error(f"{at}.tags", "must be an array of strings", tags)
    agreements = item.get("agreements")
    if agreements is not None:
        if not isinstance(agreements, dict):
            raise field_error(f"{at}.agreements", "must be an object", agreements)
        for name, value in agreements.items():
            if name not in AGREEMENTS:
                raise field_error(f"{at}.agreements.{name}", "unknown agreement", value)
            if value not in (True, False, 1, 0, "true", "false", None):
                raise field_error(f"{at}.agreements.{name}", "must be a boolean", value)
    attributes = item.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        raise field_error(f"{at}.attributes", "must be an object", attributes)
    return item


def _money(where: str, value: Any, currencies: set[str], positive: bool = False) -> None:
    if not isinstance(value, dict) or set(value) != {"amount", "currency"}:
        raise field_error(where, 'must be {"amount": number, "currency": string}', value)
    amount = _number(f"{where}.amount", value["amount"])
    if positive and amount <= 0:
        raise field_error(f"{where}.amount", "must be greater than 0 (or leave discountAmount out)", amount)
    if not isinstance(value["currency"], str) or not re.fullmatch(r"[A-Z]{3}", value["currency"]):
        raise field_error(f"{where}.currency", "must be an ISO 4217 code", value["currency"])
    currencies.add(value["currency"])


def transaction(index: int | None, item: Any) -> dict[str, Any]:
    """One transaction (an element of ``transactions/batch``, or the single-transaction body)."""
    at = f"[{index}]" if index is not None else "transaction"
    if not isinstance(item, dict):
        raise field_error(at, "must be an object")
    for name in item:
        if name not in TRANSACTION_FIELDS:
            raise field_error(f"{at}.{name}", "unknown field", item[name])
    client = item.get("client")
    if not isinstance(client, dict) or not any(client.get(k) for k in ("customId", "email", "uuid", "clientId")):
        raise field_error(f"{at}.client", "must identify the buyer by customId, email, uuid or clientId", client)
    if client.get("email") is not None and not (isinstance(client["email"], str) and EMAIL_RE.fullmatch(client["email"])):
        raise field_error(f"{at}.client.email", "must be a well-formed email address", client["email"])
    for name in ("orderId", "eventSalt", "source"):
        _string(f"{at}.{name}", item.get(name))
    if not item.get("orderId"):
        raise field_error(f"{at}.orderId", "is required")
    recorded = item.get("recordedAt")
    if recorded is not None and not (isinstance(recorded, str) and ISO_RE.fullmatch(recorded)):
        raise field_error(f"{at}.recordedAt", "must be an ISO 8601 date-time with a zone", recorded)
    if item.get("source") is not None and item["source"] not in SOURCES:
        raise field_error(f"{at}.source", f"must be one of {', '.join(SOURCES)}", item["source"])
    currencies: set[str] = set()
    if "revenue" not in item:
        raise field_error(f"{at}.revenue", "is required")
    _money(f"{at}.revenue", item["revenue"], currencies)
    if "value" in item:
        _money(f"{at}.value", item["value"], currencies)
    if "discountAmount" in item:
        _money(f"{at}.discountAmount", item["discountAmount"], currencies, positive=True)
    products = item.get("products")
    if not isinstance(products, list) or not products:
        raise field_error(f"{at}.products", "must be a non-empty array", products)
    for number, product in enumerate(products):
        where = f"{at}.products[{number}]"
        if not isinstance(product, dict) or not isinstance(product.get("sku"), str) or not product["sku"]:
            raise field_error(f"{where}.sku", "is required", product)
        if _number(f"{where}.quantity", product.get("quantity")) <= 0:
            raise field_error(f"{where}.quantity", "must be greater than 0", product.get("quantity"))
        if "finalUnitPrice" not in product:
            raise field_error(f"{where}.finalUnitPrice", "is required")
        for money in ("finalUnitPrice", "regularPrice", "netUnitPrice"):
            if money in product:
                _money(f"{where}.{money}", product[money], currencies)
    if len(currencies) > 1:
        raise field_error(f"{at}", f"all amounts must share one currency, got {', '.join(sorted(currencies))}")
    for name in ("paymentInfo", "metadata"):
        if item.get(name) is not None and not isinstance(item[name], dict):
            raise field_error(f"{at}.{name}", "must be an object", item[name])
    return item


def catalog_item(index: int, item: Any) -> tuple[str, dict[str, Any]]:
    """One element of ``items/batch``: ``(itemKey, value)``."""
    at = f"[{index}]"
    if not isinstance(item, dict) or set(item) - {"itemKey", "value"}:
        raise field_error(at, 'must be {"itemKey": string, "value": object}', item)
    key, value = item.get("itemKey"), item.get("value")
    if not isinstance(key, str) or not key:
        raise field_error(f"{at}.itemKey", "must be a non-empty string", key)
    if not isinstance(value, dict):
        raise field_error(f"{at}.value", "must be an object", value)
    for name in value:
        if not ATTRIBUTE_RE.fullmatch(name):
            raise field_error(f"{at}.value.{name}", "attribute names allow letters, digits, '-' and '_'", name)
    return key, value
