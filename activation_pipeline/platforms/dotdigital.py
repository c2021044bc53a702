"""Dotdigital client: lists (address books) with contact data fields, and insight data.

Contract used, and where it comes from (table, sources and open questions in
docs/platforms/dotdigital.md). The vendor's OpenAPI documents (v2 swagger, v3 contacts
service, v3 insight data service; /work/shared/platforms/dotdigital-openapi/, published by
Dotdigital for developer.dotdigital.com) settle every path and body used here:

Verified:
- base ``https://{region}-api.dotdigital.com``, region r1/r2/r3; HTTP Basic auth with the API
  user's email and password, for v2 and v3 alike (``servers`` and ``basicAuth`` of the specs;
  dotmailer/dotdigital-php ``src/AbstractClient.php``);
- lists: ``GET /v2/address-books?select=<=1000&skip=`` (paged), ``POST /v2/address-books
  {"name" (<=128), "visibility"}`` -> ApiAddressBook ``{id, name, …}``; a duplicate name is refused
  with ``ERROR_ADDRESSBOOK_DUPLICATE`` (Magento extension ``Model/Apiconnector/Client.php``);
- data fields: ``GET /v2/data-fields``, ``POST /v2/data-fields {"name", "type" String|Numeric|Date|
  Boolean, "visibility", "defaultValue"}`` -> 201; a duplicate -> ``ERROR_NON_UNIQUE_DATAFIELD``;
- contacts: ``PUT /contacts/v3/import {"mergeOption", "contacts": [{"matchIdentifier",
  "identifiers", "dataFields", "lists"}]}`` -> 202 ``{"importId"}``; ``GET /contacts/v3/import/{id}``
  -> ``{status: Finished|NotFinished|RejectedByWatchdog|Failed|ExceedsAllowedContactLimit,
  summary, created[], updated[], failures[{identifiers, failures[{failureCode, description}]}]}``;
  a null data-field value clears the field; 50 MB per body; 25 active imports, the next one 429
  ``contacts:tooManyActiveImports`` (developer.dotdigital.com/reference-link/importcontacts-1);
- removal from a list (the contact stays in the account): ``GET /contacts/v3/{identifier}/{value}``
  (``contactId``, ``lists[].id``; 404 when unknown), then ``POST /v2/address-books/{id}/contacts/delete``
  with the contact ids -> 202 (a background job: the v2 swagger gives it no status endpoint);
- insight data: ``PUT /insightData/v3/import {"collectionName", "collectionScope" account|contact,
  "collectionType", "records": [{"key", "json", "contactIdentity"?}]}`` -> 202 ``{"importId"}``; the
  collection is created if missing; contact-scoped records must carry ``contactIdentity``; contacts
  are not created; ``GET /insightData/v3/import/{id}`` -> ``{status, summary, failures[{key,
  failureReason, details}]}``; at most 5 concurrent insight imports; ``DELETE
  /insightData/v3/accounts/{collection}/deleteRecords {"keys": [1..5000]}`` -> 200 ``{summary, notFound}``;
- errors: v3 ``{"errorCode", "description", "details"}``, v2 ``{"message": "… ERROR_CODE"}``;
  throttling is a 429 with ``x-ratelimit-scope/-limit/-reset`` (dotdigital-php
  ``TooManyRequestsException.php``; developer.dotdigital.com/docs/call-rate-limits).

Chosen here where the public material is silent or conflicting (all in this module or
dotdigital_contract.py):
- the insight status enum says ``Complete`` while the spec's own example and the Magento
  extension say ``Finished``: both end the poll; ``NotStarted``, ``Processing`` and ``NotFinished``
  keep it going; any other status (``Failed``, ``RejectedByWatchdog``, ``ExceedsAllowedContactLimit``)
  rejects every record of the batch with the status as message (the platform answered; the
  records are not confirmed, so the next run sends them again);
- a poll that outlasts ``poll_timeout_seconds`` leaves the batch ``no_answer`` (resent next run;
  imports are upserts, so a late finish does no harm);
- a contact is ``confirmed`` only when the report lists it under ``created`` or ``updated``; under
  ``failures`` it is ``rejected`` with ``failureCode: description``; in neither, ``no_answer``.
  An insight record is confirmed unless the report lists its key under ``failures``;
- a 400 on an import names no contact: ``BatchRejected`` (the engine splits to isolate the record);
- data fields are created and sent in upper case (the platform's names are case-insensitive);
  their type comes from the segment column: text String, integers and decimals Numeric, dates and
  timestamps Date, booleans Boolean; the standard fields (FIRSTNAME, LASTNAME, FULLNAME, GENDER,
  POSTCODE) are never created;
- the list is found by exact name (else case-insensitively) among every page of lists, or by
  ``options.list_id``; it is created private when missing; a create that races another one and
  gets ``ERROR_ADDRESSBOOK_DUPLICATE`` reads the list again;
- ``max_items_per_request`` 5000: the most a bulk delete takes (the imports are limited by the 50 MB
  body, not by a count; Magento's defaults are 2000 contacts and 5000 catalog items per import); a
  body over 50 MB is refused before sending as ``BatchRejected`` so the engine halves it;
- at most 25 contact and 5 insight imports in flight per client (the account's caps; a 429 beyond is
  retried by the shared session honouring ``Retry-After``).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field, field_validator

from activation_pipeline.platforms.base import (
    BatchRejected,
    ItemOutcome,
    Op,
    PlatformError,
    Record,
    SyncTarget,
    answer_error,
)
from activation_pipeline.platforms.declaration import PlatformSpec
from activation_pipeline.platforms.http import PlatformSession, SessionClient
from activation_pipeline.platforms.resource import PlatformResource, ensure_reachable, is_loopback, resolve_base_url, secret_env
from activation_pipeline.platforms.dotdigital_contract import (
    COLLECTION_NAME,
    CONTACT_INSIGHT,
    DATA_FIELD_TYPES,
    FIELD_PATTERN,
    FIELD_RULE,
    LIST,
    MAX_LIST_NAME,
    OBJECT_PATTERN,
    OBJECT_RULE,
    OPTIONS,
    STANDARD_FIELDS,
    Target,
    activation_problem,
    contact_failures,
    contact_import_body,
    contact_successes,
    data_field_name,
    error_message,
    identifier_problem,
    insight_failures,
    insight_import_body,
    normalised,
    parse_target,
    value_problem,
)

MAX_ITEMS_PER_REQUEST = 5000
MAX_BODY_BYTES = 50 * 1024 * 1024
MAX_CONTACT_IMPORTS, MAX_INSIGHT_IMPORTS = 25, 5
PAGE_SIZE = 1000
REGION_URL = "https://{region}-api.dotdigital.com"
RUNNING = frozenset({"NotStarted", "NotFinished", "Processing"})
DONE = frozenset({"Finished", "Complete"})


class DotdigitalClient(SessionClient):
    """One Dotdigital account. Thread-safe: the engine sends ``concurrency`` batches at a time."""

    def __init__(self, session: PlatformSession, *, collections: dict[str, str], poll_interval: float, poll_timeout: float):
        self.session = session
        self.collections = collections
        self.poll_interval, self.poll_timeout = poll_interval, poll_timeout
        self._lock = threading.Lock()
        self._list_ids: dict[str, int] = {}  # activation -> list id, found or created by prepare()
        self._imports = {"contacts": threading.BoundedSemaphore(MAX_CONTACT_IMPORTS),
                         "insightData": threading.BoundedSemaphore(MAX_INSIGHT_IMPORTS)}

    # --- DestinationClient -------------------------------------------------------------------
    def prepare(self, target: SyncTarget) -> None:
        """Lists: find or create the list named after the title, then create missing data fields."""
        ensure_reachable(self.session.base_url)
        parsed = parse_target(target.object, target.options)
        if parsed.kind != LIST:
            return  # an insight collection is created by its first import
        self._list_id(target, parsed)
        self._ensure_data_fields(target)

    def invalid_reason(self, target: SyncTarget, record: Record, op: Op) -> str | None:
        parsed = parse_target(target.object, target.options)
        kind = parsed.kind
        if kind == LIST:
            problem = identifier_problem(parsed.match_identifier, record.identifier)
        else:
            problem = None if record.identifier and len(record.identifier) <= 255 else "record key must be 1 to 255 characters"
        if problem or op == "delete":
            return problem
        if kind == CONTACT_INSIGHT:
            problem = identifier_problem("email", record.fields.get(parsed.contact_email))
            if problem:
                return f"contact {parsed.contact_email}: {problem}"
        for name, value in record.fields.items():
            problem = value_problem(name, value, data_field=kind == LIST)
            if problem:
                return problem
        return None

    def send(self, target: SyncTarget, op: Op, records: Sequence[Record]) -> list[ItemOutcome]:
        parsed = parse_target(target.object, target.options)
        if op == "update":
            raise PlatformError("Dotdigital activations support upsert, mirror and delete_only (not update_only)")
        if parsed.kind == LIST:
            if op == "delete":
                return self._remove_from_list(target, parsed, records)
            body = contact_import_body(parsed, self._list_id(target, parsed), list(records))
            return self._import("contacts", body, records, lambda report: self._contact_outcomes(parsed, report, records))
        collection = self.collection_name(parsed.collection)
        if op == "delete":
            return self._delete_insight(collection, records)
        body = insight_import_body(parsed, collection, list(records))
        return self._import("insightData", body, records, lambda report: _insight_outcomes(report, records, self.session.redact))

    def collection_name(self, alias: str) -> str:
        return self.collections.get(alias, alias)

    # --- lists and data fields ---------------------------------------------------------------
    def _list_id(self, target: SyncTarget, parsed: Target) -> int:
        with self._lock:
            if target.activation in self._list_ids:
                return self._list_ids[target.activation]
            if parsed.list_id is not None:
                response = self.session.request("GET", f"/v2/address-books/{parsed.list_id}")
                if response.status_code != 200:
                    raise PlatformError(f"{target.activation}: options.list_id {parsed.list_id}: {self._message(response)}")
                list_id = parsed.list_id
            else:
                name = (target.title or target.activation)[:MAX_LIST_NAME]
                list_id = self._find_list(name) or self._create_list(name)
            self._list_ids[target.activation] = list_id
            return list_id

    def _find_list(self, name: str) -> int | None:
        skip, folded = 0, None
        while True:
            response = self.session.request("GET", "/v2/address-books", params={"select": PAGE_SIZE, "skip": skip})
            if response.status_code != 200:
                raise self._fail(response, "GET /v2/address-books")
            page = response.json()
            for book in page:
                if book.get("name") == name:
                    return int(book["id"])
                if folded is None and str(book.get("name", "")).lower() == name.lower():
                    folded = int(book["id"])
            if len(page) < PAGE_SIZE:
                return folded
            skip += PAGE_SIZE

    def _create_list(self, name: str) -> int:
        response = self.session.request("POST", "/v2/address-books", json={"name": name, "visibility": "Private"})
        if response.status_code in (200, 201):
            return int(response.json()["id"])
        if "ERROR_ADDRESSBOOK_DUPLICATE" in response.text:  # created meanwhile by another run
            found = self._find_list(name)
            if found is not None:
                return found
        raise self._fail(response, f"create list {name!r}")

    def _ensure_data_fields(self, target: SyncTarget) -> None:
        response = self.session.request("GET", "/v2/data-fields")
        if response.status_code != 200:
            raise self._fail(response, "GET /v2/data-fields")
        existing = {str(f.get("name", "")).upper() for f in response.json()}
        for name, logical in sorted(target.field_types.items()):
            upper = data_field_name(name)
            if upper in existing or upper in STANDARD_FIELDS:
                continue
            kind = DATA_FIELD_TYPES.get(logical)
            if kind is None:
                raise PlatformError(f"{target.activation}: mapping.{name}: a {logical} column cannot be a Dotdigital data "
                                    "field (text, number, date or yes/no only)")
            created = self.session.request("POST", "/v2/data-fields",
                                           json={"name": upper, "type": kind, "visibility": "Private", "defaultValue": None})
            if created.status_code not in (200, 201) and "ERROR_NON_UNIQUE_DATAFIELD" not in created.text:
                raise PlatformError(f"{target.activation}: creating data field {upper} ({kind}): {self._message(created)}")

    def _remove_from_list(self, target: SyncTarget, parsed: Target, records: Sequence[Record]) -> list[ItemOutcome]:
        """Take contacts out of the list (they stay in the account): look each up, then one bulk removal."""
        list_id = self._list_id(target, parsed)
        outcomes: dict[str, ItemOutcome] = {}
        members: dict[str, int] = {}
        for record in records:
            response = self.session.request("GET", f"/contacts/v3/{parsed.match_identifier}/{quote(record.identifier, safe='')}")
            if response.status_code == 404:
                outcomes[record.key] = ItemOutcome(record.key, "confirmed", "not in the account: nothing to remove")
            elif response.status_code == 200:
                contact = response.json()
                if any(int(book.get("id", -1)) == list_id for book in contact.get("lists") or []):
                    members[record.key] = int(contact["contactId"])
                else:
                    outcomes[record.key] = ItemOutcome(record.key, "confirmed", "not in the list: nothing to remove")
            elif 400 <= response.status_code < 500 and response.status_code not in (401, 403):
                outcomes[record.key] = ItemOutcome(record.key, "rejected", self._message(response))
            else:
                raise self._fail(response, "GET contact")
        if members:
            response = self.session.request("POST", f"/v2/address-books/{list_id}/contacts/delete",
                                            json=sorted(set(members.values())))
            if response.status_code == 404:  # the list itself is gone: its contacts are out of it already
                outcomes.update({key: ItemOutcome(key, "confirmed", "the list no longer exists: nothing to remove") for key in members})
                return [outcomes[r.key] for r in records]
            if response.status_code not in (200, 202, 204):
                if response.status_code == 400:
                    raise BatchRejected(self._message(response), response.status_code)
                raise self._fail(response, f"remove contacts from list {list_id}")
            outcomes.update({key: ItemOutcome(key, "confirmed") for key in members})
        return [outcomes[r.key] for r in records]

    # --- insight data --------------------------------------------------------------------------
    def _delete_insight(self, collection: str, records: Sequence[Record]) -> list[ItemOutcome]:
        keys = sorted({r.identifier for r in records})
        response = self.session.request("DELETE", f"/insightData/v3/accounts/{quote(collection, safe='')}/deleteRecords",
                                        json={"keys": keys})
        if response.status_code == 404 and "collectionNotFound" in response.text:
            return [ItemOutcome(r.key, "confirmed", "collection absent: nothing to delete") for r in records]
        if response.status_code != 200:
            if response.status_code == 400:
                raise BatchRejected(self._message(response), 400)
            raise self._fail(response, f"delete records of collection {collection}")
        missing = set(response.json().get("notFound") or [])
        return [ItemOutcome(r.key, "confirmed", "not in the collection: nothing to delete" if r.identifier in missing else "")
                for r in records]

    # --- the asynchronous import: submit, poll, read the report -------------------------------
    def _import(self, service: str, body: dict[str, Any], records: Sequence[Record], outcomes_of: Any) -> list[ItemOutcome]:
        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        if len(payload) > MAX_BODY_BYTES:
            raise BatchRejected(f"request body of {len(payload) / 1e6:.1f} MB exceeds Dotdigital's 50 MB", 413)
        with self._imports[service]:
            response = self.session.request("PUT", f"/{service}/v3/import", data=payload,
                                            headers={"Content-Type": "application/json"})
            if response.status_code in (401, 403):
                raise self._fail(response, f"PUT /{service}/v3/import (check the API user and the region)")
            if response.status_code in (400, 413):
                raise BatchRejected(self._message(response), response.status_code)
            if response.status_code != 202:
                raise self._fail(response, f"PUT /{service}/v3/import")
            import_id = str(response.json()["importId"])
            report = self._poll(service, import_id)
        if report is None:
            message = f"import {import_id} still running after {self.poll_timeout:.0f} s; resent next run"
            return [ItemOutcome(r.key, "no_answer", message) for r in records]
        status = report.get("status")
        if status not in DONE:
            message = f"import {import_id} ended {status}: nothing from this batch was confirmed"
            return [ItemOutcome(r.key, "rejected", message) for r in records]
        return outcomes_of(report)

    def _poll(self, service: str, import_id: str) -> dict[str, Any] | None:
        deadline = time.monotonic() + self.poll_timeout
        while True:
            response = self.session.request("GET", f"/{service}/v3/import/{quote(import_id, safe='')}")
            if response.status_code != 200:
                raise self._fail(response, f"GET /{service}/v3/import/{import_id}")
            report = response.json()
            if report.get("status") not in RUNNING:
                return report
            if time.monotonic() + self.poll_interval > deadline:
                return None
            time.sleep(self.poll_interval)

    def _contact_outcomes(self, parsed: Target, report: dict[str, Any], records: Sequence[Record]) -> list[ItemOutcome]:
        kind = parsed.match_identifier
        failures, successes = contact_failures(report, kind), contact_successes(report, kind)
        outcomes = []
        for record in records:
            value = normalised(kind, record.identifier)
            if value in failures:
                outcomes.append(ItemOutcome(record.key, "rejected", self.session.redact(failures[value])))
            elif value in successes:
                outcomes.append(ItemOutcome(record.key, "confirmed"))
            else:
                outcomes.append(ItemOutcome(record.key, "no_answer", f"the import report does not mention {kind} {record.identifier}"))
        return outcomes

    # --- errors -------------------------------------------------------------------------------
    def _message(self, response: Any) -> str:
        return error_message(response, self.session.redact)

    def _fail(self, response: Any, what: str) -> PlatformError:
        return answer_error(response.status_code, f"{what}: {self._message(response)}")


def _insight_outcomes(report: dict[str, Any], records: Sequence[Record], redact: Callable[[str], str]) -> list[ItemOutcome]:
    failures = insight_failures(report)
    return [ItemOutcome(r.key, "rejected", redact(failures[r.identifier])) if r.identifier in failures else ItemOutcome(r.key, "confirmed")
            for r in records]


# --- Dagster resource and spec -------------------------------------------------------------
class DotdigitalResource(PlatformResource):
    """A Dotdigital account. The API user's email and password are read from the environment variables named here."""

    PLATFORM: ClassVar[str] = "dotdigital"
    SANDBOX_PATH: ClassVar[str] = "/dotdigital"

    base_url: str | None = Field(default=None, description="default: the region's URL, else $DOTDIGITAL_BASE_URL, else the sandbox")
    region: str | None = Field(default=None, description="r1 (Europe), r2 (North America) or r3 (Asia Pacific)")
    api_user_env: str = secret_env("DOTDIGITAL_API_USER", sandbox="apiuser-sandbox@apiconnector.com")
    api_password_env: str = secret_env("DOTDIGITAL_API_PASSWORD", sandbox="sandbox-dotdigital-password")
    collections: dict[str, str] = Field(default_factory=dict, description="alias -> insight collection name")
    poll_interval_seconds: float | None = Field(default=None, gt=0, description="default 5 s (0.05 s against the sandbox)")
    poll_timeout_seconds: float = Field(default=600.0, gt=0)
    timeout_seconds: float = Field(default=121.0, gt=0, description="Dotdigital: allow 121 s before treating a call as failed")
    backoff_seconds: float = Field(default=0.5, ge=0)

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        if value is not None and value not in ("r1", "r2", "r3"):
            raise ValueError(f"{value!r} is not a Dotdigital region; allowed: r1, r2, r3")
        return value

    @field_validator("collections")
    @classmethod
    def _valid_collections(cls, value: dict[str, str]) -> dict[str, str]:
        for alias, name in value.items():
            if not re.fullmatch(COLLECTION_NAME, str(name)):
                raise ValueError(f"{alias}: {name!r} is not an insight collection name (^[-A-Za-z_][-A-Za-z0-9_]{{1,255}}$)")
        return value

    def client(self) -> DotdigitalClient:
        configured = self.base_url or (REGION_URL.format(region=self.region) if self.region else None)
        base_url = resolve_base_url("DOTDIGITAL_BASE_URL", configured, "/dotdigital")
        user, password = self.secret("api_user", base_url), self.secret("api_password", base_url)
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        session = self.session(base_url, {"Accept": "application/json", "Authorization": f"Basic {basic}"}, (user, password, basic))
        interval = self.poll_interval_seconds or (0.05 if is_loopback(base_url) else 5.0)
        return DotdigitalClient(session, collections=dict(self.collections), poll_interval=interval,
                                poll_timeout=self.poll_timeout_seconds)


def list_named_by_title(object_: str, title: str, options: dict[str, Any]) -> dict[str, str]:
    """A list without ``list_id`` is found (or created) by its name, the title: a new title is another list."""
    return {"list": title[:MAX_LIST_NAME]} if object_ == "list" and "list_id" not in options else {}


DOTDIGITAL_SPEC = PlatformSpec(
    name="dotdigital",
    operations=frozenset({"upsert", "mirror", "delete_only"}),
    resource=DotdigitalResource,
    max_items_per_request=MAX_ITEMS_PER_REQUEST,
    max_bytes_per_request=MAX_BODY_BYTES,
    field_pattern=FIELD_PATTERN,
    field_rule=FIELD_RULE,
    object_pattern=OBJECT_PATTERN,
    object_rule=OBJECT_RULE,
    activation_problem=activation_problem,
    activation_options=OPTIONS,
    target_options=("list_id", "match_identifier", "contact_email"),  # another list, contact key, or contact of an order
    target_details=list_named_by_title,
    default_schedule="every_6_hours",
    nulls_default="send",  # list contacts: a null data field clears it [V]; insight records are replaced whole
)
