"""Dotdigital client: lists (address books) with contact data fields, and insight data.

Contract used, and where it comes from (table, sources and open questions in
docs/platforms/dotdigital.md). The vendor's OpenAPI documents (v2 swagger, v3 contacts
service, v3 insight data service, published by Dotdigital for developer.dotdigital.com/reference;
mirrored by github.com/api-evangelist/dotdigital ``openapi/_original/``) settle every path and body
used here:

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

Chosen here where the public material is silent or conflicting (all in this package:
``target.py``, ``contract.py``, ``lists.py``, ``imports.py``):
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

from collections.abc import Sequence

from activation_pipeline.platforms.base import ItemOutcome, Op, PlatformError, Record, SyncTarget
from activation_pipeline.platforms.dotdigital.contract import (
    contact_import_body,
    identifier_problem,
    insight_import_body,
    value_problem,
)
from activation_pipeline.platforms.dotdigital.imports import Imports, contact_outcomes, insight_outcomes
from activation_pipeline.platforms.dotdigital.lists import Lists
from activation_pipeline.platforms.dotdigital.target import CONTACT_INSIGHT, DotdigitalTarget
from activation_pipeline.platforms.http import PlatformSession, SessionClient
from activation_pipeline.platforms.resource import ensure_reachable


class DotdigitalClient(SessionClient):
    """One Dotdigital account. Thread-safe: the engine sends ``concurrency`` batches at a time."""

    def __init__(self, session: PlatformSession, *, collections: dict[str, str], poll_interval: float, poll_timeout: float):
        self.session = session
        self.collections = collections
        self.lists = Lists(session)
        self.imports = Imports(session, poll_interval=poll_interval, poll_timeout=poll_timeout)

    def prepare(self, target: SyncTarget[DotdigitalTarget]) -> None:
        """Lists: find or create the list named after the title, then create missing data fields."""
        ensure_reachable(self.session.base_url)
        if not target.platform.is_list:
            return  # an insight collection is created by its first import
        self.lists.list_id(target)
        self.lists.ensure_data_fields(target)

    def invalid_reason(self, target: SyncTarget[DotdigitalTarget], record: Record, op: Op) -> str | None:
        parsed = target.platform
        if parsed.is_list:
            problem = identifier_problem(parsed.match_identifier, record.identifier)
        else:
            problem = None if record.identifier and len(record.identifier) <= 255 else "record key must be 1 to 255 characters"
        if problem or op == "delete":
            return problem
        if parsed.kind == CONTACT_INSIGHT:
            problem = identifier_problem("email", record.fields.get(parsed.contact_email))
            if problem:
                return f"contact {parsed.contact_email}: {problem}"
        for name, value in record.fields.items():
            problem = value_problem(name, value, data_field=parsed.is_list)
            if problem:
                return problem
        return None

    def send(self, target: SyncTarget[DotdigitalTarget], op: Op, records: Sequence[Record]) -> list[ItemOutcome]:
        parsed = target.platform
        if op == "update":
            raise PlatformError("Dotdigital activations support upsert, mirror and delete_only (not update_only)")
        if parsed.is_list:
            if op == "delete":
                return self.lists.remove(target, records)
            body = contact_import_body(parsed, self.lists.list_id(target), list(records))
            return self.imports.run("contacts", body, records, lambda report: contact_outcomes(parsed, report, records, self.session.redact))
        collection = self.collection_name(parsed.collection)
        if op == "delete":
            return self.imports.delete_insight(collection, records)
        body = insight_import_body(parsed, collection, list(records))
        return self.imports.run("insightData", body, records, lambda report: insight_outcomes(report, records, self.session.redact))

    def collection_name(self, alias: str) -> str:
        """An alias under the destination's ``settings.collections``, else the collection's own name."""
        return self.collections.get(alias, alias)
