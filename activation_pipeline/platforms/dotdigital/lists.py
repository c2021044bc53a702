"""Dotdigital lists (v2 address books), their contacts and the account's data fields.

Paths and bodies: the v2 API (developer.dotdigital.com/reference, address books and data fields) and
the v3 contacts service for the lookup of a contact; the contract table is in docs/platforms/dotdigital.md.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from activation_pipeline.platforms.base import BatchRejected, ItemOutcome, PlatformError, Record, SyncTarget
from activation_pipeline.platforms.dotdigital.contract import (
    DATA_FIELD_TYPES,
    STANDARD_FIELDS,
    answer_failure,
    data_field_name,
    error_message,
    names_error,
)
from activation_pipeline.platforms.dotdigital.target import MAX_LIST_NAME, DotdigitalTarget
from activation_pipeline.platforms.http import PlatformSession, offset_pages

PAGE_SIZE = 1000  # the most ``select`` takes on GET /v2/address-books


class Lists:
    """The account's lists and data fields, for one client. Thread-safe: a list is looked up (or created) once."""

    def __init__(self, session: PlatformSession):
        self.session = session
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, Any], int] = {}  # ("id", options.list_id) or ("name", title) -> the list's id

    def list_id(self, target: SyncTarget[DotdigitalTarget]) -> int:
        """The id of the activation's list: ``options.list_id`` (checked to exist), else the list named after the
        title, found by exact name (else case-insensitively) among every page of lists, else created private."""
        given = target.platform.list_id
        name = (target.title or target.activation)[:MAX_LIST_NAME]
        key = ("id", given) if given is not None else ("name", name)
        with self._lock:
            if key not in self._ids:
                self._ids[key] = self._existing(target, given) if given is not None else self._find(name) or self._create(name)
            return self._ids[key]

    def _existing(self, target: SyncTarget, list_id: int) -> int:
        response = self.session.request("GET", f"/v2/address-books/{list_id}")
        if response.status_code != 200:
            raise PlatformError(f"{target.activation}: options.list_id {list_id}: {error_message(response, self.session.redact)}")
        return list_id

    def _find(self, name: str) -> int | None:
        folded = None
        for book in offset_pages(self._page, PAGE_SIZE):
            if book.get("name") == name:
                return int(book["id"])
            if folded is None and str(book.get("name", "")).lower() == name.lower():
                folded = int(book["id"])
        return folded

    def _page(self, skip: int) -> list[dict[str, Any]]:
        response = self.session.request("GET", "/v2/address-books", params={"select": PAGE_SIZE, "skip": skip})
        if response.status_code != 200:
            raise answer_failure(response, "GET /v2/address-books", self.session.redact)
        return response.json()

    def _create(self, name: str) -> int:
        response = self.session.request("POST", "/v2/address-books", json={"name": name, "visibility": "Private"})
        if response.status_code in (200, 201):
            return int(response.json()["id"])
        if names_error(response, "ERROR_ADDRESSBOOK_DUPLICATE"):  # created meanwhile by another run
            found = self._find(name)
            if found is not None:
                return found
        raise answer_failure(response, f"create list {name!r}", self.session.redact)

    def ensure_data_fields(self, target: SyncTarget) -> None:
        """Create the data fields the activation maps that the account lacks (never the standard ones)."""
        response = self.session.request("GET", "/v2/data-fields")
        if response.status_code != 200:
            raise answer_failure(response, "GET /v2/data-fields", self.session.redact)
        existing = {str(f.get("name", "")).upper() for f in response.json()}
        for name, logical in sorted(target.field_types.items()):
            upper = data_field_name(name)
            if upper in existing or upper in STANDARD_FIELDS:
                continue
            kind = DATA_FIELD_TYPES.get(logical)
            if kind is None:
                raise PlatformError(
                    f"{target.activation}: mapping.{name}: a {logical} column cannot be a Dotdigital data field (text, number, date or yes/no only)"
                )
            created = self.session.request(
                "POST", "/v2/data-fields", json={"name": upper, "type": kind, "visibility": "Private", "defaultValue": None}
            )
            if created.status_code not in (200, 201) and not names_error(created, "ERROR_NON_UNIQUE_DATAFIELD"):
                raise PlatformError(f"{target.activation}: creating data field {upper} ({kind}): {error_message(created, self.session.redact)}")

    def remove(self, target: SyncTarget[DotdigitalTarget], records: Sequence[Record]) -> list[ItemOutcome]:
        """Take contacts out of the list (they stay in the account): look each up, then one bulk removal."""
        list_id = self.list_id(target)
        outcomes: dict[str, ItemOutcome] = {}
        members: dict[str, int] = {}
        for record in records:
            response = self.session.request("GET", f"/contacts/v3/{target.platform.match_identifier}/{quote(record.identifier, safe='')}")
            if response.status_code == 404:
                outcomes[record.key] = ItemOutcome(record.key, "confirmed", "not in the account: nothing to remove")
            elif response.status_code == 200:
                contact = response.json()
                if any(int(book.get("id", -1)) == list_id for book in contact.get("lists") or []):
                    members[record.key] = int(contact["contactId"])
                else:
                    outcomes[record.key] = ItemOutcome(record.key, "confirmed", "not in the list: nothing to remove")
            elif 400 <= response.status_code < 500 and response.status_code not in (401, 403):
                outcomes[record.key] = ItemOutcome(record.key, "rejected", error_message(response, self.session.redact))
            else:
                raise answer_failure(response, "GET contact", self.session.redact)
        if members:
            response = self.session.request("POST", f"/v2/address-books/{list_id}/contacts/delete", json=sorted(set(members.values())))
            if response.status_code == 404:  # the list itself is gone: its contacts are out of it already
                outcomes.update({key: ItemOutcome(key, "confirmed", "the list no longer exists: nothing to remove") for key in members})
                return [outcomes[r.key] for r in records]
            if response.status_code not in (200, 202, 204):
                if response.status_code == 400:
                    raise BatchRejected(error_message(response, self.session.redact), response.status_code)
                raise answer_failure(response, f"remove contacts from list {list_id}", self.session.redact)
            outcomes.update({key: ItemOutcome(key, "confirmed") for key in members})
        return [outcomes[r.key] for r in records]
