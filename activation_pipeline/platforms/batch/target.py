"""The Batch target model: an activation's ``object`` is the catalog's name (doc.batch.com/developer/api/cep/catalogs)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from activation_pipeline.platforms.base import TargetError

CATALOG_NAME = r"^[a-z0-9_]{1,100}$"


@dataclass(frozen=True)
class BatchTarget:
    """A Batch catalog, by name."""

    catalog: str

    @classmethod
    def parse(cls, object_name: str, options: Mapping[str, Any]) -> BatchTarget:
        if not re.fullmatch(CATALOG_NAME, object_name):
            raise TargetError("object", f"{object_name!r}: Batch catalog names are 1-100 lowercase letters, digits and underscores")
        return cls(object_name)
