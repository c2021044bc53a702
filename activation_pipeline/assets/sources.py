"""``sources/<table>``: a CSV or Parquet file read with Polars into the warehouse table ``sources.<table>``."""


import polars as pl
from dagster import AssetExecutionContext, AssetsDefinition, Failure, MaterializeResult, MetadataValue, asset

from activation_pipeline.assets.metadata import frame_metadata
from activation_pipeline.config import ProjectConfig


def build_source_asset(config: ProjectConfig, name: str) -> AssetsDefinition:
    source = config.sources[name]
    path = config.source_path(name)

    @asset(
        key=["sources", name],
        group_name="sources",
        kinds={"duckdb", "polars", source.file_format},
        description=source.description or f"{path.name} loaded into sources.{name}",
        required_resource_keys={"warehouse"},
        pool="duckdb",
    )
    def _source(context: AssetExecutionContext) -> MaterializeResult:
        if not path.exists():
            raise Failure(f"sources.{name}.path: file {path} does not exist (paths are relative to {config.path})")
        frame = pl.read_parquet(path) if source.file_format == "parquet" else pl.read_csv(path, try_parse_dates=True, infer_schema_length=10_000)
        with context.resources.warehouse.get_connection() as conn:
            conn.execute("CREATE SCHEMA IF NOT EXISTS sources")
            conn.register("loaded_frame", frame)
            conn.execute(f'CREATE OR REPLACE TABLE sources."{name}" AS SELECT * FROM loaded_frame')
            conn.unregister("loaded_frame")
        return MaterializeResult(metadata={**frame_metadata(frame), "path": MetadataValue.path(str(path))})

    return _source
