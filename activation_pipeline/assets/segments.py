"""``segments/<name>``: the segment's SQL run in DuckDB, read into Polars, stored as ``segments.<name>``."""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from activation_pipeline.assets.mapped_columns import segment_table_comment
from activation_pipeline.assets.metadata import (
    code_references,
    column_lineage,
    frame_metadata,
)
from activation_pipeline.assets.partitions import (
    daily_partitions,
    partition_day,
    replace_partition,
)
from activation_pipeline.config import ProjectConfig
from activation_pipeline.sql_identifiers import (
    qualified_name,
    quote_identifier,
    quote_literal,
)
from activation_pipeline.warehouse import WAREHOUSE_ERRORS


def build_segment_asset(config: ProjectConfig, name: str) -> AssetsDefinition:
    segment = config.segments[name]
    deps = [AssetKey(["sources", t]) for t in sorted(segment.referenced_tables("sources"))]
    deps += [AssetKey(["segments", t]) for t in sorted(segment.referenced_tables("segments"))]
    partition_column = config.segment_partition_column(name)

    @asset(
        key=["segments", name],
        deps=deps,
        group_name="segments",
        kinds={"duckdb", "polars", "sql"},
        description=segment.description or f"Segment {name}",
        required_resource_keys={"warehouse"},
        pool="duckdb",
        metadata={"primary_key": segment.primary_key, **code_references(config, "segments", name)},  # not a tag: tag values cannot hold "Product ID"
        owners=segment.owners,
        partitions_def=daily_partitions(config) if partition_column else None,
    )
    def _segment(context: AssetExecutionContext) -> MaterializeResult:
        query, params = segment.sql, None
        if partition_column:  # one day of the segment: DuckDB pushes the filter down to the partitioned source
            day = partition_day(context.partition_key)
            query, params = f"SELECT * FROM ({segment.sql}) AS segment WHERE CAST({quote_identifier(partition_column)} AS DATE) = ?", [day]
        with context.resources.warehouse.get_connection() as conn:
            try:
                frame = conn.fetch_polars(query, params)
            except WAREHOUSE_ERRORS as exc:
                hint = (
                    f" (a partitioned segment must output its day column {partition_column!r}: set segments.{name}.partition_column)"
                    if partition_column
                    else ""
                )
                raise Failure(f"segments.{name}.sql ({config.path}): the query failed: {exc}{hint}") from None
            upstream = {
                (schema, table): list(conn.columns(qualified_name(schema, table)))
                for schema in ("sources", "segments")
                for table in sorted(segment.referenced_tables(schema))
            }
            if partition_column:
                replace_partition(conn, "segments", name, frame, partition_column, day, f"segments.{name}")
            else:
                # CREATE OR REPLACE: a segment whose columns change replaces its table instead of failing an append.
                conn.execute("CREATE SCHEMA IF NOT EXISTS segments")
                with conn.transaction(segment_frame=frame):
                    for statement in conn.dialect.create_or_replace_table(qualified_name("segments", name), "SELECT * FROM segment_frame"):
                        conn.execute(statement)
            # the SQL this table was built from: the definitions-time column check trusts only a current table
            conn.execute(f"COMMENT ON TABLE {qualified_name('segments', name)} IS {quote_literal(segment_table_comment(segment.sql_hash))}")
        return MaterializeResult(
            metadata={
                **frame_metadata(frame),
                "primary_key": segment.primary_key,
                "sql": MetadataValue.md(f"```sql\n{segment.sql.strip()}\n```"),
                "sql_hash": segment.sql_hash,
                # matched by column name: a column computed under a new name has no lineage entry
                "dagster/column_lineage": column_lineage(
                    {
                        column: [(AssetKey([schema, table]), column) for (schema, table), columns in upstream.items() if column in columns]
                        for column in frame.columns
                    }
                ),
            }
        )

    return _segment
