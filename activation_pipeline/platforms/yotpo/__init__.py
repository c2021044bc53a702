"""Yotpo (SMS & Email) customers: the declaration (resource model, capabilities, target model).

The API contract the client follows is in ``client.py``'s docstring and docs/platforms/yotpo.md;
the customer fields and rules are in ``customer.py``.
"""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import quote

from pydantic import Field

from activation_pipeline.platforms.declaration import PlatformSpec
from activation_pipeline.platforms.resource import PlatformResource, secret_field
from activation_pipeline.platforms.yotpo.client import YotpoClient
from activation_pipeline.platforms.yotpo.customer import activation_problem, error_message
from activation_pipeline.platforms.yotpo.target import KIND_PATTERN, YotpoTarget

MAX_ITEMS_PER_REQUEST = 1  # no bulk customer endpoint: one customer per PATCH


class YotpoResource(PlatformResource):
    """A Yotpo store. The store id and API secret are EnvVars (``PlatformResource``)."""

    PLATFORM: ClassVar[str] = "yotpo"
    SANDBOX_PATH: ClassVar[str] = "/yotpo/core/v3/stores/{store_id}"

    base_url: str | None = Field(default=None, description="default: $YOTPO_BASE_URL, else the sandbox; may contain {store_id}")
    store_id: str | None = secret_field("YOTPO_STORE_ID", sandbox="sandbox-store")
    secret: str | None = secret_field("YOTPO_SECRET", sandbox="sandbox-yotpo-secret")
    max_retries: int = Field(default=8, ge=0)
    backoff_seconds: float = Field(default=0.5, ge=0)
    requests_per_second: float = Field(default=5.0, ge=0.0, description="client-side pacing (Yotpo allows 5/s per store); 0 = off")

    def client(self) -> YotpoClient:
        template = self.resolved_base_url()
        store_id, secret = self.secret_value("store_id", template), self.secret_value("secret", template)
        base_url = template.replace("{store_id}", quote(store_id, safe=""))
        # the store id is in every URL: scrubbed like the secret
        session = self.session(base_url, {"Accept": "application/json"}, (secret, store_id))
        return YotpoClient(session, secret, requests_per_second=self.requests_per_second)


YOTPO_SPEC = PlatformSpec(
    name="yotpo",
    operations=frozenset({"upsert", "update_only"}),
    resource=YotpoResource,
    target=YotpoTarget.parse,
    max_items_per_request=MAX_ITEMS_PER_REQUEST,
    field_pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)?$",
    field_rule="lowercase letters, digits and underscores (address fields as address.<name>)",
    object_pattern=KIND_PATTERN,
    object_rule="external_id, email or phone: the identifier Yotpo customers are matched by",
    activation_problem=activation_problem,
    nulls_default="send",  # a null custom property is sent as "" (removes it); a null standard field is skipped
)

__all__ = ["YOTPO_SPEC", "YotpoClient", "YotpoResource", "YotpoTarget", "error_message"]
