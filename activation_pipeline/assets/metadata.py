"""Metadata shared by the assets: row count, schema and a Markdown preview; code references to the config entry."""

import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl
from dagster import (
    AssetKey,
    CodeReferencesMetadataValue,
    LocalFileCodeReference,
    MetadataValue,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
)

from activation_pipeline.config import ProjectConfig
from activation_pipeline.config_file import entry_lines

PREVIEW_ROWS = 10


def frame_metadata(frame: pl.DataFrame) -> dict[str, Any]:
    schema = TableSchema(columns=[TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()])
    return {
        "dagster/row_count": frame.height,
        "dagster/column_schema": schema,
        "preview": MetadataValue.md(markdown_table(frame.head(PREVIEW_ROWS))),
    }


def markdown_table(frame: pl.DataFrame) -> str:
    if frame.is_empty():
        return "_no rows_"

    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", " ")[:120]

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *rows])


def column_lineage(deps: dict[str, list[tuple[AssetKey, str]]]) -> TableColumnLineage:
    """``dagster/column_lineage`` from {column: [(upstream asset, upstream column), ...]}."""
    return TableColumnLineage(
        deps_by_column={
            column: [TableColumnDep(asset_key=key, column_name=name) for key, name in upstream] for column, upstream in deps.items() if upstream
        }
    )


def code_references(config: ProjectConfig, section: str, name: str) -> dict[str, CodeReferencesMetadataValue]:
    """``dagster/code_references`` pointing at the entry's line in activations.yaml (definitions.py adds the factory's)."""
    path = Path(config.path)
    if not path.is_file():  # a config built in memory has no file to point at
        return {}
    line = _lines(str(path.resolve()), path.stat().st_mtime_ns).get((section, name))
    with warnings.catch_warnings():  # Dagster marks code references beta; the warning would print on every load
        warnings.filterwarnings("ignore", message=".*is currently in beta.*")
        reference = LocalFileCodeReference(file_path=str(path.resolve()), line_number=line, label=f"{path.name}: {section}.{name}")
        return {"dagster/code_references": CodeReferencesMetadataValue(code_references=[reference])}


@lru_cache(maxsize=8)
def _lines(path: str, mtime_ns: int) -> dict[tuple[str, str], int]:  # one parse per file version, not one per asset
    return entry_lines(Path(path))
