"""The Synerise target model: an activation's ``object`` names what it writes, its ``options`` how
catalog items are built (docs/platforms/synerise.md; https://github.com/Synerise/magento2-integration).

| object | kind | operations |
|---|---|---|
| ``profiles`` | profiles | upsert |
| ``subscriptions`` | subscriptions | upsert |
| ``transactions`` | transactions | upsert (events are upserted by ``eventSalt``) |
| ``catalog:<name>`` | catalog | upsert, mirror, delete_only (soft delete: ``deleted: 1``) |
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from activation_pipeline.platforms.base import TargetError

Kind = Literal["profiles", "subscriptions", "transactions", "catalog"]
CATALOG_PREFIX = "catalog:"
OBJECT_PATTERN = r"^(profiles|subscriptions|transactions|catalog:.+)$"
CATALOG_NAME = re.compile(r"[A-Za-z0-9]+")
OPTIONS = ("tax_inclusive_price", "labels_as_values")  # both about catalog items
UPSERT_ONLY = frozenset({"upsert"})
# operations per object (PlatformSpec.object_operations): only catalog items can be (soft) deleted
OBJECT_OPERATIONS = (
    (r"profiles|subscriptions|transactions", UPSERT_ONLY),
    (r"catalog:.+", frozenset({"upsert", "mirror", "delete_only"})),
)


@dataclass(frozen=True)
class SyneriseTarget:
    """What one activation writes: its kind, the catalog's name (catalogs only) and the item options."""

    kind: Kind
    catalog: str | None = None
    tax_inclusive_price: bool = False  # price × (1 + tax_rate) is sent
    labels_as_values: bool = False  # ``<field>`` carries the value of ``<field>_label``

    @classmethod
    def parse(cls, object_name: str, options: Mapping[str, Any]) -> SyneriseTarget:
        if not re.fullmatch(OBJECT_PATTERN, object_name):
            raise TargetError("object", f"{object_name!r}: Synerise objects are profiles, subscriptions, transactions or catalog:<name>")
        kind: Kind = "catalog" if object_name.startswith(CATALOG_PREFIX) else object_name  # type: ignore[assignment]
        catalog = object_name[len(CATALOG_PREFIX) :] if kind == "catalog" else None
        if catalog is not None and not CATALOG_NAME.fullmatch(catalog):
            raise TargetError("object", "Synerise catalog names are letters and digits only (catalog:<name>)")
        for option, value in options.items():
            if not isinstance(value, bool):
                raise TargetError(f"options.{option}", f"must be true or false, not {value!r}")
            if kind != "catalog" and value:
                raise TargetError(f"options.{option}", "applies to catalog items only (object catalog:<name>)")
        return cls(kind, catalog, bool(options.get("tax_inclusive_price")), bool(options.get("labels_as_values")))


def operation_refusal(object_name: str, operation: str, allowed: frozenset[str]) -> str:
    """The load's words when an object does not take an operation (PlatformSpec.operation_refusal)."""
    kind = "catalog items" if object_name.startswith(CATALOG_PREFIX) else object_name
    why = " (events cannot be deleted or updated in place: transactions are upserted by eventSalt)" if kind == "transactions" else ""
    return f"Synerise {kind} support {', '.join(sorted(allowed))}, not {operation!r}{why}"
