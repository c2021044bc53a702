"""The Yotpo target model: an activation's ``object`` is the identifier kind its customers are matched by
(https://core-api.yotpo.com/reference/create-or-update-customer: ``external_id``, else one of ``email`` or
``phone_number``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from activation_pipeline.platforms.base import TargetError

# identifier kind (the activation's `object`) -> the customer field it is sent as
IDENTIFIER_FIELDS = {"external_id": "external_id", "email": "email", "phone": "phone_number"}
KIND_PATTERN = "^(" + "|".join(IDENTIFIER_FIELDS) + ")$"


@dataclass(frozen=True)
class YotpoTarget:
    """Yotpo customers matched by one identifier kind: ``external_id``, ``email`` or ``phone``."""

    kind: str

    @property
    def field(self) -> str:
        """The customer field the identifier is sent as (``phone`` → ``phone_number``)."""
        return IDENTIFIER_FIELDS[self.kind]

    @classmethod
    def parse(cls, object_name: str, options: Mapping[str, Any]) -> YotpoTarget:
        if object_name not in IDENTIFIER_FIELDS:
            raise TargetError("object", f"Yotpo object must be one of {', '.join(IDENTIFIER_FIELDS)}, not {object_name!r}")
        return cls(object_name)
