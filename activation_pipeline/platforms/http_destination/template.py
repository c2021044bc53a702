"""The body template language of the ``http`` destination: JSON with ``{{placeholders}}``, nothing else.

A template is a JSON value written in YAML (object, list, string, number, true/false, null). Strings
may hold placeholders; everything else is sent as written. There are no expressions, filters, loops
or code: a placeholder names a value, and the value is put in the parsed JSON structure (never
spliced into JSON text, so a quote or a brace in a value cannot change the body's shape).

Placeholders:

- ``{{identifier}}``: the record's platform id (the activation's ``identifier`` column);
- ``{{fields}}``: every mapped field of the record, as one object;
- ``{{fields.<name>}}``: one mapped field (a platform field name of ``mapping`` or ``custom_attributes``);
- ``{{object}}``: the activation's ``object`` (the endpoint's name); ``{{operation}}``: ``upsert`` or ``delete``;
- in a request body only: ``{{records}}``: the list of the request's records, each rendered with the
  per-record template (a body holding it makes the request a batch); ``{{count}}``: how many.

A string that is one placeholder and nothing else (``"{{fields.price}}"``) becomes the value with its
JSON type (number, boolean, object, list, null). A placeholder among other text (``"sku-{{identifier}}"``)
becomes text: strings as they are, null as an empty string, other values as JSON. A field the record
does not carry (left out by ``nulls: omit``) drops its key from the object (or its element from the
list) instead of sending null. Dates are sent as ``YYYY-MM-DD``, datetimes as ISO 8601 UTC with ``Z``,
decimals as numbers. Object keys are literal text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
NAME = re.compile(r"^(identifier|fields|object|operation|records|count|fields\.[A-Za-z0-9_]+)$")
BODY_ONLY = ("records", "count")
_ABSENT = object()  # a field the record does not carry: its key is left out


class TemplateError(ValueError):
    """A template that cannot be used; the message says which placeholder and why."""


@dataclass(frozen=True)
class Template:
    """A checked template: ``render(values)`` gives the JSON value to send."""

    source: Any
    names: frozenset[str]

    @classmethod
    def compile(cls, source: Any, *, body: bool) -> Template:
        """Check ``source``; ``body`` True allows ``{{records}}`` and ``{{count}}`` (request bodies)."""
        names: set[str] = set()
        _check(source, names, body, top=True)
        return cls(source, frozenset(names))

    @property
    def is_batch(self) -> bool:
        return "records" in self.names

    def fields_named(self) -> set[str]:
        return {name.split(".", 1)[1] for name in self.names if name.startswith("fields.")}

    def render(self, values: dict[str, Any]) -> Any:
        rendered = _render(self.source, values)
        return None if rendered is _ABSENT else rendered


def _check(node: Any, names: set[str], body: bool, top: bool = False) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str) or "{{" in key:
                raise TemplateError(f"object keys are literal text: {key!r} (placeholders go in values)")
            _check(value, names, body)
    elif isinstance(node, list):
        for value in node:
            _check(value, names, body)
    elif isinstance(node, str):
        found = PLACEHOLDER.findall(node)
        if "{{" in PLACEHOLDER.sub("", node) or "}}" in PLACEHOLDER.sub("", node):
            raise TemplateError(f"{node!r}: an unclosed or nested {{{{ }}}} (a placeholder is {{{{name}}}})")
        for name in found:
            if not NAME.fullmatch(name):
                raise TemplateError(
                    f"{{{{{name}}}}} is not a placeholder; use identifier, fields, fields.<name>, object, "
                    f"operation{', records, count' if body else ''}"
                )
            if name in BODY_ONLY and not body:
                raise TemplateError(f"{{{{{name}}}}} belongs in the request body, not in a per-record template")
            if name == "records" and PLACEHOLDER.fullmatch(node) is None:
                raise TemplateError('{{records}} must be a whole value ("items": "{{records}}"), not inside text')
            if name == "records" and "records" in names:
                raise TemplateError("{{records}} may appear once in a body")
            names.add(name)
    elif not (node is None or isinstance(node, (bool, int, float))):
        raise TemplateError(f"{node!r} is not a JSON value")
    if top and body and "records" in names and names - {"records", "count", "object", "operation"}:
        raise TemplateError("a batch body ({{records}}) names the records' values in the per-record template, not in the body")


def _render(node: Any, values: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {key: rendered for key, value in node.items() if (rendered := _render(value, values)) is not _ABSENT}
    if isinstance(node, list):
        return [rendered for value in node if (rendered := _render(value, values)) is not _ABSENT]
    if not isinstance(node, str) or "{{" not in node:
        return node
    whole = PLACEHOLDER.fullmatch(node)
    if whole:
        return _lookup(whole.group(1), values)
    return PLACEHOLDER.sub(lambda match: _text(_lookup(match.group(1), values)), node)


def _lookup(name: str, values: dict[str, Any]) -> Any:
    if name.startswith("fields."):
        return values["fields"].get(name[len("fields.") :], _ABSENT)
    return values[name]


def _text(value: Any) -> str:
    if value is None or value is _ABSENT:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
