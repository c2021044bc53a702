"""Synerise's objects as this project sends them: the activation rules checked at config load,
the per-record checks (``invalid_reason``) and the JSON of profiles and catalog items
(transactions: ``transactions.py``).

An activation's ``object`` names what it writes:

| object | endpoint | always sent |
|---|---|---|
| ``profiles`` | ``POST /v4/clients/batch`` | ``customId`` (the identifier), ``email``, ``firstName``, ``lastName`` |
| ``subscriptions`` | ``POST /v4/clients/batch`` | ``email`` (the identifier), ``agreements`` |
| ``catalog:<name>`` | ``POST /catalogs/bags/{id}/items/batch`` | ``itemId`` (the identifier, the SKU), ``price``, ``productUrl``, |
| | | ``parentId``, ``deleted``, ``category``, ``additionalCategories``, ``image`` |
| ``transactions`` | ``POST /v4/transactions/batch`` | ``orderId`` and ``eventSalt`` (the identifier), ``client``, |
| | | ``recordedAt``, ``products``, ``revenue`` |

What an ``object`` and its ``options`` name is parsed once, by the target model (``target.py``).
Which facts are verified and which are chosen here: the client module's docstring and
docs/platforms/synerise.md.
"""

from __future__ import annotations

import math
import re
from datetime import date
from decimal import Decimal
from typing import Any

from activation_pipeline.platforms.base import E164_DIGITS, Record, TargetError, email_address_problem
from activation_pipeline.platforms.http import json_value
from activation_pipeline.platforms.synerise.target import SyneriseTarget

PROFILE_FIELDS = frozenset(
    {
        "email",
        "phone",
        "firstName",
        "lastName",
        "displayName",
        "avatarUrl",
        "birthDate",
        "company",
        "city",
        "address",
        "zipCode",
        "province",
        "countryCode",
        "sex",
        "tags",
        "uuid",
    }
)
PROFILE_REQUIRED = ("email", "firstName", "lastName")  # with customId: the Magento plugin's required attributes
AGREEMENTS = frozenset({"email", "sms", "push", "webPush", "bluetooth", "rfid", "wifi"})
SEXES = ("FEMALE", "MALE", "NOT_SPECIFIED", "OTHER")
ITEM_REQUIRED = ("price", "productUrl", "parentId", "category", "image")  # additionalCategories: defaults to [category]
ITEM_RESERVED = frozenset({"itemId", "deleted"})  # set by the client: the identifier and the soft-delete flag
TAX_RATE_FIELD = "tax_rate"  # read for tax_inclusive_price, never sent
LABEL_SUFFIX = "_label"  # `<field>_label` is the option label of `<field>`: sent in its place under labels_as_values
TRANSACTION_FIELDS = frozenset(
    {
        "client.customId",
        "client.email",
        "client.uuid",
        "recordedAt",
        "products",
        "currency",
        "revenue",
        "value",
        "discountAmount",
        "source",
        "paymentInfo.method",
    }
)
SOURCES = ("WEB_DESKTOP", "WEB_MOBILE", "MOBILE_APP", "POS", "MOBILE", "DESKTOP")
PRODUCT_MONEY = ("finalUnitPrice", "regularPrice", "netUnitPrice")
ATTRIBUTE_NAME = re.compile(r"^[-_a-zA-Z0-9]+$")
PHONE = re.compile(rf"^\+?{E164_DIGITS}$")  # E.164 digits, "+" optional (Synerise stores it as text)
MAX_STRING = 4096


# --- config-time checks (PlatformSpec.activation_problem) ---------------------------------
def activation_problem(activation: Any) -> tuple[str, str] | None:
    """(field, problem) when an activation cannot work against Synerise; checked at config load, after
    its operation (``object_operations``) and its object and options (``SyneriseTarget.parse``)."""
    scoped = activation.object.replace("{scope}", activation.scope.values[0]) if activation.scope else activation.object
    try:
        target = SyneriseTarget.parse(scoped, activation.options)
    except TargetError as refused:
        return refused.field, str(refused)
    fields = [*activation.mapping, *activation.custom_attributes]
    return {"profiles": _profile_problem, "subscriptions": _subscription_problem, "catalog": _catalog_problem, "transactions": _transaction_problem}[
        target.kind
    ](activation, target, fields)


def _missing(activation: Any, required: tuple[str, ...], what: str) -> tuple[str, str] | None:
    missing = [name for name in required if name not in activation.mapping]
    if missing:
        return "mapping", (f"{what} always send {', '.join(required)}: map {', '.join(missing)} to a segment column (a null value is sent as null)")
    return None


def _profile_problem(activation: Any, target: SyneriseTarget, fields: list[str]) -> tuple[str, str] | None:
    for name in fields:
        if name == "customId":
            return f"mapping.{name}", "customId is the identifier here (`identifier:` names its column, default the primary key)"
        if "." in name:
            return f"mapping.{name}", "profile fields have no dots (agreements belong to the `subscriptions` object)"
    return _missing(activation, PROFILE_REQUIRED, "profiles")


def _subscription_problem(activation: Any, target: SyneriseTarget, fields: list[str]) -> tuple[str, str] | None:
    if activation.identifier is None:
        return "identifier", "subscriptions are matched by email: set `identifier:` to the segment column holding it"
    agreements = [name for name in fields if name.startswith("agreements.")]
    if not agreements:
        return "mapping", "map at least one agreements.<channel> (e.g. agreements.email: subscribed) to a boolean column"
    for name in fields:
        channel = name.split(".", 1)[1] if name.startswith("agreements.") else None
        if channel is not None and channel not in AGREEMENTS:
            return f"mapping.{name}", f"unknown agreement; allowed: {', '.join(sorted(AGREEMENTS))}"
        if channel is None and name != "customId":
            return f"mapping.{name}", "subscriptions send agreements.<channel> (and optionally customId) only"
    return None


def _catalog_problem(activation: Any, target: SyneriseTarget, fields: list[str]) -> tuple[str, str] | None:
    for name in fields:
        if name in ITEM_RESERVED:
            return f"mapping.{name}", f"{name} is set by the client (itemId: the identifier; deleted: 0, or 1 when removed)"
        if "." in name:
            return f"mapping.{name}", "catalog attribute names allow letters, digits, '-' and '_'"
        if name.endswith(LABEL_SUFFIX) and name[: -len(LABEL_SUFFIX)] not in fields:
            return f"mapping.{name}", f"the option label of {name[: -len(LABEL_SUFFIX)]!r}, which is not mapped"
    if activation.operation != "delete_only":
        missing = _missing(activation, ITEM_REQUIRED, "catalog items")
        if missing:
            return missing
    if target.tax_inclusive_price and TAX_RATE_FIELD not in activation.mapping:
        return "mapping", f"tax_inclusive_price needs `{TAX_RATE_FIELD}` mapped to the tax rate column (0.2 for 20%); it is not sent"
    if target.labels_as_values and not any(name.endswith(LABEL_SUFFIX) for name in fields):
        return (
            "options.labels_as_values",
            "needs at least one `<field>_label` mapped beside `<field>` (e.g. colour: colour_id, colour_label: colour_label)",
        )
    return None


def _transaction_problem(activation: Any, target: SyneriseTarget, fields: list[str]) -> tuple[str, str] | None:
    if not any(name.startswith("client.") for name in activation.mapping):
        return "mapping", "transactions need the buyer: map client.customId and/or client.email"
    for name in activation.mapping:
        if "." in name and name not in TRANSACTION_FIELDS:
            return f"mapping.{name}", f"not a transaction field; allowed: {', '.join(sorted(TRANSACTION_FIELDS))}"
    for name in ("recordedAt", "products", "currency"):
        if name not in activation.mapping:
            return "mapping", f"transactions need {name} mapped (products: a list of structs with sku, quantity, finalUnitPrice)"
    return None


# --- value helpers ---------------------------------------------------------------------------
def wire(value: Any) -> Any:
    """A JSON-ready copy (the kit's ``json_value``), timestamps to the second as Synerise's own plugin sends them."""
    return json_value(value, timespec="seconds")


def number_problem(name: str, value: Any, minimum: float | None = 0.0) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return f"{name}: {value!r} is not a number"
    if not math.isfinite(float(value)):
        return f"{name}: {value} is not a finite number"
    if minimum is not None and float(value) < minimum:
        return f"{name}: {value} is below {minimum:g}"
    return None


def value_problem(name: str, value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return f"{name}: {value} is not a finite number"
    if isinstance(value, str) and len(value) > MAX_STRING:
        return f"{name}: string of {len(value)} characters exceeds {MAX_STRING}"
    if isinstance(value, dict):
        return next((p for k, v in value.items() if (p := value_problem(f"{name}.{k}", v))), None)
    if isinstance(value, (list, tuple)):
        return next((p for i, v in enumerate(value) if (p := value_problem(f"{name}[{i}]", v))), None)
    return None


def email_problem(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        return f"{name}: malformed email {value!r}"
    problem = email_address_problem(value)
    return f"{name}: {problem}" if problem else None


def phone_problem(name: str, value: Any) -> str | None:
    if value is None:
        return None
    return None if isinstance(value, str) and PHONE.fullmatch(value) else f"{name}: phone {value!r} is not + then 7 to 15 digits"


def _boolean(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, Decimal)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    return None


# --- profiles and subscriptions ----------------------------------------------------------------
def profile_problem(record: Record) -> str | None:
    for name, value in record.fields.items():
        if name == "email" or name == "client.email":
            problem = email_problem(name, value)
        elif name == "phone":
            problem = phone_problem(name, value)
        elif name == "sex" and value is not None:
            problem = None if value in SEXES else f"sex: {value!r} is not one of {', '.join(SEXES)}"
        elif name == "birthDate" and value is not None:
            text = wire(value)[:10] if isinstance(value, (date, str)) else ""
            problem = (
                None if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) and text > "1900-01-01" else f"birthDate: {value!r} is not a date after 1900-01-01"
            )
        elif name.startswith("agreements.") and value is not None:
            problem = None if _boolean(value) is not None else f"{name}: {value!r} is not a boolean"
        else:
            problem = value_problem(name, value)
        if problem:
            return problem
    return None


def profile_payload(record: Record, kind: str) -> dict[str, Any]:
    """One element of ``clients/batch``: native fields at the top, the rest under ``attributes``.

    A null native or custom value is sent as null (Synerise resets the field / deletes the
    attribute); a null email is left out (the profile keeps its address).
    """
    body: dict[str, Any] = {"email": record.identifier} if kind == "subscriptions" else {"customId": record.identifier}
    attributes: dict[str, Any] = {}
    agreements: dict[str, Any] = {}
    for name, value in record.fields.items():
        if name.startswith("agreements."):
            if value is not None:
                agreements[name.split(".", 1)[1]] = _boolean(value)
        elif name in PROFILE_FIELDS or name == "customId":
            if name == "email" and value is None:
                continue
            if name == "birthDate" and value is not None:
                value = wire(value)[:10]
            body[name] = wire(value)
        else:
            attributes[name] = wire(value)
    if agreements:
        body["agreements"] = agreements
    if attributes:
        body["attributes"] = attributes
    return body


# --- catalog items -------------------------------------------------------------------------------
def item_problem(record: Record, target: SyneriseTarget) -> str | None:
    fields = record.fields
    if "price" in fields and fields["price"] is not None:
        problem = number_problem("price", fields["price"])
        if problem:
            return problem
    if target.tax_inclusive_price and fields.get("price") is not None:
        rate = fields.get(TAX_RATE_FIELD)
        if rate is None:
            return f"{TAX_RATE_FIELD} is null: the tax-inclusive price cannot be computed"
        problem = number_problem(TAX_RATE_FIELD, rate)
        if problem or float(rate) > 1:
            return problem or f"{TAX_RATE_FIELD}: {rate} is above 1 (give 0.2 for 20%)"
    for name, value in fields.items():
        problem = value_problem(name, value)
        if problem:
            return problem
        if not ATTRIBUTE_NAME.fullmatch(name):
            return f"{name}: catalog attribute names allow letters, digits, '-' and '_'"
    return None


def item_value(record: Record, target: SyneriseTarget) -> dict[str, Any]:
    """The ``value`` of an item: the always-sent attributes first, then the rest as mapped.

    ``tax_inclusive_price``: price × (1 + tax_rate), rounded to 2 decimals. ``labels_as_values``:
    ``<field>`` carries the value of ``<field>_label``. ``tax_rate`` and ``*_label`` are never sent.
    """
    fields = record.fields
    labels = target.labels_as_values
    value: dict[str, Any] = {"itemId": record.identifier, "deleted": 0}
    for name, raw in fields.items():
        if name == TAX_RATE_FIELD or (name.endswith(LABEL_SUFFIX) and name[: -len(LABEL_SUFFIX)] in fields):
            continue
        label = name + LABEL_SUFFIX
        value[name] = wire(fields[label] if labels and label in fields else raw)
    price = fields.get("price")
    if price is not None and target.tax_inclusive_price:
        gross = Decimal(str(price)) * (1 + Decimal(str(fields[TAX_RATE_FIELD])))
        value["price"] = float(gross.quantize(Decimal("0.01"), rounding="ROUND_HALF_UP"))
    if "additionalCategories" not in value:
        category = value.get("category")
        value["additionalCategories"] = [category] if category is not None else []
    return value
