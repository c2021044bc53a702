"""Synerise client: profiles, newsletter subscriptions, catalog items and transactions.

Contract used, and where it comes from (table, sources and open questions in
docs/platforms/synerise.md):

Verified (Synerise/php-sdk; Synerise/magento2-integration; hub.synerise.com
profile-management.yaml; help.synerise.com):
- hosts ``https://api.synerise.com`` (EU), ``api.azu.synerise.com``, ``api.geb.synerise.com``;
  v4 services under ``/v4``, catalogs under ``/catalogs`` (php-sdk ``src/Api/ClientBuilder.php``);
- ``POST /v4/auth/login/profile {"apiKey"}`` → ``{"token"}``, sent as ``Authorization: Bearer``;
  ``Api-Version: 4.4``; an expired token answers 401 ``Token expired.``: log in again once and
  replay (magento2-integration ``SyneriseApi/Sender/AbstractSender.php``);
- ``POST /v4/clients/batch``: ≤ 1000 profiles and ≤ 1 MB per request (php-sdk
  ``lib/V4/Clients/Batch/BatchRequestBuilder.php``), 202; null resets a native field and deletes
  a custom attribute; the plugin sends ``customId`` (entity id), ``email``, ``firstName``,
  ``lastName`` always (``Mapper/Data/CustomerCRUD.php``) and subscriptions as ``email`` +
  ``agreements.email`` 1/0 (``Mapper/Data/SubscriberCRUD.php``);
- catalogs: ``GET /catalogs/bags?searchBy=<name>``, ``POST /catalogs/bags {"name"}``,
  ``POST /catalogs/bags/{id}/items/batch [{"itemKey", "value"}]``, ``GET …/items/itemKey/{key}``
  (``value`` comes back as a JSON string); the plugin's item value holds ``itemId`` (SKU),
  ``deleted`` (0/1), ``price``, ``productUrl``, ``parentId``, ``category``,
  ``additionalCategories``, ``image`` (``Mapper/Data/ProductCRUD.php``) and deletes by
  re-upserting with ``deleted = 1``; a 404 on items means the catalog is gone: recreate it;
- ``POST /v4/transactions/batch``: the server derives one ``transaction.charge`` and one
  ``product.buy`` per product; the same ``orderId`` twice duplicates, the same ``eventSalt``
  overwrites (profile-management.yaml); the plugin salts with the order increment id;
  207 = "partially accepted" (the plugin logs it).

Chosen here where the public material is silent (all in this module or ``payloads.py``):
- the catalog upsert keeps the v4 limits (≤ 1000 items, ≤ 1 MB): each ``send`` splits its
  records into requests under the spec's ``max_bytes_per_request``; a 413 or a 400 naming no item is ``BatchRejected`` (the
  engine splits); a 400 naming items by index (``errors[].field`` = ``[i].…``) rejects those
  and resends the rest; a 207 rejects the items its ``errors`` name, the rest are confirmed;
- soft delete (mirror, delete_only): the item is read back and re-upserted whole with
  ``deleted: 1`` (the plugin resends all attributes); an item that is not in the catalog is
  confirmed as nothing to delete;
- a null email on a profile is left out (Synerise would reset it); other nulls are sent (``nulls: send``,
  the default; ``omit`` leaves them out, refused for catalog items, whose value is replaced whole).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from activation_pipeline.platforms.base import (
    BatchRejected,
    CredentialsRefused,
    ItemOutcome,
    NoAnswer,
    Op,
    PlatformError,
    Record,
    SyncTarget,
)
from activation_pipeline.platforms.http import (
    PlatformSession,
    SessionClient,
    TokenAuth,
    error_text,
    json_object,
)
from activation_pipeline.platforms.resource import ensure_reachable
from activation_pipeline.platforms.synerise.payloads import (
    item_problem,
    item_value,
    profile_payload,
    profile_problem,
)
from activation_pipeline.platforms.synerise.target import SyneriseTarget
from activation_pipeline.platforms.synerise.transactions import transaction_payload, transaction_problem

API_VERSION = "4.4"
ACCEPTED = (200, 201, 202, 204)
PARTIAL = 207
INDEX = re.compile(r"^\[(\d+)\]")
Pairs = list[tuple[Record, dict[str, Any]]]


class CatalogIds:
    """Catalog name -> id, found by name or created, shared by a client's threads (one client may serve
    several catalogs); replaced once when the platform says the catalog is gone, even if many threads see it."""

    def __init__(self, find_or_create: Callable[[str], int]):
        self._find_or_create = find_or_create
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()

    def found(self, name: str) -> int:
        """Looked up again (each run's ``prepare``: the catalog may have been deleted since)."""
        with self._lock:
            self._ids[name] = self._find_or_create(name)
            return self._ids[name]

    def id_of(self, name: str) -> int:
        with self._lock:
            if name not in self._ids:
                self._ids[name] = self._find_or_create(name)
            return self._ids[name]

    def replace(self, name: str, gone: int) -> int:
        with self._lock:
            if self._ids.get(name) in (None, gone):  # another thread may have recreated it already
                self._ids[name] = self._find_or_create(name)
            return self._ids[name]


class SyneriseClient(SessionClient):
    """One Synerise workspace. Thread-safe: the engine sends ``concurrency`` requests at a time."""

    def __init__(self, session: PlatformSession, api_key: str, max_bytes: int):
        self.session = session
        self._api_key = api_key
        self._max_bytes = max_bytes
        self._tokens = TokenAuth(self._login, self._headers, refused=(401,), platform="Synerise", describe=self._describe)
        self._catalogs = CatalogIds(self._find_or_create_catalog)

    # --- DestinationClient ---------------------------------------------------------------
    def prepare(self, target: SyncTarget[SyneriseTarget]) -> None:
        """Log in; for a catalog, find it by name or create it."""
        ensure_reachable(self.session.base_url)
        self._tokens.current()
        if target.platform.catalog is not None:
            self._catalogs.found(target.platform.catalog)

    def invalid_reason(self, target: SyncTarget[SyneriseTarget], record: Record, op: Op) -> str | None:
        kind = target.platform.kind
        if not record.identifier or len(record.identifier) > 512:
            return "the identifier must be a non-empty string of at most 512 characters"
        if op == "delete":
            return None
        if kind == "subscriptions":
            return profile_problem(Record(record.key, record.identifier, {"email": record.identifier, **record.fields}))
        if kind == "profiles":
            return profile_problem(record)
        if kind == "catalog":
            return item_problem(record, target.platform)
        return transaction_problem(record)

    def send(self, target: SyncTarget[SyneriseTarget], op: Op, records: Sequence[Record]) -> list[ItemOutcome]:
        """One outcome per record; ``target.partition`` (a day, or a store view) changes nothing here."""
        platform = target.platform
        if platform.catalog is not None:
            if op == "delete":
                return self._soft_delete(platform.catalog, records)
            return self._post_items(platform.catalog, [(r, {"itemKey": r.identifier, "value": item_value(r, platform)}) for r in records])
        if op == "delete":  # the load refuses it (SYNERISE_SPEC.object_operations): a guard, not a path
            raise PlatformError(f"{target.activation}: Synerise {platform.kind} cannot be deleted through this activation (upsert only)")
        if platform.kind == "transactions":
            return self._post_all(lambda: "/v4/transactions/batch", [(r, transaction_payload(r)) for r in records])
        return self._post_all(lambda: "/v4/clients/batch", [(r, profile_payload(r, platform.kind)) for r in records])

    # --- catalogs ------------------------------------------------------------------------
    def _find_or_create_catalog(self, name: str) -> int:
        response = self._call("GET", "/catalogs/bags", params={"searchBy": name, "limit": 100})
        if response.status_code != 200:
            raise self.session.fail(response, f"find catalog {name!r}")
        for bag in json_object(response).get("data") or []:
            if isinstance(bag, dict) and bag.get("name") == name:
                return int(bag["id"])
        created = self._call("POST", "/catalogs/bags", json={"name": name})
        if created.status_code not in ACCEPTED:
            raise self.session.fail(created, f"create catalog {name!r}")
        return int(json_object(created)["data"]["id"])

    def _post_items(self, catalog: str, pairs: Pairs) -> list[ItemOutcome]:
        posted_to: list[int] = []

        def path() -> str:
            posted_to.append(self._catalogs.id_of(catalog))
            return f"/catalogs/bags/{posted_to[-1]}/items/batch"

        # a 404: the catalog was deleted behind our back: create it again (as the plugin does)
        return self._post_all(path, pairs, on_missing=lambda: self._catalogs.replace(catalog, posted_to[-1]))

    def _soft_delete(self, catalog: str, records: Sequence[Record]) -> list[ItemOutcome]:
        """Re-upsert each item with ``deleted: 1`` and the attributes it holds (read back first)."""
        outcomes: list[ItemOutcome] = []
        pairs: Pairs = []
        for position, record in enumerate(records):
            try:
                path = f"/catalogs/bags/{self._catalogs.id_of(catalog)}/items/itemKey/{quote(record.identifier, safe='')}"
                response = self._call("GET", path)
            except NoAnswer as silence:  # the platform stopped answering: the rest waits for the next run
                message = self.session.redact(str(silence))
                waiting = [r for r, _ in pairs] + list(records[position:])
                return outcomes + [ItemOutcome(r.key, "no_answer", message) for r in waiting]
            if response.status_code == 404:
                outcomes.append(ItemOutcome(record.key, "confirmed", "not in the catalog: nothing to delete"))
                continue
            if response.status_code != 200:
                outcomes.append(ItemOutcome(record.key, "rejected", self._describe(response)))
                continue
            value = _stored_value(json_object(response))
            pairs.append((record, {"itemKey": record.identifier, "value": {**value, "itemId": record.identifier, "deleted": 1}}))
        return outcomes + (self._post_items(catalog, pairs) if pairs else [])

    # --- batches -------------------------------------------------------------------------
    def _post_all(self, path: Callable[[], str], pairs: Pairs, on_missing: Callable[[], object] | None = None) -> list[ItemOutcome]:
        """Post the payloads in requests of at most ``max_bytes``; one outcome per record."""
        outcomes: list[ItemOutcome] = []
        for chunk in _by_size(pairs, self._max_bytes):
            try:
                outcomes += self._post_chunk(path, chunk, on_missing)
            except NoAnswer as silence:
                outcomes += [ItemOutcome(r.key, "no_answer", self.session.redact(str(silence))) for r, _ in chunk]
        return outcomes

    def _post_chunk(self, path: Callable[[], str], pairs: Pairs, on_missing: Callable[[], object] | None) -> list[ItemOutcome]:
        outcomes: list[ItemOutcome] = []
        recreated = False
        while pairs:
            url = path()
            response = self._call("POST", url, data=_body([payload for _, payload in pairs]))
            status = response.status_code
            if status in ACCEPTED:
                return outcomes + [ItemOutcome(r.key, "confirmed") for r, _ in pairs]
            if status == 404 and on_missing is not None and not recreated:
                on_missing()
                recreated = True
                continue
            named = _named_items(response, len(pairs), self.session.redact)
            if status == PARTIAL:
                return outcomes + [
                    ItemOutcome(r.key, "rejected", named[i]) if i in named else ItemOutcome(r.key, "confirmed") for i, (r, _) in enumerate(pairs)
                ]
            if status == 400 and named:  # refused whole because of the items it names: reject those, resend the rest
                outcomes += [ItemOutcome(pairs[i][0].key, "rejected", message) for i, message in sorted(named.items())]
                pairs = [pair for i, pair in enumerate(pairs) if i not in named]
                continue
            if status in (400, 413, 422):
                raise BatchRejected(self._describe(response), status)
            raise self.session.fail(response, f"POST {url}")
        return outcomes

    # --- HTTP: token, one replay on 401 ----------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._tokens.request(self.session.request, method, path, **kwargs)
        if response.status_code == 403:
            raise self.session.fail(response, f"{method} {path} (does the API key have the permission for it?)")
        return response

    def _describe(self, response: Any) -> str:
        return error_text(response, self.session.redact)

    @staticmethod
    def _headers(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Api-Version": API_VERSION, "Content-Type": "application/json"}

    def _login(self) -> str:
        response = self.session.request("POST", "/v4/auth/login/profile", json={"apiKey": self._api_key}, headers={"Api-Version": API_VERSION})
        if response.status_code in (401, 403):
            raise CredentialsRefused(f"Synerise refused the API key (HTTP {response.status_code}): {self._describe(response)}", response.status_code)
        if response.status_code != 200:
            raise self.session.fail(response, "POST /v4/auth/login/profile")
        token = json_object(response).get("token")
        if not isinstance(token, str) or not token:
            raise PlatformError("POST /v4/auth/login/profile answered without a token")
        self.session.add_secret(token)
        return token


# --- reading answers ---------------------------------------------------------------------------
def _stored_value(item: dict[str, Any]) -> dict[str, Any]:
    """An item's ``value`` (a JSON string on read, possibly wrapped in ``data``)."""
    item = item.get("data", item) if isinstance(item.get("data"), dict) else item
    value = item.get("value")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    return value if isinstance(value, dict) else {}


def _named_items(response: Any, count: int, scrub: Callable[[str], str]) -> dict[int, str]:
    """Index -> message for each of ``count`` items an error body names (Synerise's ``errors[].field`` = ``[i]…``)."""
    try:
        errors = json.loads(scrub(response.text or "")).get("errors") or []
    except (ValueError, AttributeError):
        return {}
    named: dict[int, str] = {}
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        match = INDEX.match(str(error.get("field") or ""))
        if match and int(match.group(1)) < count:
            index = int(match.group(1))
            text = f"HTTP {response.status_code}: {error.get('field')}: {error.get('message', '')}"
            named[index] = f"{named[index]}; {text}" if index in named else text
    return named


def _body(value: Any) -> bytes:
    """The exact bytes a request carries: compact UTF-8 JSON (what ``_by_size`` measures is what is sent)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _by_size(pairs: Pairs, max_bytes: int) -> list[Pairs]:
    """Split into requests whose JSON bodies stay under ``max_bytes`` (a single oversized item goes alone)."""
    chunks: list[Pairs] = [[]]
    size = 2
    for pair in pairs:
        item = len(_body(pair[1])) + 1  # measured as sent (_body), plus its comma
        if chunks[-1] and size + item > max_bytes:
            chunks.append([])
            size = 2
        chunks[-1].append(pair)
        size += item
    return [chunk for chunk in chunks if chunk]
