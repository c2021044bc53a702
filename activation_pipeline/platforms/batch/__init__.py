"""Batch (batch.com) CEP catalogs: the declaration (resource model, capabilities, target model).

The API contract the client follows is in ``client.py``'s docstring and docs/platforms/batch.md.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from activation_pipeline.platforms.batch.client import BatchClient
from activation_pipeline.platforms.batch.target import CATALOG_NAME, BatchTarget
from activation_pipeline.platforms.declaration import PlatformSpec
from activation_pipeline.platforms.resource import PlatformResource, secret_field

MAX_ITEMS_PER_REQUEST = 200  # items per items/edit request


class BatchResource(PlatformResource):
    """A Batch project. Its secrets are EnvVars (``PlatformResource``)."""

    PLATFORM: ClassVar[str] = "batch"
    SANDBOX_PATH: ClassVar[str] = "/batch/{api_version}"

    rest_api_key: str | None = secret_field("BATCH_REST_API_KEY", sandbox="sandbox-batch-rest-key")
    project_key: str | None = secret_field("BATCH_PROJECT_KEY", sandbox="project_sandbox")
    api_version: str = Field(default="2.11", description="the API version in the URL path")
    delete_action: str = Field(default="delete", description="the items/edit action that deletes an item ([U])")

    def client(self) -> BatchClient:
        base_url = self.resolved_base_url()
        rest_key, project = self.secret_value("rest_api_key", base_url), self.secret_value("project_key", base_url)
        session = self.session(base_url, {"Authorization": f"Bearer {rest_key}", "X-Batch-Project": project}, (rest_key, project))
        return BatchClient(session, delete_action=self.delete_action)


BATCH_SPEC = PlatformSpec(
    name="batch",
    resource=BatchResource,
    target=BatchTarget.parse,
    operations=frozenset({"upsert", "mirror", "delete_only"}),
    max_items_per_request=MAX_ITEMS_PER_REQUEST,
    field_pattern=r"^[a-z0-9_]+$",
    field_rule="lowercase letters, digits and underscores (Batch attribute keys)",
    object_pattern=CATALOG_NAME,
    object_rule="lowercase letters, digits and underscores (Batch catalog names)",
    nulls_default="send",  # a null attribute is sent as null: the item holds null
    nulls_refused=(
        (
            "omit",
            r".*",
            "items/edit `add` replaces an item whole (the sandbox's choice; whether `add` replaces an "
            "existing id is unverified: docs/platforms/batch.md), so a left-out attribute would be dropped, not kept; use "
            "nulls: send (the attribute is stored as null)",
        ),
    ),
)

__all__ = ["BATCH_SPEC", "BatchClient", "BatchResource", "BatchTarget"]
