"""One `PlatformCase` per entry of `activation_pipeline.platforms.PLATFORMS`: all a test needs to
run a project against that platform's emulator (the shared `conftest.Project` harness) and to hold
it to the platform contract (`test_platform_contract.py`).

A case provides, as data:

* ``platform``, ``destination`` (the name in the config) and ``destination_entry`` (its config
  entry: platform, secrets by env var, settings with a short ``backoff_seconds``; the contract sets
  ``max_retries`` to 0 in one test), plus ``base_url`` (the env var and the sandbox path it points
  at) and the secret env vars left unset, so the sandbox's demo credentials apply;
* the project's shape: ``tables`` (source → CSV columns), ``sources``, ``segments``, ``partitions``,
  the ``main_table``/``main_segment`` a test writes rows to, and the default activation
  (``activation_name``, ``activation``);
* demo-ish rows: ``row(i, version)`` (version 0 first, a higher version changes a mapped field)
  and ``invalid_row(i)`` (an identifier the platform cannot accept; the engine must never send it);
  the default activation must take ``operation: upsert`` (and ``mirror`` where the platform declares it);
* how to read the emulator: ``held(project)`` → the live records it holds, keyed and shaped as
  ``expected(rows)`` says they should be (through the sandbox's own ``/_sandbox/<platform>/...``
  routes, never the engine's report; a mirror leaver must be gone from it, or marked as the
  platform marks removals); ``sent_id(row)``: the id a ``reject_ids`` fault names for the row;
  ``edit_path``: a ``path_contains`` that matches the requests carrying records. The emulator must
  count those records in ``items_received`` of ``/_sandbox/stats``;
* ``views``: the platform's own readers and seeders, called as methods of the project
  (``project.catalog()`` on Batch, ``yotpo.customers()``, ``dd.members()``, …).

Adding a platform is one more ``PlatformCase(...)`` in ``CASES`` below (the generic ``http``
destination's comes from its own test module, ``http_destination_case.py``); the contract suite
then runs it, and fails until it exists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests

from activation_pipeline_tests.http_destination_case import http_case

if TYPE_CHECKING:
    from activation_pipeline_tests.conftest import Project

Row = dict[str, Any]
View = Callable[..., Any]


@dataclass(frozen=True)
class PlatformCase:
    platform: str
    destination: str
    destination_entry: dict[str, Any]
    base_url: tuple[str, str]  # (env var, path under the sandbox's URL)
    secret_envs: tuple[str, ...]
    tables: dict[str, list[str]]
    sources: dict[str, dict[str, Any]]
    segments: dict[str, dict[str, Any]]
    main_table: str
    main_segment: str
    activation_name: str
    activation: dict[str, Any]
    row: Callable[[int, int], Row]
    invalid_row: Callable[[int], Row]
    expected: Callable[[list[Row]], dict[str, Any]]
    held: Callable[[Project], dict[str, Any]]
    sent_id: Callable[[Row], str]
    edit_path: str
    partitions: dict[str, Any] | None = None
    empty_at_start: tuple[str, ...] = ()  # tables written empty when the project is made
    views: dict[str, View] = field(default_factory=dict)

    @property
    def primary_key(self) -> str:
        return self.segments[self.main_segment]["primary_key"]


def sandbox_get(project: Project, path: str, **params: Any) -> Any:
    """``GET /_sandbox/<path>``: the emulator's own view, no auth."""
    response = requests.get(f"{project.sandbox.url}/_sandbox/{path}", params=params, timeout=10)
    response.raise_for_status()
    return response.json()


def sandbox_post(project: Project, path: str, body: Any) -> None:
    requests.post(f"{project.sandbox.url}/_sandbox/{path}", json=body, timeout=10).raise_for_status()


def settings(**extra: Any) -> dict[str, Any]:
    # short backoff keeps fault tests fast; Retry-After is still honoured
    return {"backoff_seconds": 0.02, "max_retries": 6, **extra}


# --- Batch: a catalog of items keyed by sku ----------------------------------------------------


def product(i: int, price: float | None = None, name: str | None = None, brand: str = "Acme") -> Row:
    return {"sku": f"SKU-{i:04d}", "name": name or f"Product {i}", "price": price if price is not None else 10.0 + i, "brand": brand}


def expected_items(rows: list[Row]) -> dict[str, dict[str, Any]]:
    """What Batch should hold for these rows under the default activation's mapping."""
    return {r["sku"]: {"name": r["name"], "price": float(r["price"]), "brand": r["brand"]} for r in rows}


def batch_catalog(project: Project, name: str = "products") -> dict[str, dict[str, Any]]:
    response = requests.get(f"{project.sandbox.url}/_sandbox/batch/catalogs/{name}/items", timeout=10)
    if response.status_code == 404:  # not created yet
        return {}
    response.raise_for_status()
    return response.json()["items"]


BATCH = PlatformCase(
    platform="batch",
    destination="batch_test",
    destination_entry={
        "platform": "batch",
        "secrets": {"rest_api_key": "BATCH_REST_API_KEY", "project_key": "BATCH_PROJECT_KEY"},
        # client pacing off (the emulator's limiter is off too): volume tests stay at wire speed
        "settings": {"requests_per_second": 0, "items_per_second": 0, **settings()},
    },
    base_url=("BATCH_BASE_URL", "/batch/2.11"),
    secret_envs=("BATCH_REST_API_KEY", "BATCH_PROJECT_KEY"),
    tables={"products": ["sku", "name", "price", "brand"]},
    sources={"products": {"path": "products.csv"}},
    segments={"catalog": {"primary_key": "sku", "sql": "SELECT sku, name, price, brand FROM sources.products"}},
    main_table="products",
    main_segment="catalog",
    activation_name="sync_products",
    activation={
        "segment": "catalog",
        "destination": "batch_test",
        "object": "products",
        "identifier": "sku",
        "mapping": {"name": "name", "price": "price"},
        "custom_attributes": ["brand"],
        "max_items_per_request": 10,
        "concurrency": 2,
    },
    row=lambda i, version: product(i, name=f"Product {i} v{version}" if version else None),
    invalid_row=lambda i: {**product(i), "sku": "X" * 513},  # Batch ids hold at most 512 characters
    expected=expected_items,
    held=batch_catalog,
    sent_id=lambda r: r["sku"],
    edit_path="items/edit",
    views={"catalog": batch_catalog},
)


# --- Yotpo: customers matched by email ---------------------------------------------------------

YOTPO_STORE = "sandbox-store"
YOTPO_COLUMNS = ["customer_id", "external_id", "email", "phone", "first_name", "last_name", "tier", "ltv", "signed_up"]


def yotpo_person(i: int, **overrides: Any) -> Row:
    row = {
        "customer_id": i,
        "external_id": f"C{i:05d}",
        "email": f"person.{i}@example.com",
        "phone": f"+4477009{i:05d}",
        "first_name": f"First{i}",
        "last_name": f"Last{i}",
        "tier": "gold" if i % 2 else "silver",
        "ltv": 100.0 + i,
        "signed_up": "2025-01-02T03:04:05",
    }
    row.update(overrides)
    return row


def yotpo_by_email(rows: list[Row]) -> dict[str, dict[str, Any]]:
    """What Yotpo should hold for these rows under the default activation (matched by email)."""
    out = {}
    for r in rows:
        custom = {k: v for k, v in (("tier", r["tier"]), ("ltv", float(r["ltv"]) if r["ltv"] is not None else None)) if v}
        out[f"email:{r['email']}"] = {
            "email": r["email"],
            "first_name": r["first_name"],
            "last_name": r["last_name"],
            **({"custom_properties": custom} if custom else {}),
        }
    return out


def yotpo_customers(project: Project, store: str = YOTPO_STORE) -> dict[str, dict[str, Any]]:
    """Every customer of the store, keyed by external_id, else ``email:…``, else ``phone:…``;
    only the fields that hold a value (Yotpo's bookkeeping fields left out)."""
    body = sandbox_get(project, "yotpo/customers", store=store)
    found = list(body["customers"].values()) + list(body.get("without_external_id", []))
    out = {}
    for customer in found:
        key = customer["external_id"] or (f"email:{customer['email']}" if customer["email"] else f"phone:{customer['phone_number']}")
        assert key not in out, f"two customers for {key}"
        out[key] = {k: v for k, v in customer.items() if k not in ("yotpo_id", "created_at", "updated_at") and v not in (None, {}, [])}
    return out


YOTPO = PlatformCase(
    platform="yotpo",
    destination="yotpo_test",
    destination_entry={
        "platform": "yotpo",
        "secrets": {"store_id": "YOTPO_STORE_ID", "secret": "YOTPO_SECRET"},
        # client pacing off (the emulator's limiter is off too)
        "settings": {"requests_per_second": 0, **settings()},
    },
    base_url=("YOTPO_BASE_URL", "/yotpo/core/v3/stores/{store_id}"),
    secret_envs=("YOTPO_STORE_ID", "YOTPO_SECRET"),
    tables={"customers": YOTPO_COLUMNS},
    sources={"customers": {"path": "customers.csv"}},
    segments={"people": {"primary_key": "customer_id", "sql": "SELECT * FROM sources.customers"}},
    main_table="customers",
    main_segment="people",
    activation_name="to_yotpo",
    activation={
        "segment": "people",
        "destination": "yotpo_test",
        "object": "email",
        "identifier": "email",
        "mode": "full_then_delta",
        "operation": "upsert",
        "mapping": {"first_name": "first_name", "last_name": "last_name"},
        "custom_attributes": ["tier", "ltv"],
        "concurrency": 2,
    },
    row=lambda i, version: yotpo_person(i, first_name=f"First{i}v{version}" if version else f"First{i}"),
    invalid_row=lambda i: yotpo_person(i, email=f"person.{i}-at-example.com"),
    expected=yotpo_by_email,
    held=yotpo_customers,
    sent_id=lambda r: r["email"],
    edit_path="/customers",
    views={
        "customers": yotpo_customers,
        "precreate": lambda project, customers: sandbox_post(project, "yotpo/customers", {"store": YOTPO_STORE, "customers": customers}),
    },
)


# --- Dotdigital: a list of contacts keyed by email ---------------------------------------------

DOTDIGITAL_COLUMNS = ["email", "first_name", "tier", "ltv", "vip", "signed_up"]
DOTDIGITAL_LIST = "High value customers"


def dotdigital_person(i: int, **overrides: Any) -> Row:
    row = {
        "email": f"person.{i}@example.com",
        "first_name": f"First{i}",
        "tier": "gold" if i % 2 else "silver",
        "ltv": 100.5 + i,
        "vip": i % 3 == 0,
        "signed_up": f"2025-01-{i:02d}",
    }
    row.update(overrides)
    return row


def dotdigital_contact(row: Row) -> dict[str, Any]:
    """What the account should hold for a row under the default activation's mapping."""
    return {"FIRSTNAME": row["first_name"], "TIER": row["tier"], "LTV": row["ltv"], "VIP": row["vip"], "SIGNED_UP": row["signed_up"]}


def dotdigital_state(project: Project) -> dict[str, Any]:
    return sandbox_get(project, "dotdigital/state")


def dotdigital_members(project: Project, title: str = DOTDIGITAL_LIST) -> list[str]:
    return dotdigital_state(project)["lists"][title]["contacts"]


def dotdigital_list_contacts(project: Project) -> dict[str, dict[str, Any]]:
    """The data fields of every contact in the default list (none before the list exists)."""
    state = dotdigital_state(project)
    members = state["lists"].get(DOTDIGITAL_LIST, {}).get("contacts", [])
    return {email: state["contacts"][email]["dataFields"] for email in members}


DOTDIGITAL = PlatformCase(
    platform="dotdigital",
    destination="dd",
    destination_entry={
        "platform": "dotdigital",
        "secrets": {"api_user": "DOTDIGITAL_API_USER", "api_password": "DOTDIGITAL_API_PASSWORD"},
        "settings": {"backoff_seconds": 0.02, "poll_interval_seconds": 0.01, "collections": {"products": "Catalog_Default", "orders": "Orders"}},
    },
    base_url=("DOTDIGITAL_BASE_URL", "/dotdigital"),
    secret_envs=("DOTDIGITAL_API_USER", "DOTDIGITAL_API_PASSWORD"),
    partitions={"start_date": "2026-10-01"},
    tables={"people": DOTDIGITAL_COLUMNS, "orders": ["order_id", "email", "order_date", "total"]},
    sources={"people": {"path": "people.csv"}, "orders": {"path": "orders.csv", "partition_column": "order_date"}},
    segments={
        "people": {"primary_key": "email", "sql": "SELECT * FROM sources.people"},
        "people_by_id": {"primary_key": "person_id", "sql": r"SELECT regexp_extract(email, 'person\.(\d+)@', 1) AS person_id, * FROM sources.people"},
        "daily_orders": {"primary_key": "order_id", "sql": "SELECT * FROM sources.orders"},
    },
    main_table="people",
    main_segment="people",
    empty_at_start=("orders",),
    activation_name="to_list",
    activation={
        "title": DOTDIGITAL_LIST,
        "segment": "people",
        "destination": "dd",
        "object": "list",
        "mapping": {"FIRSTNAME": "first_name", "tier": "tier", "ltv": "ltv", "vip": "vip", "signed_up": "signed_up"},
        "concurrency": 2,
        "max_delete_fraction": 1.0,
    },
    row=lambda i, version: dotdigital_person(i, first_name=f"First{i}v{version}" if version else f"First{i}"),
    invalid_row=lambda i: dotdigital_person(i, email=f"person.{i}-at-example.com"),
    expected=lambda rows: {r["email"]: dotdigital_contact(r) for r in rows},
    held=dotdigital_list_contacts,
    sent_id=lambda r: r["email"],
    edit_path="/v3/import",
    views={
        "state": dotdigital_state,
        "members": dotdigital_members,
        "contacts": lambda project: {email: c["dataFields"] for email, c in dotdigital_state(project)["contacts"].items()},
        "seed_contacts": lambda project, contacts: sandbox_post(project, "dotdigital/contacts", contacts),
        "configure": lambda project, **values: sandbox_post(project, "dotdigital/config", values),
    },
)


# --- Connectif: products keyed by sku ----------------------------------------------------------

CONNECTIF_COLUMNS = ["sku", "name", "price", "product_url", "image_url", "category_path", "brand", "stock_status"]
CONNECTIF_MAPPING = {
    "name": "name",
    "unitPrice": "price",
    "productDetailUrl": "product_url",
    "imageUrl": "image_url",
    "categories": "category_path",
    "brand": "brand",
    "availability": "stock_status",
}
WIRE_AVAILABILITY = {"in_stock": "instock", "out_of_stock": "outofstock", "discontinued": "discontinued"}


def connectif_item(i: int, **overrides: Any) -> Row:
    row = {
        "sku": f"SKU-{i:04d}",
        "name": f"Product {i}",
        "price": 10.0 + i,
        "product_url": f"https://shop.example.com/p/{i}",
        "image_url": f"https://cdn.example.com/img/{i}.jpg",
        "category_path": "Women/Shoes/Boots" if i % 2 else "Men/Clothing",
        "brand": "Acme",
        "stock_status": "in_stock" if i % 3 else "out_of_stock",
    }
    row.update(overrides)
    return row


def connectif_expected(rows: list[Row], **overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What Connectif should hold for these rows under the default mapping (``overrides``: sku -> fields)."""
    out = {}
    for r in rows:
        out[r["sku"]] = {
            "name": r["name"],
            "unitPrice": float(r["price"]),
            "productDetailUrl": r["product_url"],
            "imageUrl": r["image_url"],
            "categories": [r["category_path"]],
            "brand": r["brand"],
            "availability": WIRE_AVAILABILITY[r["stock_status"]],
        }
    for sku, fields in overrides.items():
        out[sku.replace("_", "-")] = {**out.get(sku.replace("_", "-"), {}), **fields}
    return out


def connectif_products(project: Project) -> dict[str, dict[str, Any]]:
    """Every product of the account, keyed by store id, with only the fields that hold a value."""
    body = sandbox_get(project, "connectif/products")["products"]
    return {pid: {k: v for k, v in p.items() if v is not None and k not in ("id", "productId", "createdAt", "updatedAt")} for pid, p in body.items()}


CONNECTIF = PlatformCase(
    platform="connectif",
    destination="connectif_test",
    destination_entry={"platform": "connectif", "secrets": {"api_key": "CONNECTIF_API_KEY"}, "settings": settings()},
    base_url=("CONNECTIF_BASE_URL", "/connectif"),
    secret_envs=("CONNECTIF_API_KEY",),
    tables={"products": CONNECTIF_COLUMNS},
    sources={"products": {"path": "products.csv"}},
    segments={"catalog": {"primary_key": "sku", "sql": "SELECT * FROM sources.products"}},
    main_table="products",
    main_segment="catalog",
    activation_name="to_connectif",
    activation={
        "segment": "catalog",
        "destination": "connectif_test",
        "object": "products",
        "identifier": "sku",
        "mode": "full_then_delta",
        "operation": "upsert",
        "mapping": CONNECTIF_MAPPING,
        "concurrency": 2,
    },
    row=lambda i, version: connectif_item(i, name=f"Product {i} v{version}" if version else f"Product {i}"),
    invalid_row=lambda i: connectif_item(i, sku="X" * 256),  # store product ids hold at most 255 characters
    expected=connectif_expected,
    # a mirror leaver stays in the account, discontinued: the live products are the others
    held=lambda project: {k: p for k, p in connectif_products(project).items() if p.get("availability") != "discontinued"},
    sent_id=lambda r: r["sku"],
    edit_path="/products/",
    views={"products": connectif_products},
)


# --- Synerise: catalog items keyed by sku (profiles, subscriptions and events in test_synerise.py) ---

SYNERISE_TABLES = {
    "customers": ["customer_id", "email", "phone", "first_name", "last_name", "tier", "ltv", "store_view"],
    "products": ["sku", "parent_sku", "name", "price", "tax_rate", "colour_id", "colour_label", "category_path", "image_url", "product_url"],
    "subscribers": ["subscriber_id", "email", "status"],
    "orders": ["order_id", "customer_id", "email", "order_date", "created_at", "currency", "store_view"],
    "order_lines": ["order_id", "line_no", "sku", "quantity", "unit_price"],
}
SYNERISE_SEGMENTS = {
    "people": {"primary_key": "customer_id", "sql": "SELECT * FROM sources.customers"},
    "catalog": {"primary_key": "sku", "sql": "SELECT * FROM sources.products"},
    "newsletter": {
        "primary_key": "subscriber_id",
        "sql": "SELECT subscriber_id, email, status = 'subscribed' AS subscribed FROM sources.subscribers",
    },
    "orders_with_lines": {
        "primary_key": "order_id",
        "sql": """
        SELECT o.order_id, o.order_date, o.created_at, o.customer_id::VARCHAR AS customer_id, o.email, o.currency, o.store_view,
               list(struct_pack(sku := l.sku, quantity := l.quantity, finalUnitPrice := l.unit_price) ORDER BY l.line_no) AS products
        FROM sources.orders o JOIN sources.order_lines l USING (order_id)
        GROUP BY ALL""",
    },
}
SYNERISE_ITEMS = {
    "segment": "catalog",
    "concurrency": 2,
    "object": "catalog:products",
    "operation": "mirror",
    "custom_attributes": ["name"],
    "mapping": {"price": "price", "productUrl": "product_url", "parentId": "parent_sku", "category": "category_path", "image": "image_url"},
}


def synerise_product(i: int, **overrides: Any) -> Row:
    return {
        "sku": f"SKU-{i}",
        "parent_sku": "SKU-1" if i > 1 else None,
        "name": f"Product {i}",
        "price": 10.0 * i,
        "tax_rate": 0.2,
        "colour_id": i,
        "colour_label": ["black", "white", "red", "blue", "green"][i % 5],
        "category_path": "Women/Shoes",
        "image_url": f"https://cdn.example.com/{i}.jpg",
        "product_url": f"https://shop.example.com/p/{i}",
        **overrides,
    }


def synerise_item(row: Row, deleted: int = 0) -> dict[str, Any]:
    return {
        "itemId": row["sku"],
        "deleted": deleted,
        "price": row["price"],
        "productUrl": row["product_url"],
        "parentId": row["parent_sku"],
        "category": row["category_path"],
        "additionalCategories": [row["category_path"]],
        "image": row["image_url"],
        "name": row["name"],
    }


def synerise_state(project: Project, what: str) -> Any:
    return sandbox_get(project, f"synerise/{what}")


def synerise_items(project: Project, catalog: str = "products") -> dict[str, dict[str, Any]]:
    return synerise_state(project, "catalogs")["catalogs"].get(catalog, {}).get("items", {})


SYNERISE = PlatformCase(
    platform="synerise",
    destination="synerise_test",
    destination_entry={"platform": "synerise", "secrets": {"api_key": "SYNERISE_API_KEY"}, "settings": settings()},
    base_url=("SYNERISE_BASE_URL", "/synerise"),
    secret_envs=("SYNERISE_API_KEY",),
    partitions={"start_date": "2026-09-01"},
    tables=SYNERISE_TABLES,
    sources={t: {"path": f"{t}.csv", **({"partition_column": "order_date"} if t == "orders" else {})} for t in SYNERISE_TABLES},
    segments=SYNERISE_SEGMENTS,
    main_table="products",
    main_segment="catalog",
    empty_at_start=tuple(SYNERISE_TABLES),
    activation_name="to_synerise",
    activation={"destination": "synerise_test", **SYNERISE_ITEMS},
    row=lambda i, version: synerise_product(i, name=f"Product {i} v{version}" if version else f"Product {i}"),
    invalid_row=lambda i: synerise_product(i, sku="X" * 513),  # item keys hold at most 512 characters
    expected=lambda rows: {r["sku"]: synerise_item(r) for r in rows},
    # a mirror leaver is soft-deleted: the live items are the others
    held=lambda project: {k: v for k, v in synerise_items(project).items() if not v.get("deleted")},
    sent_id=lambda r: r["sku"],
    edit_path="/items/batch",
    views={
        "state": synerise_state,
        "items": synerise_items,
        "profiles": lambda project: {
            p.get("customId") or p["email"]: {k: v for k, v in p.items() if k != "clientId"} for p in synerise_state(project, "profiles")["profiles"]
        },
    },
)


HTTP = PlatformCase(**http_case())  # the generic templated REST destination (http_destination_case.py)

CASES: dict[str, PlatformCase] = {case.platform: case for case in (BATCH, YOTPO, DOTDIGITAL, CONNECTIF, SYNERISE, HTTP)}
