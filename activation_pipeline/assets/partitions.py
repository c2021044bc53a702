"""Daily partitions shared by a partitioned source, the segments that read it and the
activations that push them, so lineage holds partition to partition."""

from datetime import date

import polars as pl
from dagster import DailyPartitionsDefinition, Failure

from activation_pipeline.config import ProjectConfig
from activation_pipeline.sql_identifiers import qualified_name, quote_identifier
from activation_pipeline.warehouse import Session


def daily_partitions(config: ProjectConfig) -> DailyPartitionsDefinition | None:
    if config.partitions is None:
        return None
    return DailyPartitionsDefinition(start_date=config.partitions.start_date.isoformat(), timezone=config.partitions.timezone)


def partition_day(partition_key: str) -> date:
    return date.fromisoformat(partition_key)


def replace_partition(conn: Session, schema: str, table: str, frame: pl.DataFrame, column: str, day: date, entry: str) -> None:
    """Replace one day's rows of ``schema.table`` with ``frame`` in one transaction.

    The table keeps every day; a day whose columns differ from the table's is refused,
    naming the difference, rather than silently dropping the other days.
    """
    qualified = qualified_name(schema, table)
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    if not conn.has_table(schema, table):
        with conn.frames(partition_frame=frame):
            conn.execute(f"CREATE TABLE {qualified} AS SELECT * FROM partition_frame")
        return
    stored = list(conn.columns(qualified))
    if stored != frame.columns:
        raise Failure(
            f"{entry}: the columns changed ({', '.join(stored)} -> {', '.join(frame.columns)}); "
            f"drop {qualified} and backfill every partition to rebuild it with the new columns"
        )
    with conn.transaction():
        conn.execute(f"DELETE FROM {qualified} WHERE CAST({quote_identifier(column)} AS DATE) = ?", [day])
        conn.insert(qualified, frame)
