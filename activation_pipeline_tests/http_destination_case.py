"""What the platform contract suite needs for the generic ``http`` destination and its sandbox sink
(``activation_pipeline/sandbox/http_sink.py``): ``PlatformCase(**http_case())`` in platform_cases.py.

The rows are products keyed by sku; the sink stores each record whole, as the default templates
shape it: ``{"id": <sku>, "fields": {<mapped fields>}}`` (read back through ``/_sandbox/http/...``).
"""

from __future__ import annotations

from typing import Any

import requests

Row = dict[str, Any]
DESTINATION = "http_test"
ENDPOINT = "products"
COLUMNS = ["sku", "name", "price", "brand"]


def destination_entry(**settings: Any) -> dict[str, Any]:
    # short backoff keeps fault tests fast; Retry-After is still honoured
    return {
        "platform": "http",
        "secrets": {"token": "HTTP_API_TOKEN"},
        "settings": {"backoff_seconds": 0.02, "max_retries": 6, "max_items_per_request": 10, **settings},
    }


def activation(**overrides: Any) -> dict[str, Any]:
    return {
        "segment": "catalog",
        "destination": DESTINATION,
        "object": ENDPOINT,
        "identifier": "sku",
        "mapping": {"name": "name", "price": "price"},
        "custom_attributes": ["brand"],
        "max_items_per_request": 10,
        "concurrency": 2,
        **overrides,
    }


def row(i: int, version: int = 0) -> Row:
    return {"sku": f"SKU-{i:04d}", "name": f"Product {i}" + (f" v{version}" if version else ""), "price": 10.0 + i, "brand": "Acme"}


def invalid_row(i: int) -> Row:
    return {**row(i), "price": "inf"}  # JSON cannot carry an infinity: counted invalid, never sent


def expected(rows: list[Row]) -> dict[str, Any]:
    """What the sink should hold for these rows under the default templates and ``activation()``'s mapping."""
    return {r["sku"]: {"id": r["sku"], "fields": {"name": r["name"], "price": float(r["price"]), "brand": r["brand"]}} for r in rows}


def held(project: Any, endpoint: str = ENDPOINT) -> dict[str, Any]:
    """Every record the sink stores under the endpoint, by id: the platform's view, not the engine's."""
    response = requests.get(f"{project.sandbox.url}/_sandbox/http/{endpoint}/records", timeout=10)
    response.raise_for_status()
    return response.json()["records"]


def http_case() -> dict[str, Any]:
    """The keyword arguments of ``PlatformCase`` for the ``http`` platform."""
    return {
        "platform": "http",
        "destination": DESTINATION,
        "destination_entry": destination_entry(),
        "base_url": ("HTTP_BASE_URL", "/http"),
        "secret_envs": ("HTTP_API_TOKEN",),
        "tables": {"products": COLUMNS},
        "sources": {"products": {"path": "products.csv"}},
        "segments": {"catalog": {"primary_key": "sku", "sql": "SELECT sku, name, price, brand FROM sources.products"}},
        "main_table": "products",
        "main_segment": "catalog",
        "activation_name": "sync_products",
        "activation": activation(),
        "row": row,
        "invalid_row": invalid_row,
        "expected": expected,
        "held": held,
        "sent_id": lambda r: r["sku"],
        "edit_path": f"/{ENDPOINT}",
        "views": {"records": held},
    }
