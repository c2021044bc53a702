"""Synerise transactions: the per-record checks and the JSON of ``POST /v4/transactions/batch``
(``orderId`` and ``eventSalt`` the identifier; shared value rules in ``payloads.py``)."""

from __future__ import annotations

import json
import re
from typing import Any

from activation_pipeline.platforms.base import Record
from activation_pipeline.platforms.synerise.payloads import (
    PRODUCT_MONEY,
    SOURCES,
    TRANSACTION_FIELDS,
    email_problem,
    number_problem,
    value_problem,
    wire,
)


def products_of(value: Any) -> Any:
    """The products column: a list of structs (dicts), or JSON text holding that list."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def transaction_problem(record: Record) -> str | None:
    fields = record.fields
    if not any(fields.get(name) for name in ("client.customId", "client.email", "client.uuid")):
        return "no buyer: client.customId, client.email and client.uuid are all empty"
    problem = email_problem("client.email", fields.get("client.email"))
    if problem:
        return problem
    currency = fields.get("currency")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        return f"currency: {currency!r} is not an ISO 4217 code (three capital letters)"
    if fields.get("recordedAt") is None:
        return "recordedAt is null"
    source = fields.get("source")
    if source is not None and source not in SOURCES:
        return f"source: {source!r} is not one of {', '.join(SOURCES)}"
    products = products_of(fields.get("products"))
    if not isinstance(products, list) or not products:
        return "products: a transaction needs a non-empty list of products (sku, quantity, finalUnitPrice)"
    for index, line in enumerate(products):
        where = f"products[{index}]"
        if not isinstance(line, dict):
            return f"{where}: not an object"
        if not line.get("sku"):
            return f"{where}.sku is empty"
        problem = number_problem(f"{where}.quantity", line.get("quantity"), 0.0) or (
            None if float(line["quantity"]) > 0 else f"{where}.quantity must be above 0"
        )
        problem = problem or number_problem(f"{where}.finalUnitPrice", line.get("finalUnitPrice"))
        if problem:
            return problem
    for name in ("revenue", "value"):
        if fields.get(name) is not None:
            problem = number_problem(name, fields[name])
            if problem:
                return problem
    return value_problem("metadata", {k: v for k, v in fields.items() if k not in TRANSACTION_FIELDS})


def _money(amount: Any, currency: str) -> dict[str, Any]:
    return {"amount": round(float(amount), 2), "currency": currency}


def transaction_payload(record: Record) -> dict[str, Any]:
    """One element of ``transactions/batch``; ``eventSalt`` = the order id makes a re-send overwrite."""
    fields = record.fields
    currency = fields["currency"]
    client = {name.split(".", 1)[1]: wire(value) for name, value in fields.items() if name.startswith("client.") and value is not None}
    products = []
    for line in products_of(fields["products"]):
        product = {k: wire(v) for k, v in line.items() if v is not None}
        for money in PRODUCT_MONEY:
            if money in product:
                product[money] = _money(product[money], currency)
        products.append(product)
    revenue = fields.get("revenue")
    if revenue is None:  # not computed by Synerise: Σ finalUnitPrice × quantity
        revenue = sum(p["finalUnitPrice"]["amount"] * float(p["quantity"]) for p in products)
    body: dict[str, Any] = {
        "client": client,
        "orderId": record.identifier,
        "recordedAt": wire(fields["recordedAt"]),
        "products": products,
        "revenue": _money(revenue, currency),
    }
    body["eventSalt"] = record.identifier  # stable per order: a re-send overwrites its events
    if fields.get("value") is not None:
        body["value"] = _money(fields["value"], currency)
    if fields.get("discountAmount") and float(fields["discountAmount"]) > 0:
        body["discountAmount"] = _money(fields["discountAmount"], currency)
    if fields.get("source") is not None:
        body["source"] = fields["source"]
    if fields.get("paymentInfo.method") is not None:
        body["paymentInfo"] = {"method": fields["paymentInfo.method"]}
    metadata = {k: wire(v) for k, v in fields.items() if k not in TRANSACTION_FIELDS and v is not None}
    if metadata:
        body["metadata"] = metadata
    return body
