"""Asset checks on segments: primary key not null and unique (blocking), row-count drop (warning)."""

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetsDefinition,
    multi_asset_check,
)

from activation_pipeline.config import ProjectConfig
from activation_pipeline.sql_identifiers import qualified_name, quote_identifier
from activation_pipeline.sync.state import scalar

SAMPLE = 20
MAX_ROW_COUNT_DROP = 0.5


def build_segment_checks(config: ProjectConfig, name: str) -> AssetsDefinition:
    segment = config.segments[name]
    key = AssetKey(["segments", name])
    pk = quote_identifier(segment.primary_key)
    table = qualified_name("segments", name)

    # a partitioned segment's materializations are different days: their row counts are not comparable
    compare_row_counts = config.segment_partition_column(name) is None
    specs = [
        AssetCheckSpec("primary_key_not_null", asset=key, blocking=True, description=f"{segment.primary_key} is never null"),
        AssetCheckSpec("primary_key_unique", asset=key, blocking=True, description=f"{segment.primary_key} identifies one row"),
    ]
    if compare_row_counts:
        specs.append(
            AssetCheckSpec(
                "row_count_drop", asset=key, description=f"row count fell by at most {MAX_ROW_COUNT_DROP:.0%} since the previous materialization"
            )
        )

    @multi_asset_check(
        specs=specs,
        required_resource_keys={"warehouse"},
        name=f"{name}_checks",
    )
    def _checks(context: AssetCheckExecutionContext):
        with context.resources.warehouse.get_connection() as conn:
            rows = scalar(conn, f"SELECT count(*) FROM {table}")
            nulls = scalar(conn, f"SELECT count(*) FROM {table} WHERE {pk} IS NULL")
            null_rows = conn.fetch_polars(f"SELECT * FROM {table} WHERE {pk} IS NULL LIMIT 3").to_dicts() if nulls else []
            duplicates = conn.execute(
                f"SELECT CAST({pk} AS VARCHAR), count(*) FROM {table} WHERE {pk} IS NOT NULL "
                f"GROUP BY 1 HAVING count(*) > 1 ORDER BY 2 DESC, 1 LIMIT {SAMPLE}"
            ).fetchall()
            duplicate_keys = scalar(
                conn, f"SELECT count(*) FROM (SELECT {pk} FROM {table} WHERE {pk} IS NOT NULL GROUP BY 1 HAVING count(*) > 1) AS repeated"
            )
        yield AssetCheckResult(
            check_name="primary_key_not_null",
            asset_key=key,
            passed=nulls == 0,
            description=None if nulls == 0 else f"{nulls} of {rows} rows of segments.{name} have a null {segment.primary_key}; e.g. {null_rows}",
            metadata={"null_keys": nulls},
        )
        named = ", ".join(f"{k} (x{n})" for k, n in duplicates)
        yield AssetCheckResult(
            check_name="primary_key_unique",
            asset_key=key,
            passed=duplicate_keys == 0,
            description=None if duplicate_keys == 0 else f"{duplicate_keys} values of {segment.primary_key} appear more than once: {named}",
            metadata={"duplicate_keys": duplicate_keys, "sample": ", ".join(k for k, _ in duplicates)},
        )
        if not compare_row_counts:
            return
        previous = _previous_row_count(context, key)
        dropped = previous is not None and previous > 0 and rows < previous * (1 - MAX_ROW_COUNT_DROP)
        yield AssetCheckResult(
            check_name="row_count_drop",
            asset_key=key,
            passed=not dropped,
            severity=AssetCheckSeverity.WARN,
            description=f"{previous} -> {rows} rows" if previous is not None else "no previous materialization",
            metadata={"rows": rows, "previous_rows": previous if previous is not None else -1},
        )

    return _checks


def _previous_row_count(context: AssetCheckExecutionContext, key: AssetKey) -> int | None:
    records = context.instance.fetch_materializations(key, limit=2).records
    if len(records) < 2:
        return None
    value = records[1].asset_materialization.metadata.get("dagster/row_count") if records[1].asset_materialization else None
    return int(value.value) if value is not None else None
