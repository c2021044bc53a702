"""Dotdigital lists (contacts with data fields) and insight data: the declaration (resource model,
capabilities, target model).

The API contract the client follows is in ``client.py``'s docstring and docs/platforms/dotdigital.md.
"""

from __future__ import annotations

import base64
import re
from typing import ClassVar

from pydantic import Field, field_validator

from activation_pipeline.platforms.declaration import PlatformSpec
from activation_pipeline.platforms.dotdigital.client import DotdigitalClient
from activation_pipeline.platforms.dotdigital.contract import FIELD_PATTERN, FIELD_RULE, activation_problem
from activation_pipeline.platforms.dotdigital.imports import MAX_BODY_BYTES
from activation_pipeline.platforms.dotdigital.target import (
    COLLECTION_NAME,
    OBJECT_OPERATIONS,
    OBJECT_PATTERN,
    OBJECT_RULE,
    OPTIONS,
    DotdigitalTarget,
    list_named_by_title,
    operation_refusal,
)
from activation_pipeline.platforms.resource import PlatformResource, is_loopback, resolve_base_url, secret_field

MAX_ITEMS_PER_REQUEST = 5000  # the most keys one insight deleteRecords takes (imports are bounded by bytes)
REGION_URL = "https://{region}-api.dotdigital.com"


class DotdigitalResource(PlatformResource):
    """A Dotdigital account. The API user's email and password are EnvVars (``PlatformResource``)."""

    PLATFORM: ClassVar[str] = "dotdigital"
    SANDBOX_PATH: ClassVar[str] = "/dotdigital"

    base_url: str | None = Field(default=None, description="default: the region's URL, else $DOTDIGITAL_BASE_URL, else the sandbox")
    region: str | None = Field(default=None, description="r1 (Europe), r2 (North America) or r3 (Asia Pacific)")
    api_user: str | None = secret_field("DOTDIGITAL_API_USER", sandbox="apiuser-sandbox@apiconnector.com")
    api_password: str | None = secret_field("DOTDIGITAL_API_PASSWORD", sandbox="sandbox-dotdigital-password")
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

    def endpoint(self) -> str:
        """The config's base URL, else the region's, else ``$DOTDIGITAL_BASE_URL``, else the sandbox."""
        configured = self.base_url or (REGION_URL.format(region=self.region) if self.region else None)
        return resolve_base_url(self.base_url_env(), configured, self.SANDBOX_PATH)

    def client(self) -> DotdigitalClient:
        base_url = self.endpoint()
        user, password = self.secret_value("api_user", base_url), self.secret_value("api_password", base_url)
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        session = self.session(base_url, {"Accept": "application/json", "Authorization": f"Basic {basic}"}, (user, password, basic))
        interval = self.poll_interval_seconds or (0.05 if is_loopback(base_url) else 5.0)
        return DotdigitalClient(session, collections=dict(self.collections), poll_interval=interval, poll_timeout=self.poll_timeout_seconds)


DOTDIGITAL_SPEC = PlatformSpec(
    name="dotdigital",
    operations=frozenset({"upsert", "mirror", "delete_only"}),
    object_operations=OBJECT_OPERATIONS,
    operation_refusal=operation_refusal,
    resource=DotdigitalResource,
    target=DotdigitalTarget.parse,
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

__all__ = ["DOTDIGITAL_SPEC", "DotdigitalClient", "DotdigitalResource", "DotdigitalTarget"]
