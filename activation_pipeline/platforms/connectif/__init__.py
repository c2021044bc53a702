"""Connectif products: the declaration (resource model, capabilities, target model).

The API contract the client follows is in ``client.py``'s docstring and docs/platforms/connectif.md;
the product fields, rules and comparison are in ``product.py``.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from activation_pipeline.platforms.base import PlatformError
from activation_pipeline.platforms.connectif.client import ConnectifClient
from activation_pipeline.platforms.connectif.product import activation_problem
from activation_pipeline.platforms.connectif.target import CATALOG, ConnectifTarget
from activation_pipeline.platforms.declaration import PlatformSpec
from activation_pipeline.platforms.resource import PlatformResource, secret_field

MAX_ITEMS_PER_REQUEST = 1  # one product per PATCH (the bulk path is the CSV import)


class ConnectifResource(PlatformResource):
    """A Connectif account. The API key ("keyId:keySecret") is an EnvVar (``PlatformResource``)."""

    PLATFORM: ClassVar[str] = "connectif"
    SANDBOX_PATH: ClassVar[str] = "/connectif"

    api_key: str | None = secret_field("CONNECTIF_API_KEY", sandbox="sandbox-connectif-key:sandbox-connectif-secret")
    max_retries: int = Field(default=8, ge=0)
    backoff_seconds: float = Field(default=0.5, ge=0)

    def client(self) -> ConnectifClient:
        base_url = self.resolved_base_url()
        api_key = self.secret_value("api_key", base_url)
        if ":" not in api_key:
            raise PlatformError("the Connectif API key (secrets.api_key) must be keyId:keySecret (one string, as the UI shows it)")
        session = self.session(base_url, {"Authorization": f"apiKey {api_key}", "Accept": "application/json"}, (api_key, *api_key.split(":", 1)))
        return ConnectifClient(session)


CONNECTIF_SPEC = PlatformSpec(
    name="connectif",
    operations=frozenset({"upsert", "mirror", "delete_only", "update_only"}),
    resource=ConnectifResource,
    target=ConnectifTarget.parse,
    max_items_per_request=MAX_ITEMS_PER_REQUEST,
    field_pattern=r"^[A-Za-z][A-Za-z0-9]*$",
    field_rule="Connectif product field names (camelCase letters and digits, e.g. unitPrice, productDetailUrl)",
    object_pattern=f"^{CATALOG}$",
    object_rule=f"{CATALOG} (the Connectif catalog)",
    activation_problem=activation_problem,
    activation_options=("removal",),
    verifies=True,
    nulls_default="omit",  # a PATCH merges the fields sent: a field left out keeps Connectif's value
    nulls_refused=(
        (
            "send",
            r".*",
            (
                "a PATCH merges the fields sent and what Connectif does with a null is undocumented "
                "([U]: no null rule is published; the sandbox leaves the field alone), so a null cannot "
                "clear a Connectif field; use nulls: omit (Connectif keeps its value)"
            ),
        ),
    ),
)

__all__ = ["CONNECTIF_SPEC", "ConnectifClient", "ConnectifResource", "ConnectifTarget"]
