"""The ``http`` target model: an activation's ``object`` is the endpoint's name (``{object}`` in the
paths and ``{{object}}`` in templates); ``options.record`` may give the activation its own upsert
per-record template (its mapping names the fields), checked like the destination's."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from activation_pipeline.platforms.base import TargetError
from activation_pipeline.platforms.http_destination.template import Template, TemplateError

ENDPOINT_NAME = r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$"
OPTIONS = ("record",)


@dataclass(frozen=True)
class HttpTarget:
    """An endpoint of the API, by name, and the activation's own per-record template, if any."""

    endpoint: str
    record: Template | None = None

    @classmethod
    def parse(cls, object_name: str, options: Mapping[str, Any]) -> HttpTarget:
        if not re.fullmatch(ENDPOINT_NAME, object_name):
            raise TargetError("object", f"{object_name!r}: http endpoint names are letters, digits, '_' and '-', in segments separated by '/'")
        if "record" not in options:
            return cls(object_name)
        try:
            return cls(object_name, Template.compile(options["record"], body=False))
        except TemplateError as refused:
            raise TargetError("options.record", str(refused)) from None


def unmapped_fields(activation: Any) -> tuple[str, str] | None:
    """``options.record`` naming a field the activation does not map: it would never be sent."""
    record = activation.options.get("record")
    if record is None:
        return None
    try:
        named = Template.compile(record, body=False).fields_named()
    except TemplateError:
        return None  # the target model says why
    mapped = {*activation.mapping, *activation.custom_attributes}
    missing = sorted(named - mapped)
    if missing:
        return "options.record", (f"{{{{fields.{missing[0]}}}}} names no mapped field; mapped: {', '.join(sorted(mapped)) or 'none'}")
    return None
