"""Batch (batch.com) CEP Catalog API client.

Contract used, and where it comes from (details and open questions in docs/platforms/batch.md):

Verified in Batch's published OpenAPI pages (doc.batch.com/developer/api/cep/catalogs/*):
- base ``https://api.batch.com/{version}``, version 2.11 by default;
- auth ``Authorization: Bearer <REST API key>`` plus ``X-Batch-Project: <project key>``;
- ``GET /catalogs/view?name=``, ``POST /catalogs/create`` with typed fields (array, bool,
  date, float, integer, string, url), at most 25 fields and 5 catalogs per project;
- ``POST /catalogs/items/edit`` ``{"name", "items": [{"id", "action", "attributes"}]}``,
  at most 200 items per request, answered 202 with an ``indexing_token``;
  ``action: "add"`` creates or replaces an item;
- attribute keys ``^[a-z0-9_]+$`` (or wrapped ``date(...)``/``url(...)``), strings up to
  10,000 characters, arrays of at most 15 strings of at most 64 characters;
- errors ``{"error_code", "error_message"}``; 401 AUTHENTICATION_INVALID; 429 on the
  5 requests/s and 1000 items/s token buckets (the account's pacer keeps under both: each
  items/edit spends its item count).

Unverified, chosen here and kept configurable (``settings`` of the destination):
- the delete action's spelling: ``delete`` (``delete_action``);
- a 202 is taken as the platform's confirmation (the indexing that follows is not polled);
- a 400 on items/edit rejects the whole request: the engine splits it to isolate the item.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from activation_pipeline.platforms.base import (
    BatchRejected,
    ItemOutcome,
    Op,
    Record,
    SyncTarget,
    non_finite_number,
)
from activation_pipeline.platforms.batch.target import BatchTarget
from activation_pipeline.platforms.http import (
    PlatformSession,
    SessionClient,
    error_text,
    json_object,
    utc_wire,
)
from activation_pipeline.platforms.json_items import JsonField, JsonItemShape
from activation_pipeline.platforms.resource import ensure_reachable

MAX_STRING = 10_000
MAX_IDENTIFIER = 512
JSON_HEADERS = {"Content-Type": "application/json"}
MAX_ARRAY_ITEMS, MAX_ARRAY_STRING = 15, 64
FIELD_TYPES = {"string", "integer", "float", "bool", "date", "url", "array"}


class BatchClient(SessionClient):
    def __init__(self, session: PlatformSession, delete_action: str = "delete"):
        self.session = session
        self.delete_action = delete_action

    def prepare(self, target: SyncTarget[BatchTarget]) -> None:
        """Create the catalog on the first sync when it does not exist."""
        ensure_reachable(self.session.base_url)
        catalog = target.platform.catalog
        response = self.session.request("GET", "/catalogs/view", params={"name": catalog})
        if response.status_code == 200:
            return
        if response.status_code != 404:
            raise self.session.fail(response, f"view catalog {catalog!r}")
        if not target.field_types:
            return  # nothing to create a catalog from (delete-only): deletions from a missing catalog are no-ops
        fields = [{"name": name, "type": kind} for name, kind in sorted(target.field_types.items()) if kind in FIELD_TYPES][:25]
        created = self.session.request("POST", "/catalogs/create", json={"name": catalog, "fields": fields})
        if created.status_code not in (200, 201, 202):
            raise self.session.fail(created, f"create catalog {catalog!r}")

    def invalid_reason(self, target: SyncTarget[BatchTarget], record: Record, op: Op) -> str | None:
        if not record.identifier or len(record.identifier) > MAX_IDENTIFIER:
            return f"identifier must be a non-empty string of at most {MAX_IDENTIFIER} characters"
        if op == "delete":
            return None
        for name, value in record.fields.items():
            if problem := non_finite_number(name, value):
                return problem
            if isinstance(value, str) and len(value) > MAX_STRING:
                return f"{name}: string of {len(value)} characters exceeds {MAX_STRING}"
            if isinstance(value, list) and (len(value) > MAX_ARRAY_ITEMS or any(len(str(v)) > MAX_ARRAY_STRING for v in value)):
                return f"{name}: arrays hold at most {MAX_ARRAY_ITEMS} strings of {MAX_ARRAY_STRING} characters"
        return None

    def json_items(self, target: SyncTarget[BatchTarget], op: Op, field_types: Mapping[str, str]) -> JsonItemShape | None:
        """An ``add`` item, as ``send`` builds it in Python (``_attributes``) and checked as ``invalid_reason`` checks it."""
        if op == "delete":
            return None  # deletions are few and carry no attributes: built in Python

        def declared(name: str, kind: str) -> JsonField:
            if kind == "date":
                return JsonField(name, f"date({name})", kind, null_key=name)
            return JsonField(name, name, kind, max_length=MAX_STRING, max_items=MAX_ARRAY_ITEMS, max_item_length=MAX_ARRAY_STRING, finite=True)

        return JsonItemShape(
            identifier_key="id",
            constants=(("action", "add"),),
            fields_key="attributes",
            fields=tuple(declared(name, kind) for name, kind in field_types.items()),
            identifier_max_length=MAX_IDENTIFIER,
        )

    def send(self, target: SyncTarget[BatchTarget], op: Op, records: Sequence[Record]) -> list[ItemOutcome]:
        catalog = target.platform.catalog
        items: list[dict[str, Any]]
        if op != "delete" and all(r.item is not None for r in records):  # items built in the plan statement: spliced
            body = f'{{"name":{json.dumps(catalog)},"items":[{",".join(r.item for r in records if r.item is not None)}]}}'
            response = self.session.request("POST", "/catalogs/items/edit", data=body.encode(), headers=JSON_HEADERS, items=len(records))
        else:
            if op == "delete":
                items = [{"id": r.identifier, "action": self.delete_action} for r in records]
            else:
                items = [{"id": r.identifier, "action": "add", "attributes": _attributes(r.fields)} for r in records]
            response = self.session.request("POST", "/catalogs/items/edit", json={"name": catalog, "items": items}, items=len(items))
        if response.status_code in (200, 201, 202):
            return [ItemOutcome(r.key, "confirmed") for r in records]
        if op == "delete" and response.status_code == 404:
            # the catalog does not exist, so neither do the items: the deletion holds
            return [ItemOutcome(r.key, "confirmed", "catalog absent: nothing to delete") for r in records]
        if response.status_code in (400, 413, 422):
            raise BatchRejected(batch_error(response, self.session.redact), response.status_code)
        raise self.session.fail(response, f"edit items of catalog {catalog!r}")


def _attributes(fields: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, (date, datetime)):
            attributes[f"date({name})"] = utc_wire(value)
        elif isinstance(value, Decimal):
            attributes[name] = float(value)
        else:
            attributes[name] = value
    return attributes


def batch_error(response: Any, scrub: Callable[[str], str]) -> str:
    """Batch's ``{"error_code", "error_message"}`` as ``CODE: message`` (the status when it names no code);
    any other body through the kit's reader."""
    body = json_object(response)
    if "error_code" in body or "error_message" in body:
        text = f"{body.get('error_code', response.status_code)}: {body.get('error_message', '')}"
        return scrub(text)[:500]
    return error_text(response, scrub)
