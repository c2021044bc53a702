"""Read-back verification of what a platform holds (platforms whose spec ``verifies``: Connectif).

One asset check per such activation, ``platform_matches``: it reads records back from the
platform and compares them with the last version the platform confirmed (the ledger's
``latest_records``). Which records:

- after a sync in the same run, or launched alone with no config: the records the activation's
  latest sync confirmed ("pushed products are read back");
- run config ``keys: [...]``: just those ("verify now");
- run config ``all: true``: every record the platform should hold ("massive verification", the
  ``verify_<activation>_all`` job and its off-peak schedule).

Each mismatch (a field that differs, or a record that is gone) is a WARN result with a table of
the differences, one ``verify`` row per record in ``activation_state.sync_records``, and the
snapshot's hash of that record is cleared: the next sync resends it, repairing the drift.
"""

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetKey,
    Field,
    MetadataValue,
    TableColumn,
    TableRecord,
    TableSchema,
    asset_check,
)

from activation_pipeline.assets.activations import build_sync_job, credentials_hint
from activation_pipeline.config import ProjectConfig
from activation_pipeline.platforms import PLATFORMS
from activation_pipeline.platforms.base import (
    CredentialsRefused,
    PlatformError,
    Record,
    Verification,
)
from activation_pipeline.sync.state import (
    record_verification,
    records_to_verify,
    verification_query,
)

CHECK_NAME = "platform_matches"
SAMPLE = 20
MISMATCHES_SCHEMA = TableSchema(
    columns=[
        TableColumn("key", "string", description="the segment's primary key"),
        TableColumn("partition", "string", description="the record's day or scope, if any"),
        TableColumn("difference", "string", description="each field that differs (value sent, value the platform holds), or the record's absence"),
    ]
)


def verifies(config: ProjectConfig, name: str) -> bool:
    activation = config.activations[name]
    return PLATFORMS[config.destinations[activation.destination].platform].verifies and config.activation_partition_column(name) is None


def build_verification_check(config: ProjectConfig, name: str, resource_key: str) -> AssetChecksDefinition:
    job = build_sync_job(config, name, state_dir=None)  # the target, identifier and request size a sync uses
    keyed_by_identifier = job.plan.identifier == job.plan.primary_key

    @asset_check(
        asset=AssetKey(["activations", name]),
        name=CHECK_NAME,
        description="Records read back from the platform match what it confirmed (mismatches are resent by the next sync)",
        required_resource_keys={"warehouse", resource_key},
        config_schema={
            "keys": Field([str], default_value=[], description="verify just these primary keys now"),
            "all": Field(bool, default_value=False, description="verify every record the platform should hold"),
        },
    )
    def _verify(context: AssetCheckExecutionContext) -> AssetCheckResult:
        keys, everything = context.op_execution_context.op_config["keys"], context.op_execution_context.op_config["all"]
        warehouse = context.resources.warehouse
        with warehouse.get_connection() as conn:
            expected = records_to_verify(conn, name, keyed_by_identifier, keys, everything, context.op_execution_context.run_id)
        if keys:
            missing = sorted(set(keys) - set(expected["key"].to_list()))
        else:
            missing = []
        resource = getattr(context.resources, resource_key)
        client = resource.client()
        results: list[tuple[str, str | None, Verification]] = []

        def read_back(partition: str | None, batch: pl.DataFrame) -> list[tuple[str, str | None, Verification]]:
            records = [
                Record(key=k, identifier=i, fields=json.loads(p) if p else {}) for k, i, p in batch.select("key", "identifier", "payload").iter_rows()
            ]
            return [(r.key, partition, r) for r in client.verify(job.target.for_partition(partition), records)]

        try:  # the activation's `concurrency` requests in flight, as a sync has
            with ThreadPoolExecutor(max_workers=job.concurrency) as pool:
                for found in pool.map(lambda b: read_back(*b), _batches(expected, job.max_items_per_request)):
                    results.extend(found)
        except CredentialsRefused as refused:
            return AssetCheckResult(
                passed=False,
                severity=AssetCheckSeverity.WARN,
                description=f"verification could not read the platform: {credentials_hint(job, config, refused)}",
            )
        except PlatformError as exc:
            return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN, description=f"verification could not read the platform: {exc}")
        finally:
            client.close()
        mismatched = [(key, partition, r.message) for key, partition, r in results if r.verified and not r.matches]
        unread = [key for key, _, r in results if not r.verified]
        with warehouse.get_connection() as conn:
            record_verification(
                conn, name, context.op_execution_context.run_id, [(key, partition, _status(r), r.message or None) for key, partition, r in results]
            )
        scope = "the listed keys" if keys else ("every record" if everything else "the records of the latest sync")
        metadata: dict[str, Any] = {
            "verified": len(results) - len(unread),
            "mismatched": len(mismatched),
            "unread": len(unread),
            "scope": scope,
            "ledger_query": MetadataValue.md(f"```sql\n{verification_query(context.op_execution_context.run_id, name)}\n```"),
        }
        if missing:
            metadata["keys_never_confirmed"] = ", ".join(missing[:SAMPLE])
        if mismatched:
            metadata["mismatches"] = MetadataValue.table(
                records=[TableRecord({"key": k, "partition": p, "difference": m[:300]}) for k, p, m in mismatched[:SAMPLE]],
                schema=MISMATCHES_SCHEMA,
            )
        passed = not mismatched and not missing and not unread
        description = (
            f"{len(results)} records verified against the platform"
            if passed
            else f"{len(mismatched)} of {len(results)} records differ from what the platform confirmed"
            + (f"; {len(unread)} could not be read (the platform did not answer)" if unread else "")
            + (f"; {len(missing)} listed keys were never confirmed" if missing else "")
            + ("; the next sync resends the ones that differ" if mismatched else "")
        )
        return AssetCheckResult(passed=passed, severity=AssetCheckSeverity.WARN, description=description, metadata=metadata)

    return _verify


def _batches(expected: pl.DataFrame, size: int) -> Iterator[tuple[str | None, pl.DataFrame]]:
    for (partition,), group in expected.group_by("partition_key", maintain_order=True):
        for offset in range(0, group.height, size):
            yield partition, group.slice(offset, size)


def _status(result: Verification) -> str:
    """The ledger status of one record read back."""
    return "unread" if not result.verified else ("matched" if result.matches else "mismatch")
