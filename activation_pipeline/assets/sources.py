"""``sources/<table>``: a CSV or Parquet file read with Polars into the warehouse table ``sources.<table>``."""


import polars as pl
from dagster import AssetExecutionContext, AssetsDefinition, Failure, MaterializeResult, MetadataValue, asset

from activation_pipeline.assets.metadata import frame_metadata
from activation_pipeline.assets.partitions import daily_partitions, partition_day, replace_partition
from activation_pipeline.config import ProjectConfig
from activation_pipeline.sql_identifiers import qualified_name


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
        partitions_def=daily_partitions(config) if source.partition_column else None,
    )
    def _source(context: AssetExecutionContext) -> MaterializeResult:
        if not path.exists():
            raise Failure(f"sources.{name}.path: file {path} does not exist (paths are relative to {config.path})")
        scan = pl.scan_parquet(path) if source.file_format == "parquet" else pl.scan_csv(path, try_parse_dates=True, infer_schema_length=10_000)
        if source.partition_column is None:
            frame = scan.collect()
            with context.resources.warehouse.get_connection() as conn:
                conn.execute("CREATE SCHEMA IF NOT EXISTS sources")
                conn.register("loaded_frame", frame)
                conn.execute(f"CREATE OR REPLACE TABLE {qualified_name('sources', name)} AS SELECT * FROM loaded_frame")
                conn.unregister("loaded_frame")
        else:  # one day of the file replaces that day in sources.<name>
            day = partition_day(context.partition_key)
            column = source.partition_column
            if column not in scan.collect_schema():
                raise Failure(f"sources.{name}.partition_column: {column!r} is not a column of {path}")
            frame = scan.filter(pl.col(column).cast(pl.Date) == day).collect()
            with context.resources.warehouse.get_connection() as conn:
                replace_partition(conn, "sources", name, frame, column, day, f"sources.{name}")
        return MaterializeResult(metadata={**frame_metadata(frame), "path": MetadataValue.path(str(path))})

    return _source
