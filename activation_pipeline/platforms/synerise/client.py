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

Chosen here where the public material is silent (all in this module or synerise_payloads.py):
- the catalog upsert keeps the v4 limits (≤ 1000 items, ≤ 1 MB): each ``send`` splits its
  records into requests under 1 MB; a 413 or a 400 naming no item is ``BatchRejected`` (the
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
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field

from activation_pipeline.platforms.base import (
    BatchRejected,
    CredentialsRefused,
    ItemOutcome,
    NoAnswer,
    Op,
    PlatformError,
    Record,
    SyncTarget,
    answer_error,
)
from activation_pipeline.platforms.declaration import PlatformSpec
from activation_pipeline.platforms.http import PlatformSession, SessionClient, TokenAuth
from activation_pipeline.platforms.resource import PlatformResource, ensure_reachable, secret_env
from activation_pipeline.platforms.synerise_payloads import (
    activation_problem,
    catalog_name,
    item_problem,
    item_value,
    kind_of,
    profile_payload,
    profile_problem,
    transaction_payload,
    transaction_problem,
)

MAX_ITEMS_PER_REQUEST = 1000
MAX_BODY_BYTES = 1_000_000
API_VERSION = "4.4"
ACCEPTED = (200, 201, 202, 204)
PARTIAL = 207
INDEX = re.compile(r"^\[(\d+)\]")


class SyneriseClient(SessionClient):
    """One Synerise workspace. Thread-safe: the engine sends ``concurrency`` requests at a time."""

    def __init__(self, session: PlatformSession, api_key: str):
        self.session = session
        self._api_key = api_key
        self._tokens = TokenAuth(self._login, self._headers, refused=(401,), platform="Synerise",
                                 describe=lambda response: error_message(response, self.session.redact))
        self._catalog_lock = threading.Lock()
        self._catalog_id: int | None = None

    # --- DestinationClient ---------------------------------------------------------------
    def prepare(self, target: SyncTarget) -> None:
        """Log in; for a catalog, find it by name or create it."""
        ensure_reachable(self.session.base_url)
        self._tokens.current()
        if kind_of(target.object) == "catalog":
            self._catalog_id = self._find_or_create_catalog(catalog_name(target.object))

    def invalid_reason(self, target: SyncTarget, record: Record, op: Op) -> str | None:
        kind = kind_of(target.object)
        if not record.identifier or len(record.identifier) > 512:
            return "the identifier must be a non-empty string of at most 512 characters"
        if op == "delete":
            return None
        if kind == "subscriptions":
            return profile_problem(Record(record.key, record.identifier, {"email": record.identifier, **record.fields}))
        if kind == "profiles":
            return profile_problem(record)
        if kind == "catalog":
            return item_problem(record, target.options)
        return transaction_problem(record)

    def send(self, target: SyncTarget, op: Op, records: Sequence[Record]) -> list[ItemOutcome]:
        """One outcome per record; ``target.partition`` (a day, or a store view) changes nothing here."""
        kind = kind_of(target.object)
        if kind == "catalog":
            if op == "delete":
                return self._soft_delete(target, records)
            return self._post_items(target, [(r, {"itemKey": r.identifier, "value": item_value(r, target.options)}) for r in records])
        if op == "delete":
            raise PlatformError(f"{target.activation}: Synerise {kind} cannot be deleted through this activation (upsert only)")
        if kind == "transactions":
            return self._post_all("/v4/transactions/batch", [(r, transaction_payload(r)) for r in records])
        return self._post_all("/v4/clients/batch", [(r, profile_payload(r, kind)) for r in records])

    # --- catalogs ------------------------------------------------------------------------
    def _find_or_create_catalog(self, name: str) -> int:
        response = self._call("GET", "/catalogs/bags", params={"searchBy": name, "limit": 100})
        if response.status_code != 200:
            raise self._fail(response, f"find catalog {name!r}")
        for bag in _json(response).get("data") or []:
            if isinstance(bag, dict) and bag.get("name") == name:
                return int(bag["id"])
        created = self._call("POST", "/catalogs/bags", json={"name": name})
        if created.status_code not in ACCEPTED:
            raise self._fail(created, f"create catalog {name!r}")
        return int(_json(created)["data"]["id"])

    def _post_items(self, target: SyncTarget, pairs: list[tuple[Record, dict[str, Any]]]) -> list[ItemOutcome]:
        def path() -> str:
            return f"/catalogs/bags/{self._catalog_id}/items/batch"

        def recreate() -> None:
            with self._catalog_lock:  # the catalog was deleted behind our back: create it again (as the plugin does)
                self._catalog_id = self._find_or_create_catalog(catalog_name(target.object))

        return self._post_all(path, pairs, on_missing=recreate)

    def _soft_delete(self, target: SyncTarget, records: Sequence[Record]) -> list[ItemOutcome]:
        """Re-upsert each item with ``deleted: 1`` and the attributes it holds (read back first)."""
        outcomes: list[ItemOutcome] = []
        pairs: list[tuple[Record, dict[str, Any]]] = []
        for position, record in enumerate(records):
            try:
                response = self._call("GET", f"/catalogs/bags/{self._catalog_id}/items/itemKey/{quote(record.identifier, safe='')}")
            except NoAnswer as silence:  # the platform stopped answering: the rest waits for the next run
                message = self.session.redact(str(silence))
                waiting = [r for r, _ in pairs] + list(records[position:])
                return outcomes + [ItemOutcome(r.key, "no_answer", message) for r in waiting]
            if response.status_code == 404:
                outcomes.append(ItemOutcome(record.key, "confirmed", "not in the catalog: nothing to delete"))
                continue
            if response.status_code != 200:
                outcomes.append(ItemOutcome(record.key, "rejected", error_message(response, self.session.redact)))
                continue
            value = _stored_value(_json(response))
            pairs.append((record, {"itemKey": record.identifier, "value": {**value, "itemId": record.identifier, "deleted": 1}}))
        return outcomes + (self._post_items(target, pairs) if pairs else [])

    # --- batches -------------------------------------------------------------------------
    def _post_all(self, path: str | Callable[[], str], pairs: list[tuple[Record, dict[str, Any]]],
                  on_missing: Callable[[], None] | None = None) -> list[ItemOutcome]:
        """Post the payloads in requests of at most 1 MB; one outcome per record."""
        outcomes: list[ItemOutcome] = []
        for chunk in _by_size(pairs):
            try:
                outcomes += self._post_chunk(path, chunk, on_missing)
            except NoAnswer as silence:
                outcomes += [ItemOutcome(r.key, "no_answer", self.session.redact(str(silence))) for r, _ in chunk]
        return outcomes

    def _post_chunk(self, path: str | Callable[[], str], pairs: list[tuple[Record, dict[str, Any]]],
                    on_missing: Callable[[], None] | None) -> list[ItemOutcome]:
        outcomes: list[ItemOutcome] = []
        recreated = False
        while pairs:
            url = path() if callable(path) else path
            response = self._call("POST", url, data=_body([payload for _, payload in pairs]))
            status = response.status_code
            if status in ACCEPTED:
                return outcomes + [ItemOutcome(r.key, "confirmed") for r, _ in pairs]
            if status == 404 and on_missing is not None and not recreated:
                on_missing()
                recreated = True
                continue
            named = _named_items(response, pairs, self.session.redact)
            if status == PARTIAL:
                return outcomes + [ItemOutcome(r.key, "rejected", named[i]) if i in named else ItemOutcome(r.key, "confirmed")
                                   for i, (r, _) in enumerate(pairs)]
            if status == 400 and named:  # refused whole because of the items it names: reject those, resend the rest
                outcomes += [ItemOutcome(pairs[i][0].key, "rejected", message) for i, message in sorted(named.items())]
                pairs = [pair for i, pair in enumerate(pairs) if i not in named]
                continue
            if status in (400, 413, 422):
                raise BatchRejected(error_message(response, self.session.redact), status)
            raise self._fail(response, f"POST {url}")
        return outcomes

    # --- HTTP: token, one replay on 401 ----------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._tokens.request(self.session.request, method, path, **kwargs)
        if response.status_code == 403:
            raise self._fail(response, f"{method} {path} (does the API key have the permission for it?)")
        return response

    @staticmethod
    def _headers(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Api-Version": API_VERSION, "Content-Type": "application/json"}

    def _login(self) -> str:
        response = self.session.request("POST", "/v4/auth/login/profile", json={"apiKey": self._api_key},
                                        headers={"Api-Version": API_VERSION})
        if response.status_code in (401, 403):
            raise CredentialsRefused(f"Synerise refused the API key (HTTP {response.status_code}): "
                                     f"{error_message(response, self.session.redact)}", response.status_code)
        if response.status_code != 200:
            raise self._fail(response, "POST /v4/auth/login/profile")
        token = _json(response).get("token")
        if not isinstance(token, str) or not token:
            raise PlatformError("POST /v4/auth/login/profile answered without a token")
        self.session.add_secret(token)
        return token

    def _fail(self, response: Any, what: str) -> PlatformError:
        return answer_error(response.status_code, f"{what}: {error_message(response, self.session.redact)}")


# --- reading answers ---------------------------------------------------------------------------
def _json(response: Any) -> Any:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


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


def error_message(response: Any, scrub: Callable[[str], str] = lambda text: text) -> str:
    """Synerise's error body (``message``, ``errors[].field/message``), scrubbed before it is cut."""
    raw = scrub(response.text or "")
    try:
        body = json.loads(raw)
    except ValueError:
        return f"HTTP {response.status_code}: {raw.strip()[:300]}".rstrip(": ")
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}: {str(body)[:300]}"
    parts = [str(body[k]) for k in ("error", "message") if body.get(k)]
    for error in body.get("errors") or []:
        if isinstance(error, dict):
            parts.append(f"{error.get('field', '')}: {error.get('message', '')}".strip(": "))
    return f"HTTP {response.status_code}: {'; '.join(parts)[:500]}"


def _named_items(response: Any, pairs: list[tuple[Record, dict[str, Any]]], scrub: Callable[[str], str]) -> dict[int, str]:
    """Index -> message for each item an error body names (``errors[].field`` = ``[i]…``)."""
    try:
        errors = json.loads(scrub(response.text or "")).get("errors") or []
    except (ValueError, AttributeError):
        return {}
    named: dict[int, str] = {}
    for error in errors:
        if not isinstance(error, dict):
            continue
        match = INDEX.match(str(error.get("field") or ""))
        if match and int(match.group(1)) < len(pairs):
            index = int(match.group(1))
            text = f"HTTP {response.status_code}: {error.get('field')}: {error.get('message', '')}"
            named[index] = f"{named[index]}; {text}" if index in named else text
    return named


def _body(value: Any) -> bytes:
    """The exact bytes a request carries: compact UTF-8 JSON (what ``_by_size`` measures is what is sent)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _by_size(pairs: list[tuple[Record, dict[str, Any]]]) -> list[list[tuple[Record, dict[str, Any]]]]:
    """Split into requests whose JSON bodies stay under 1 MB (a single oversized item goes alone)."""
    chunks: list[list[tuple[Record, dict[str, Any]]]] = [[]]
    size = 2
    for pair in pairs:
        item = len(_body(pair[1])) + 1  # measured as sent (_body), plus its comma
        if chunks[-1] and size + item > MAX_BODY_BYTES:
            chunks.append([])
            size = 2
        chunks[-1].append(pair)
        size += item
    return [chunk for chunk in chunks if chunk]


# --- Dagster resource and spec -----------------------------------------------------------------
class SyneriseResource(PlatformResource):
    """A Synerise workspace. The API key is read from the environment variable named here."""

    PLATFORM: ClassVar[str] = "synerise"
    SANDBOX_PATH: ClassVar[str] = "/synerise"

    base_url: str | None = Field(default=None, description="default: $SYNERISE_BASE_URL, else the sandbox (real: https://api.synerise.com)")
    api_key_env: str = secret_env("SYNERISE_API_KEY", sandbox="sandbox-synerise-api-key")
    backoff_seconds: float = Field(default=0.5, ge=0)

    def client(self) -> SyneriseClient:
        base_url = self.resolved_base_url()
        api_key = self.secret("api_key", base_url)
        return SyneriseClient(self.session(base_url, {"Accept": "application/json"}, (api_key,)), api_key)


SYNERISE_SPEC = PlatformSpec(
    name="synerise",
    operations=frozenset({"upsert", "mirror", "delete_only"}),
    resource=SyneriseResource,
    max_items_per_request=MAX_ITEMS_PER_REQUEST,
    max_bytes_per_request=MAX_BODY_BYTES,
    field_pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?$",
    field_rule="letters, digits, '-' and '_' (agreements.<channel>, client.<id>, paymentInfo.method for the dotted ones)",
    object_pattern=r"^(profiles|subscriptions|transactions|catalog:.+)$",
    object_rule="profiles, subscriptions, transactions or catalog:<name>",
    activation_problem=activation_problem,
    activation_options=("tax_inclusive_price", "labels_as_values"),
    nulls_default="send",  # profiles: null resets a native field / deletes an attribute [V]; transactions never carry nulls
    nulls_refused=(("omit", r"catalog:.+", "items/batch stores an item's value whole (REFERENCE.md §5.3 [V]: Synerise's own "
                    "plugin resends every attribute), so a left-out attribute would be dropped, not kept; use nulls: send "
                    "(the attribute is stored as null)"),),
)
