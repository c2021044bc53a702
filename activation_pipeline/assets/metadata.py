"""Metadata shared by source and segment assets: row count, schema and a Markdown preview."""


from typing import Any

import polars as pl
from dagster import AssetKey, MetadataValue, TableColumn, TableColumnDep, TableColumnLineage, TableSchema

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
    return TableColumnLineage(deps_by_column={
        column: [TableColumnDep(asset_key=key, column_name=name) for key, name in upstream]
        for column, upstream in deps.items() if upstream
    })
