"""``activation_pipeline.ActivationsComponent``: the whole engine as one Dagster component, for a team's
own ``dg`` project.

Its attributes in ``defs.yaml`` are ``activations.yaml``'s schema (``partitions``, ``deployments``,
``sources``, ``segments``, ``destinations``, ``activations``, ``ledger_retention_days``) plus
``warehouse``; source paths are relative to the ``defs.yaml`` folder. ``dg check yaml`` validates them
with the same pydantic models as ``activations.yaml`` (each error at its field's path) before any template
is rendered, so ``{{ env.X }}`` works in free-text strings (paths, SQL, URLs, descriptions), not in fields
with a fixed vocabulary (``mode``, ``schedule``, booleans, numbers); an unset variable renders as ``None``
(Dagster's rule). A destination's ``settings`` and an activation's ``options`` are passed as written (the
http destination's own ``{{identifier}}`` placeholders live there), and ``secrets`` name variables. The
cross-reference checks (a segment or destination that does not exist, a run-order cycle) fail the load
with the same messages, naming ``defs.yaml``.

``dg scaffold defs activation_pipeline.ActivationsComponent <folder>`` writes a ``defs.yaml`` that
syncs a three-row CSV to Batch's catalog in the local sandbox, and the CSV beside it: a working
start to edit (https://docs.dagster.io/guides/build/components/creating-new-components).

One component per code location: its jobs, sensors and resources keep this repository's names
(``sync_everything``, ``record_failed_syncs``, ``warehouse``, ``destination_<name>``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import dagster as dg
from pydantic import BaseModel, Field, TypeAdapter

from activation_pipeline.assembly import build_definitions
from activation_pipeline.config import (
    ActivationConfig,
    DeploymentsConfig,
    DestinationConfig,
    PartitionsConfig,
    ProjectConfig,
    SegmentConfig,
    SourceConfig,
    validate_config,
)
from activation_pipeline.warehouse import DEFAULT_WAREHOUSE

STARTER_CSV = "products.csv"


def _typed(model: Any, verbatim: str = "") -> dg.Resolver:
    """A section typed by one of ``activations.yaml``'s models (``ActivationsAttributes`` validates the YAML
    first), whose template strings are rendered; ``project_config`` validates the rendered whole.

    ``verbatim``: the key of each entry passed as written, unrendered (a destination's ``settings`` and an
    activation's ``options``, where the http destination's own ``{{identifier}}`` placeholders live).
    (The Python attribute is ``Any`` because Dagster's own resolution accepts only models made of plain
    types, and ours hold dates and unions.)"""
    adapter: TypeAdapter[Any] = TypeAdapter(model)

    def resolve(context: dg.ResolutionContext, value: Any) -> Any:
        if value is None:
            return None
        raw = value if isinstance(value, str) else adapter.dump_python(value, mode="python", exclude_unset=True)
        return _render(context, raw, verbatim, depth=0)  # validated once, whole, by project_config

    return dg.Resolver(resolve, inject_before_resolve=False)


TEMPLATE_MARKS = ("{{", "{%", "{#")


def _render(context: dg.ResolutionContext, value: Any, verbatim: str, depth: int) -> Any:
    """``value`` with its template strings rendered; other strings are kept exactly (a segment's SQL keeps
    its last newline), and so is each entry's ``verbatim`` key (``depth`` 1 is an entry's fields)."""
    if isinstance(value, dict):
        return {k: v if depth == 1 and k == verbatim else _render(context.at_path(k), v, verbatim, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(context.at_path(i), v, verbatim, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, str) and any(mark in value for mark in TEMPLATE_MARKS):
        return context.resolve_value(value)
    return value


class ActivationsScaffolder(dg.Scaffolder):
    """``dg scaffold defs activation_pipeline.ActivationsComponent <folder>``: a small working project."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        dg.scaffold_component(request, starter_attributes())
        (request.target_path / STARTER_CSV).write_text(
            "sku,name,price,stock_status\nSKU-1,Linen shirt,39.90,in_stock\nSKU-2,Wool scarf,24.50,in_stock\nSKU-3,Canvas tote,12.00,discontinued\n",
            encoding="utf-8",
        )


def starter_attributes() -> dict[str, Any]:
    """The scaffolded ``defs.yaml``'s attributes: one source, one segment, one destination, one activation."""
    return {
        "sources": {"products": {"path": STARTER_CSV, "description": "the product catalogue"}},
        "segments": {
            "sellable_products": {
                "description": "products still for sale",
                "primary_key": "sku",
                "sql": "SELECT sku, name, price FROM sources.products WHERE stock_status <> 'discontinued'",
            }
        },
        # no base_url: $BATCH_BASE_URL, else the local sandbox (`python -m activation_pipeline.sandbox`)
        "destinations": {"batch_shop": {"platform": "batch", "secrets": {"rest_api_key": "BATCH_REST_API_KEY", "project_key": "BATCH_PROJECT_KEY"}}},
        "activations": {
            "products_to_batch": {
                "segment": "sellable_products",
                "destination": "batch_shop",
                "object": "products",
                "mode": "full_then_delta",
                "operation": "mirror",
                "identifier": "sku",
                "mapping": {"name": "name", "price": "price"},
                "schedule": "daily",
            }
        },
    }


class ActivationsAttributes(dg.Model):
    """``defs.yaml``'s ``attributes``: activations.yaml's models as they are, so ``dg check yaml`` names the
    field at fault (Dagster's derived model would also accept a template string in place of each section,
    and its schema errors would then stop at the section)."""

    partitions: PartitionsConfig | None = Field(default=None, description="the daily partitions of event data")
    deployments: DeploymentsConfig = Field(default_factory=DeploymentsConfig, description="which deployments may push to a real platform")
    sources: dict[str, SourceConfig] = Field(
        default_factory=dict,
        description="CSV or Parquet files (relative to this folder), or tables or queries of a PostgreSQL database, loaded into sources.<name>",
    )
    segments: dict[str, SegmentConfig] = Field(default_factory=dict, description="SQL over sources and segments, one table each")
    destinations: dict[str, DestinationConfig] = Field(default_factory=dict, description="platform accounts: platform, base URL, secrets, settings")
    activations: dict[str, ActivationConfig] = Field(default_factory=dict, description="a segment synced to a platform object")
    ledger_retention_days: int | None = Field(default=None, ge=1, description="record payloads and messages older than this are dropped")
    warehouse: str | None = Field(
        default=None,
        description=f"the DuckDB file, relative to the project root; default $ACTIVATION_WAREHOUSE, else {DEFAULT_WAREHOUSE}",
    )


@dg.scaffold_with(ActivationsScaffolder)
class ActivationsComponent(dg.Component, dg.Resolvable, dg.Model):
    """Reverse ETL: warehouse segments synced to marketing platforms, with their checks, jobs, schedules and sensors.

    Attributes: ``activations.yaml``'s schema (README.md, "Configuration reference") plus ``warehouse``."""

    partitions: Annotated[Any, _typed(PartitionsConfig | None)] = None
    deployments: Annotated[Any, _typed(DeploymentsConfig)] = Field(default_factory=DeploymentsConfig)
    sources: Annotated[Any, _typed(dict[str, SourceConfig])] = Field(default_factory=dict)
    segments: Annotated[Any, _typed(dict[str, SegmentConfig])] = Field(default_factory=dict)
    destinations: Annotated[Any, _typed(dict[str, DestinationConfig], verbatim="settings")] = Field(default_factory=dict)
    activations: Annotated[Any, _typed(dict[str, ActivationConfig], verbatim="options")] = Field(default_factory=dict)
    ledger_retention_days: int | None = None
    warehouse: str | None = None

    @classmethod
    def model(cls) -> type[BaseModel]:
        return ActivationsAttributes

    def project_config(self, folder: Path) -> ProjectConfig:
        """The attributes as this repository's config, cross-checked; relative paths are from ``folder``."""
        document = {name: getattr(self, name) for name in ProjectConfig.model_fields if name != "path"}
        plain = {name: TypeAdapter(Any).dump_python(value, mode="python", exclude_unset=True) for name, value in document.items()}
        return validate_config(plain, folder / "defs.yaml")

    def warehouse_path(self, project_root: Path) -> Path:
        path = Path(self.warehouse or os.environ.get("ACTIVATION_WAREHOUSE") or DEFAULT_WAREHOUSE)
        return path if path.is_absolute() else project_root / path  # created by the first run, not by `dg check`

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        folder = context.path.parent if context.path.is_file() else context.path
        return build_definitions(self.project_config(folder), self.warehouse_path(context.project_root))
