"""``http``: a generic JSON-over-HTTP destination, for any platform we have no client for.

Built with the platform kit alone (docs/adding_a_platform.md): ``HttpResource`` is the resource model
(its fields are the destination's ``settings:``, validated by pydantic when the config loads),
``HTTP_SPEC`` the declaration, ``target.py`` the target model, ``client.py`` the client and
``template.py`` the body template language. Its emulator is ``activation_pipeline/sandbox/http_sink.py``.

Destination ``secrets:``
- ``token``: the environment variable holding the API secret (default ``HTTP_API_TOKEN``); sent as
  ``<auth_header>: <auth_scheme> <secret>``; never logged (the session scrubs it from every message).

Destination ``settings:`` (and ``base_url``, default ``$HTTP_BASE_URL``, else the sandbox's sink)
- ``auth_header`` (``Authorization``; empty: no auth header), ``auth_scheme`` (``Bearer``; empty: the
  header holds the secret alone, e.g. ``auth_header: X-Api-Key``, ``auth_scheme: ""``);
- ``upsert``, ``delete``: how each operation is sent, each ``{method, path, body, record}``:
  ``method`` POST | PUT | PATCH | DELETE; ``path`` under the base URL, with ``{object}`` (the
  activation's object) and, for one-record requests only, ``{identifier}`` (URL-quoted); ``body``: the
  request's JSON template (template.py): holding ``{{records}}``, the request is a batch and each record
  is rendered with ``record``; else one record per request, ``body`` naming its values (null: no body).
  Defaults: upsert ``POST /{object}`` ``{"items": "{{records}}"}`` with records
  ``{"id": "{{identifier}}", "fields": "{{fields}}"}``; delete ``POST /{object}/delete``
  ``{"ids": "{{records}}"}`` with records ``"{{identifier}}"``;
- ``max_items_per_request`` (100, at most 1000) and ``max_bytes_per_request`` (none): a batch is split
  into requests within both before sending; a record too big alone is counted invalid, never sent;
- ``requests_per_second`` (0: unpaced): the kit's ``Pacer`` spaces requests (429s are also waited out);
- ``rejected_statuses`` ([400, 409, 413, 422]): the platform refused the request for its content: a
  batch is split until the refused record stands alone, a single record is rejected with the body's
  words; ``absent_statuses`` ([404, 410]): a delete so answered holds (nothing to delete). 2xx
  confirms; 401/403 and any other status stop the run; 429/5xx are retried (``max_retries``);
- ``item_errors`` (none): ``{path, index, id, message}``: where a 2xx (e.g. 207) answer lists refused
  items (``path``: keys separated by ``.``, ``[*]`` every element, ``[n]`` one, e.g. ``errors[*]``),
  and the item error's field holding the record's position in the request (``index``) or its id
  (``id``) and its words (``message``): those records are rejected, the others confirmed;
- the kit's ``timeout_seconds``, ``max_retries``, ``backoff_seconds``.

Activation: ``object`` is the endpoint's name (letters, digits, ``_``, ``-``; ``/`` between segments);
``options.record``: the activation's own upsert per-record template (one-record mode: its body).
Operations: upsert, mirror, delete_only. Every request must be idempotent by identifier (a split
batch may send a record again).
"""

from __future__ import annotations

from typing import Any, ClassVar

from dagster import Config
from pydantic import Field, field_validator, model_validator

from activation_pipeline.platforms.declaration import PlatformSpec
from activation_pipeline.platforms.http import Pacer
from activation_pipeline.platforms.http_destination.client import HttpDestinationClient, ItemErrors, Operation, Rules, pointer_problem
from activation_pipeline.platforms.http_destination.target import HttpTarget, unmapped_fields
from activation_pipeline.platforms.http_destination.template import Template
from activation_pipeline.platforms.resource import PlatformResource, secret_field

MAX_ITEMS_PER_REQUEST = 1000
METHODS = ("POST", "PUT", "PATCH", "DELETE")
DEFAULT_RECORD = {"id": "{{identifier}}", "fields": "{{fields}}"}


class HttpOperationSettings(Config):
    """One operation's request: method, path, body template and per-record template."""

    method: str = "POST"
    path: str = "/{object}"
    body: Any = None
    record: Any = Field(default_factory=lambda: dict(DEFAULT_RECORD))

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if value.upper() not in METHODS:
            raise ValueError(f"{value!r}: one of {', '.join(METHODS)}")
        return value.upper()

    @field_validator("body")
    @classmethod
    def _body(cls, value: Any) -> Any:
        Template.compile(value, body=True)
        return value

    @field_validator("record")
    @classmethod
    def _record(cls, value: Any) -> Any:
        Template.compile(value, body=False)
        return value

    @model_validator(mode="after")
    def _path(self) -> HttpOperationSettings:
        leftover = self.path.replace("{object}", "").replace("{identifier}", "")
        if not self.path.startswith("/") or "{" in leftover or "}" in leftover:
            raise ValueError(f"path {self.path!r}: starts with '/'; placeholders are {{object}} and {{identifier}}")
        if "{identifier}" in self.path and self.compiled().batch:
            raise ValueError(f"path {self.path!r}: {{identifier}} names one record, but the body sends a batch ({{{{records}}}})")
        return self

    def compiled(self) -> Operation:
        body = None if self.body is None else Template.compile(self.body, body=True)
        return Operation(self.method, self.path, body, Template.compile(self.record, body=False))


class ItemErrorSettings(Config):
    """Where a 2xx answer lists the items it refused."""

    path: str = Field(description="pointer to the item errors, e.g. errors[*]")
    index: str | None = Field(default="index", description="an item error's field: the record's position in the request")
    id: str | None = Field(default="id", description="an item error's field: the record's identifier")
    message: str = Field(default="message", description="an item error's field: the platform's words")

    @field_validator("path")
    @classmethod
    def _pointer(cls, value: str) -> str:
        if problem := pointer_problem(value):
            raise ValueError(problem)
        return value


DEFAULT_UPSERT = HttpOperationSettings(body={"items": "{{records}}"})
DEFAULT_DELETE = HttpOperationSettings(path="/{object}/delete", body={"ids": "{{records}}"}, record="{{identifier}}")


class HttpResource(PlatformResource):
    """Any JSON API: every setting is documented in this package's docstring and the README."""

    PLATFORM: ClassVar[str] = "http"
    SANDBOX_PATH: ClassVar[str] = "/http"

    token: str | None = secret_field("HTTP_API_TOKEN", sandbox="sandbox-http-token")
    auth_header: str = Field(default="Authorization", description="the header carrying the secret ('' for none)")
    auth_scheme: str = Field(default="Bearer", description="written before the secret ('' for the secret alone)")
    # unset: the defaults below (a nested default would not survive Dagster's config round trip)
    upsert: HttpOperationSettings | None = None
    delete: HttpOperationSettings | None = None
    max_items_per_request: int = Field(default=100, ge=1, le=MAX_ITEMS_PER_REQUEST)
    max_bytes_per_request: int | None = Field(default=None, ge=64)
    requests_per_second: float = Field(default=0.0, ge=0)
    rejected_statuses: list[int] = Field(default_factory=lambda: [400, 409, 413, 422])
    absent_statuses: list[int] = Field(default_factory=lambda: [404, 410])
    item_errors: ItemErrorSettings | None = None

    @field_validator("rejected_statuses", "absent_statuses")
    @classmethod
    def _client_errors(cls, statuses: list[int]) -> list[int]:
        for status in statuses:
            if not 400 <= status < 500 or status in (401, 403, 429):
                raise ValueError(f"{status}: only 4xx statuses other than 401, 403 and 429 (those keep their meaning)")
        return statuses

    @model_validator(mode="after")
    def _upsert_has_a_body(self) -> HttpResource:
        if self.upsert is not None and self.upsert.body is None:
            raise ValueError("upsert.body: an upsert sends its records in a body (a template; see the README)")
        return self

    def client(self) -> HttpDestinationClient:
        base_url = self.resolved_base_url()
        secret = self.secret_value("token", base_url)
        headers = {self.auth_header: f"{self.auth_scheme} {secret}" if self.auth_scheme else secret} if self.auth_header else {}
        found = self.item_errors
        item_errors = ItemErrors(found.path, found.index, found.id, found.message) if found is not None else None
        rules = Rules(
            (self.upsert or DEFAULT_UPSERT).compiled(),
            (self.delete or DEFAULT_DELETE).compiled(),
            self.max_items_per_request,
            self.max_bytes_per_request,
            frozenset(self.rejected_statuses),
            frozenset(self.absent_statuses),
            item_errors,
        )
        return HttpDestinationClient(self.session(base_url, headers, (secret,)), rules, Pacer(self.requests_per_second))


HTTP_SPEC = PlatformSpec(
    name="http",
    resource=HttpResource,
    target=HttpTarget.parse,
    operations=frozenset({"upsert", "mirror", "delete_only"}),
    max_items_per_request=MAX_ITEMS_PER_REQUEST,
    activation_options=("record",),
    activation_problem=unmapped_fields,
    nulls_default="send",  # a null is sent as JSON null; nulls: omit leaves the key out of the record
)

__all__ = ["HTTP_SPEC", "HttpDestinationClient", "HttpResource", "HttpTarget"]
