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
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from typing import Any

import polars as pl
from dagster import (AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, AssetKey, AssetChecksDefinition, Field, MetadataValue,
                     TableColumn, TableRecord, TableSchema, asset_check)

from activation_pipeline.config import ProjectConfig
from activation_pipeline.platforms import PLATFORMS
from activation_pipeline.assets.activations import build_sync_job, credentials_hint
from activation_pipeline.platforms.base import CredentialsRefused, PlatformError, Record, Verification
from activation_pipeline.sql_identifiers import quote_literal
from activation_pipeline.sync.state import SCHEMA, first_row, snapshot_table

CHECK_NAME = "platform_matches"
SAMPLE = 20
MISMATCHES_SCHEMA = TableSchema(columns=[
    TableColumn("key", "string", description="the segment's primary key"),
    TableColumn("partition", "string", description="the record's day or scope, if any"),
    TableColumn("difference", "string", description="each field that differs (value sent, value the platform holds), or the record's absence"),
])


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
            expected = _expected(conn, name, keyed_by_identifier, keys, everything, context.op_execution_context.run_id)
        if keys:
            missing = sorted(set(keys) - set(expected["key"].to_list()))
        else:
            missing = []
        resource = getattr(context.resources, resource_key)
        client = resource.client()
        results: list[tuple[str, str | None, Verification]] = []
        def read_back(partition: str | None, batch: pl.DataFrame) -> list[tuple[str, str | None, Verification]]:
            records = [Record(key=k, identifier=i, fields=json.loads(p) if p else {})
                       for k, i, p in batch.select("key", "identifier", "payload").iter_rows()]
            return [(r.key, partition, r) for r in client.verify(job.target.for_partition(partition), records)]

        try:  # the activation's `concurrency` requests in flight, as a sync has
            with ThreadPoolExecutor(max_workers=job.concurrency) as pool:
                for found in pool.map(lambda b: read_back(*b), _batches(expected, job.max_items_per_request)):
                    results.extend(found)
        except CredentialsRefused as refused:
            return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN,
                                    description=f"verification could not read the platform: {credentials_hint(job, resource, refused)}")
        except PlatformError as exc:
            return AssetCheckResult(passed=False, severity=AssetCheckSeverity.WARN, description=f"verification could not read the platform: {exc}")
        finally:
            client.close()
        mismatched = [(key, partition, r.message) for key, partition, r in results if r.verified and not r.matches]
        unread = [key for key, _, r in results if not r.verified]
        with warehouse.get_connection() as conn:
            _record(conn, name, context.op_execution_context.run_id, results)
        scope = "the listed keys" if keys else ("every record" if everything else "the records of the latest sync")
        metadata: dict[str, Any] = {"verified": len(results) - len(unread), "mismatched": len(mismatched), "unread": len(unread), "scope": scope,
                                    "ledger_query": MetadataValue.md(
                                        "```sql\nSELECT key, partition_key, status, message FROM activation_state.sync_records\n"
                                        f"WHERE run_id = {quote_literal(context.op_execution_context.run_id)} AND activation = {quote_literal(name)} AND operation = 'verify';\n```")}
        if missing:
            metadata["keys_never_confirmed"] = ", ".join(missing[:SAMPLE])
        if mismatched:
            metadata["mismatches"] = MetadataValue.table(
                records=[TableRecord({"key": k, "partition": p, "difference": m[:300]}) for k, p, m in mismatched[:SAMPLE]],
                schema=MISMATCHES_SCHEMA,
            )
        passed = not mismatched and not missing and not unread
        description = (f"{len(results)} records verified against the platform" if passed else
                       f"{len(mismatched)} of {len(results)} records differ from what the platform confirmed"
                       + (f"; {len(unread)} could not be read (the platform did not answer)" if unread else "")
                       + (f"; {len(missing)} listed keys were never confirmed" if missing else "")
                       + ("; the next sync resends the ones that differ" if mismatched else ""))
        return AssetCheckResult(passed=passed, severity=AssetCheckSeverity.WARN, description=description, metadata=metadata)

    return _verify


def _expected(conn: Any, name: str, keyed_by_identifier: bool, keys: list[str], everything: bool, run_id: str) -> pl.DataFrame:
    """Key, identifier, partition and last confirmed payload of the records to verify."""
    # no snapshot yet (never synced): nothing to verify (the snapshot and the ledger are created together)
    exists = first_row(conn, "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?", [SCHEMA, name])[0]
    if not exists:
        return pl.DataFrame(schema={"key": pl.Utf8, "identifier": pl.Utf8, "partition_key": pl.Utf8, "payload": pl.Utf8})
    if keys:
        chosen, params = "AND lr.key IN (SELECT unnest(?::VARCHAR[]))", [name, keys]
    elif everything:
        chosen, params = "", [name]
    else:  # what the latest sync confirmed: this run's, when the check runs after the sync
        chosen = f"""AND lr.run_id = coalesce(
            (SELECT any_value(run_id) FROM {SCHEMA}.sync_runs WHERE activation = ? AND run_id = ?),
            (SELECT run_id FROM {SCHEMA}.sync_runs WHERE activation = ? AND status IN ('succeeded', 'partial') ORDER BY started_at DESC LIMIT 1))"""
        params = [name, name, run_id, name]
    # the identifier the platform confirmed, from the snapshot (the key itself when they are one column)
    fallback = "lr.key" if keyed_by_identifier else "NULL"
    return conn.sql(
        f"""SELECT lr.key, coalesce(snap.identifier, {fallback}) AS identifier, lr.partition_key, lr.payload::VARCHAR AS payload
            FROM {SCHEMA}.latest_records lr
            JOIN {snapshot_table(name)} snap ON snap.key = lr.key AND snap.partition_key IS NOT DISTINCT FROM lr.partition_key
            WHERE lr.activation = ? AND lr.in_platform AND coalesce(snap.identifier, {fallback}) IS NOT NULL {chosen}
            ORDER BY lr.partition_key, lr.key""",
        params=params,
    ).pl()


def _batches(expected: pl.DataFrame, size: int) -> Iterator[tuple[str | None, pl.DataFrame]]:
    for (partition,), group in expected.group_by("partition_key", maintain_order=True):
        for offset in range(0, group.height, size):
            yield partition, group.slice(offset, size)


def _record(conn: Any, name: str, run_id: str, results: list[tuple[str, str | None, Verification]]) -> None:
    """Ledger rows for every verified record; the snapshot forgets the hash of each mismatch (a sync folding
    at the same moment may have just written it: the cost of that race is one extra resend, never a loss)."""
    if not results:
        return
    frame = pl.DataFrame(
        [(key, partition, "unread" if not r.verified else ("matched" if r.matches else "mismatch"), r.message or None)
         for key, partition, r in results],
        schema={"key": pl.Utf8, "partition_key": pl.Utf8, "status": pl.Utf8, "message": pl.Utf8}, orient="row",
    )
    conn.register("verified", frame)
    try:
        conn.execute("BEGIN TRANSACTION")
        conn.execute(
            f"""INSERT INTO {SCHEMA}.sync_records
                SELECT ?, partition_key, ?, key, 'verified', 'verify', status, message, 1, NULL, NULL, row_number() OVER (), now()
                FROM verified""",
            [run_id, name],
        )
        conn.execute(
            f"""UPDATE {snapshot_table(name)} AS s SET row_hash = NULL
                FROM verified v WHERE v.status = 'mismatch' AND v.key = s.key AND v.partition_key IS NOT DISTINCT FROM s.partition_key"""
        )
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.unregister("verified")
