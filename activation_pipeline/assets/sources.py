"""``sources/<table>``: a CSV or Parquet file, or a table or query of a PostgreSQL database (database_sources.py),
read with Polars into the warehouse table ``sources.<table>``."""

import polars as pl
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    DataVersion,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from activation_pipeline.assets.database_sources import DatabaseSourceError, database_fingerprint, read_database
from activation_pipeline.assets.metadata import code_references, frame_metadata
from activation_pipeline.assets.observed_files import content_fingerprint, file_key
from activation_pipeline.assets.partitions import (
    daily_partitions,
    partition_day,
    replace_partition,
)
from activation_pipeline.assets.source_files import SourceFileError, read_source
from activation_pipeline.config import ProjectConfig
from activation_pipeline.sql_identifiers import qualified_name


def build_source_asset(config: ProjectConfig, name: str) -> AssetsDefinition:
    source = config.sources[name]
    if source.database is not None:
        return build_database_source(config, name)
    path = config.source_path(name)

    @asset(
        key=["sources", name],
        deps=[file_key(name)],  # the file as observed: its data version says when the file changed
        group_name="sources",
        kinds={"duckdb", "polars", source.file_format},
        description=source.description or f"{path.name} loaded into sources.{name}",
        required_resource_keys={"warehouse"},
        pool="duckdb",
        metadata=code_references(config, "sources", name),
        partitions_def=daily_partitions(config) if source.partition_column else None,
    )
    def _source(context: AssetExecutionContext) -> MaterializeResult:
        if not path.exists():
            raise Failure(f"sources.{name}.path: file {path} does not exist (paths are relative to {config.path})")
        try:
            frame = read_source(name, path, source)  # parsed and typed before the warehouse is touched
        except SourceFileError as exc:
            place = {"file": str(path), "line": exc.line, "row": exc.row, "column": exc.column}
            raise Failure(str(exc), metadata={k: v for k, v in place.items() if v is not None}) from None
        if source.partition_column is None:
            replace_source_table(context, name, frame)
        else:  # one day of the file replaces that day in sources.<name>
            day = partition_day(context.partition_key)
            column = source.partition_column
            if column not in frame.columns:
                raise Failure(f"sources.{name}.partition_column: {column!r} is not a column of {path}")
            if not frame.schema[column].is_temporal():
                raise Failure(
                    f"sources.{name}.partition_column: {column!r} does not hold dates in every row of {path} "
                    f"(read as {frame.schema[column]}); declare it under columns as date or timestamp to see the first bad value"
                )
            frame = frame.filter(pl.col(column).cast(pl.Date) == day)
            with context.resources.warehouse.get_connection() as conn:
                replace_partition(conn, "sources", name, frame, column, day, f"sources.{name}")
        # a whole file's version is its content's (as source_files/<t> observes it): a reload of an unchanged
        # file by another job is not new data to the continuous activations downstream (asset_automation.py)
        version = DataVersion(content_fingerprint(path)) if source.partition_column is None else None
        return MaterializeResult(metadata={**frame_metadata(frame), "path": MetadataValue.path(str(path))}, data_version=version)

    return _source


def replace_source_table(context: AssetExecutionContext, name: str, frame: pl.DataFrame) -> None:
    """``sources.<name>`` becomes ``frame``, in one transaction: a failed load leaves the table as it was."""
    with context.resources.warehouse.get_connection() as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS sources")
        with conn.transaction(loaded_frame=frame):
            for statement in conn.dialect.create_or_replace_table(qualified_name("sources", name), "SELECT * FROM loaded_frame"):
                conn.execute(statement)


def build_database_source(config: ProjectConfig, name: str) -> AssetsDefinition:
    """A table or query of a PostgreSQL database (its URL in the env var ``database.url_env``) loaded as a file is."""
    source = config.sources[name]
    database = source.database
    assert database is not None

    @asset(
        key=["sources", name],
        deps=[file_key(name)],  # the rows as observed: their fingerprint says when they changed
        group_name="sources",
        kinds={"duckdb", "polars", "postgres"},
        description=source.description or f"{database.label} of the database in ${database.url_env} loaded into sources.{name}",
        required_resource_keys={"warehouse"},
        pool="duckdb",
        metadata=code_references(config, "sources", name),
    )
    def _source(context: AssetExecutionContext) -> MaterializeResult:
        try:
            # the fingerprint first: rows changed while they are read make the next observation differ, so they load again
            version = database_fingerprint(name, source)
            frame = read_database(name, source)  # read and typed before the warehouse is touched
        except DatabaseSourceError as exc:
            place = {"column": exc.column, "row": exc.row}
            raise Failure(str(exc), metadata={k: v for k, v in place.items() if v is not None}) from None
        replace_source_table(context, name, frame)
        metadata = {**frame_metadata(frame), "database": MetadataValue.text(f"{database.label} (${database.url_env})")}
        return MaterializeResult(metadata=metadata, data_version=DataVersion(version))

    return _source
