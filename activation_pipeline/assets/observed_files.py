"""``source_files/<table>``: each source file as an observable asset whose data version is its
fingerprint, upstream of ``sources/<table>``, so Dagster knows when a file's content changed.

A file partitioned by day has one data version per day (a hash of that day's rows): an edit to
one day changes only that day's version, so only that day runs again downstream. Any other file
has one version, a hash of its bytes: a file saved again unchanged is not new data. The Observe
button in the UI runs the observation; ``observe_source_files`` (activation_pipeline/asset_automation.py) reports
the same versions from the daemon without a run.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import polars as pl
from dagster import (
    AssetKey,
    DataVersion,
    DataVersionsByPartition,
    MetadataValue,
    SourceAsset,
    observable_source_asset,
)

from activation_pipeline.assets.database_sources import DatabaseSourceError, database_fingerprint
from activation_pipeline.assets.metadata import code_references
from activation_pipeline.assets.partitions import daily_partitions
from activation_pipeline.config import ProjectConfig

# the tag an observation carries its data version in (what ObserveResult(data_version=...) records)
DATA_VERSION_TAG = "dagster/data_version"


def file_key(source: str) -> AssetKey:
    return AssetKey(["source_files", source])


def file_state(path: Path) -> str:
    """Modification time and size: cheap to read, to tell whether a file may have changed."""
    stat = path.stat() if path.exists() else None
    return f"{stat.st_mtime_ns}:{stat.st_size}" if stat else "missing"


def source_state(config: ProjectConfig, source: str) -> str:
    """What a sensor compares between ticks: a file's modification time and size, a database source's fingerprint
    ("unreachable" while its database cannot be read: the next reachable tick then counts as a change)."""
    if config.sources[source].database is None:
        return file_state(config.source_path(source))
    try:
        return database_fingerprint(source, config.sources[source])
    except DatabaseSourceError:
        return "unreachable"


def content_fingerprint(path: Path) -> str:
    if not path.exists():
        return "missing"
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:32]


def day_fingerprints(config: ProjectConfig, source: str) -> dict[str, str]:
    """A hash of each day's rows in a partitioned source file: which partitions changed."""
    path, column = config.source_path(source), config.sources[source].partition_column
    if not path.exists() or column is None:
        return {}
    scan = (
        pl.scan_parquet(path)
        if config.sources[source].file_format == "parquet"
        else pl.scan_csv(path, try_parse_dates=True, infer_schema_length=10_000)
    )
    frame = scan.with_columns(pl.col(column).cast(pl.Date).cast(pl.Utf8).alias("__day")).collect()
    # sha256 of each day's rows as CSV text: stable across Polars versions (hash_rows is documented not to be)
    return {
        str(day): f"{hashlib.sha256(rows.drop('__day').write_csv().encode()).hexdigest()[:32]}:{rows.height}"
        for (day,), rows in frame.partition_by("__day", as_dict=True, maintain_order=True).items()
        if day
    }


def data_versions(config: ProjectConfig, source: str) -> dict[str | None, str]:
    """The file's data version (key None), or one per day of a partitioned source (days of its partitions only)."""
    if config.sources[source].database is not None:
        return {None: database_fingerprint(source, config.sources[source])}
    if config.sources[source].partition_column is None:
        return {None: content_fingerprint(config.source_path(source))}
    partitions = daily_partitions(config)
    days = set(partitions.get_partition_keys()) if partitions else set()
    return {day: version for day, version in day_fingerprints(config, source).items() if day in days}


def build_source_file_asset(config: ProjectConfig, name: str) -> SourceAsset:
    source = config.sources[name]
    if source.database is not None:
        return build_database_source_asset(config, name)
    path = config.source_path(name)
    partitioned = source.partition_column is not None

    def _observe() -> DataVersion | DataVersionsByPartition:
        versions = data_versions(config, name)
        if partitioned:
            return DataVersionsByPartition({day: DataVersion(version) for day, version in versions.items() if day})
        return DataVersion(versions[None])

    with warnings.catch_warnings():  # Dagster marks observable source assets beta; the warning would print on every load
        warnings.filterwarnings("ignore", message=".*is currently in beta.*")
        return observable_source_asset(
            key=file_key(name),
            group_name="sources",
            description=f"{path.name} as found on disk: its data version is its fingerprint" + (" (one per day)" if partitioned else ""),
            metadata={"path": MetadataValue.path(str(path)), **code_references(config, "sources", name)},
            partitions_def=daily_partitions(config) if partitioned else None,
        )(_observe)


def build_database_source_asset(config: ProjectConfig, name: str) -> SourceAsset:
    """``source_files/<table>`` for a database source: observed as a file is, its data version the rows' fingerprint."""
    database = config.sources[name].database
    assert database is not None

    def _observe() -> DataVersion:
        return DataVersion(database_fingerprint(name, config.sources[name]))

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is currently in beta.*")
        return observable_source_asset(
            key=file_key(name),
            group_name="sources",
            description=f"{database.label} of the database in ${database.url_env}, as found: its data version is a fingerprint of its rows",
            metadata={"database": f"{database.label} (${database.url_env})", **code_references(config, "sources", name)},
        )(_observe)
