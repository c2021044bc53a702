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
  5 requests/s and 1000 items/s token buckets.

Unverified, chosen here and kept configurable (``settings`` of the destination):
- the delete action's spelling: ``delete`` (``delete_action``);
- a 202 is taken as the platform's confirmation (the indexing that follows is not polled);
- a 400 on items/edit rejects the whole request: the engine splits it to isolate the item.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from dagster import ConfigurableResource
from pydantic import Field

from activation_pipeline.platforms.base import (
    BatchRejected,
    ItemOutcome,
    Op,
    PlatformSpec,
    Record,
    SessionClient,
    SyncTarget,
    ensure_reachable,
    resolve_base_url,
    resolve_secret,
    non_finite_number,
    resource_factory,
)
from activation_pipeline.sync.http import PlatformSession

MAX_ITEMS_PER_REQUEST = 200
MAX_STRING = 10_000
MAX_ARRAY_ITEMS, MAX_ARRAY_STRING = 15, 64
SANDBOX_REST_KEY, SANDBOX_PROJECT_KEY = "sandbox-batch-rest-key", "project_sandbox"
FIELD_TYPES = {"string", "integer", "float", "bool", "date", "url", "array"}


class BatchClient(SessionClient):
    def __init__(self, session: PlatformSession, delete_action: str = "delete"):
        self.session = session
        self.delete_action = delete_action

    def prepare(self, target: SyncTarget) -> None:
        """Create the catalog on the first sync when it does not exist."""
        ensure_reachable(self.session.base_url)
        response = self.session.request("GET", "/catalogs/view", params={"name": target.object})
        if response.status_code == 200:
            return
        if response.status_code != 404:
            raise self.session.fail(response, f"view catalog {target.object!r}")
        if not target.field_types:
            return  # nothing to create a catalog from (delete-only): deletions from a missing catalog are no-ops
        fields = [
            {"name": name, "type": kind}
            for name, kind in sorted(target.field_types.items())
            if kind in FIELD_TYPES
        ][:25]
        created = self.session.request("POST", "/catalogs/create", json={"name": target.object, "fields": fields})
        if created.status_code not in (200, 201, 202):
            raise self.session.fail(created, f"create catalog {target.object!r}")

    def invalid_reason(self, record: Record, op: Op) -> str | None:
        if not record.identifier or len(record.identifier) > 512:
            return "identifier must be a non-empty string of at most 512 characters"
        if op == "delete":
            return None
        for name, value in record.fields.items():
            if problem := non_finite_number(name, value):
                return problem
            if isinstance(value, str) and len(value) > MAX_STRING:
                return f"{name}: string of {len(value)} characters exceeds {MAX_STRING}"
            if isinstance(value, list) and (
                len(value) > MAX_ARRAY_ITEMS or any(len(str(v)) > MAX_ARRAY_STRING for v in value)
            ):
                return f"{name}: arrays hold at most {MAX_ARRAY_ITEMS} strings of {MAX_ARRAY_STRING} characters"
        return None

    def send(self, target: SyncTarget, op: Op, records: Sequence[Record]) -> list[ItemOutcome]:
        if op == "delete":
            items = [{"id": r.identifier, "action": self.delete_action} for r in records]
        else:
            items = [{"id": r.identifier, "action": "add", "attributes": _attributes(r.fields)} for r in records]
        response = self.session.request("POST", "/catalogs/items/edit", json={"name": target.object, "items": items})
        if response.status_code in (200, 201, 202):
            return [ItemOutcome(r.key, "confirmed") for r in records]
        if op == "delete" and response.status_code == 404:
            # the catalog does not exist, so neither do the items: the deletion holds
            return [ItemOutcome(r.key, "confirmed", "catalog absent: nothing to delete") for r in records]
        if response.status_code in (400, 413, 422):
            raise BatchRejected(self.session.redact(_error_message(response)), response.status_code)
        raise self.session.fail(response, f"edit items of catalog {target.object!r}")


def _attributes(fields: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
            attributes[f"date({name})"] = moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
        elif isinstance(value, date):
            attributes[f"date({name})"] = f"{value.isoformat()}T00:00:00Z"
        elif isinstance(value, Decimal):
            attributes[name] = float(value)
        else:
            attributes[name] = value
    return attributes


def _error_message(response: Any) -> str:
    try:
        body = response.json()
        return f"{body.get('error_code', response.status_code)}: {body.get('error_message', '')}"
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"


class BatchResource(ConfigurableResource):
    """A Batch project. Secrets are read from the environment variables named here."""

    base_url: str | None = Field(default=None, description="default: $BATCH_BASE_URL, else the sandbox")
    rest_api_key_env: str = "BATCH_REST_API_KEY"
    project_key_env: str = "BATCH_PROJECT_KEY"
    api_version: str = "2.11"
    delete_action: str = "delete"
    timeout_seconds: float = 30.0
    max_retries: int = 6
    backoff_seconds: float = 0.25

    def client(self) -> BatchClient:
        base_url = resolve_base_url("BATCH_BASE_URL", self.base_url, f"/batch/{self.api_version}")
        rest_key = resolve_secret(self.rest_api_key_env, base_url, SANDBOX_REST_KEY)
        project = resolve_secret(self.project_key_env, base_url, SANDBOX_PROJECT_KEY)
        session = PlatformSession(
            base_url,
            {"Authorization": f"Bearer {rest_key}", "X-Batch-Project": project},
            secrets=(rest_key, project),
            max_retries=self.max_retries,
            backoff_factor=self.backoff_seconds,
            timeout=self.timeout_seconds,
        )
        return BatchClient(session, delete_action=self.delete_action)


BATCH_SPEC = PlatformSpec(
    name="batch",
    operations=frozenset({"upsert", "mirror", "delete_only"}),
    max_items_per_request=MAX_ITEMS_PER_REQUEST,
    secrets=("rest_api_key", "project_key"),
    field_pattern=r"^[a-z0-9_]+$",
    field_rule="lowercase letters, digits and underscores (Batch attribute keys)",
    object_pattern=r"^[a-z0-9_]{1,100}$",
    object_rule="lowercase letters, digits and underscores (Batch catalog names)",
    resource_factory=resource_factory(BatchResource),
    settings=("api_version", "delete_action", "timeout_seconds", "max_retries", "backoff_seconds"),
    nulls_default="send",  # a null attribute is sent as null: the item holds null
    nulls_refused=(("omit", r".*", "items/edit `add` replaces an item whole (the sandbox's choice; whether `add` replaces an "
                    "existing id is [U] in REFERENCE.md §1.3), so a left-out attribute would be dropped, not kept; use "
                    "nulls: send (the attribute is stored as null)"),),
)
