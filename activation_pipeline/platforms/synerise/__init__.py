"""Synerise (profiles, newsletter subscriptions, catalog items, transactions): the declaration
(resource model, capabilities, target model).

The API contract the client follows is in ``client.py``'s docstring and docs/platforms/synerise.md;
what each object sends, in ``payloads.py``; what an ``object`` and its ``options`` name, in ``target.py``.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from activation_pipeline.platforms.declaration import PlatformSpec
from activation_pipeline.platforms.resource import PlatformResource, secret_field
from activation_pipeline.platforms.synerise.client import SyneriseClient
from activation_pipeline.platforms.synerise.payloads import activation_problem
from activation_pipeline.platforms.synerise.target import (
    OBJECT_OPERATIONS,
    OBJECT_PATTERN,
    OPTIONS,
    SyneriseTarget,
    operation_refusal,
)

# the v4 batch limits (php-sdk lib/V4/Clients/Batch/BatchRequestBuilder.php), kept for catalog items too
MAX_ITEMS_PER_REQUEST = 1000
MAX_BYTES_PER_REQUEST = 1_000_000


class SyneriseResource(PlatformResource):
    """A Synerise workspace. The API key is an EnvVar (``PlatformResource``)."""

    PLATFORM: ClassVar[str] = "synerise"
    SANDBOX_PATH: ClassVar[str] = "/synerise"

    base_url: str | None = Field(default=None, description="default: $SYNERISE_BASE_URL, else the sandbox (real: https://api.synerise.com)")
    api_key: str | None = secret_field("SYNERISE_API_KEY", sandbox="sandbox-synerise-api-key")
    backoff_seconds: float = Field(default=0.5, ge=0)

    def client(self) -> SyneriseClient:
        base_url = self.resolved_base_url()
        api_key = self.secret_value("api_key", base_url)
        session = self.session(base_url, {"Accept": "application/json"}, (api_key,))
        return SyneriseClient(session, api_key, max_bytes=MAX_BYTES_PER_REQUEST)


SYNERISE_SPEC = PlatformSpec(
    name="synerise",
    resource=SyneriseResource,
    target=SyneriseTarget.parse,
    operations=frozenset({"upsert", "mirror", "delete_only"}),
    object_operations=OBJECT_OPERATIONS,
    operation_refusal=operation_refusal,
    max_items_per_request=MAX_ITEMS_PER_REQUEST,
    max_bytes_per_request=MAX_BYTES_PER_REQUEST,
    field_pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?$",
    field_rule="letters, digits, '-' and '_' (agreements.<channel>, client.<id>, paymentInfo.method for the dotted ones)",
    object_pattern=OBJECT_PATTERN,
    object_rule="profiles, subscriptions, transactions or catalog:<name>",
    activation_problem=activation_problem,
    activation_options=OPTIONS,
    nulls_default="send",  # profiles: null resets a native field / deletes an attribute [V]; transactions never carry nulls
    nulls_refused=(
        (
            "omit",
            r"catalog:.+",
            (
                "items/batch stores an item's value whole (Synerise's own Magento plugin resends "
                "every attribute, docs/platforms/synerise.md), so a left-out attribute would be dropped, not kept; use "
                "nulls: send (the attribute is stored as null)"
            ),
        ),
    ),
)

__all__ = ["SYNERISE_SPEC", "SyneriseClient", "SyneriseResource", "SyneriseTarget"]
