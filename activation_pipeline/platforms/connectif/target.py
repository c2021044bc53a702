"""The Connectif target model: the account's product catalog, and what a removal does to a product
(``removal``: ``discontinue`` patches ``availability: discontinued``, ``delete`` sends a DELETE);
https://api-docs.connectif.cloud/reference/products/patchsert-product, docs/platforms/connectif.md."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from activation_pipeline.platforms.base import TargetError

CATALOG = "products"  # an account has one product catalog
REMOVALS = ("discontinue", "delete")


@dataclass(frozen=True)
class ConnectifTarget:
    """Connectif's product catalog, with how mirror and delete_only remove a product."""

    removal: str = "discontinue"

    @classmethod
    def parse(cls, object_name: str, options: Mapping[str, Any]) -> ConnectifTarget:
        if object_name != CATALOG:
            raise TargetError("object", f"{object_name!r}: the Connectif object is {CATALOG} (the catalog)")
        removal = options.get("removal", "discontinue")
        if removal not in REMOVALS:
            raise TargetError("options.removal", f"{removal!r} is not one of {', '.join(REMOVALS)}")
        return cls(removal)
