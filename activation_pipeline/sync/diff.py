"""Segment vs snapshot → planned operations, in one SQL statement (the same on every warehouse backend).

The statement full-outer-joins the segment with the activation's snapshot by primary key,
hashes only the columns that are sent (a column that is not sent cannot make a row
"changed"), classifies every key (added / changed / unchanged / removed / invalid), decides
its operation from the mode and writes the result to a Parquet plan file. The engine then
streams that file in Arrow batches: the segment is never held as Python objects, and no
warehouse connection stays open while the platform is called.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from activation_pipeline.platforms.json_items import JsonItemShape
from activation_pipeline.sql_identifiers import quote_identifier as _quote
from activation_pipeline.sql_identifiers import quote_literal
from activation_pipeline.sync.item_sql import DuckDBItems, Fallback, ItemColumn, ItemDialect
from activation_pipeline.sync.state import fill_missing_identifiers, scalar, snapshot_table
from activation_pipeline.warehouse import Session

PAYLOAD_PREFIX = "f__"
# the declared item of a JSON-items client, for the operation sent and the fields' logical types
ItemShapes = Callable[[str, Mapping[str, str]], JsonItemShape | None]
ITEM_DIALECTS: dict[str, ItemDialect] = {"duckdb": DuckDBItems()}  # a backend without one builds the items in Python
LOGICAL_TYPES = {
    "VARCHAR": "string",
    "BOOLEAN": "bool",
    "DATE": "date",
    "TIMESTAMP": "date",
    "TIMESTAMP WITH TIME ZONE": "date",
    "DOUBLE": "float",
    "FLOAT": "float",
}


class PlanError(ValueError):
    """The activation does not fit its segment (a mapped column is missing, …)."""


@dataclass(frozen=True)
class PlanRequest:
    activation: str
    segment_table: str
    primary_key: str
    identifier: str
    columns: dict[str, str]  # platform field -> segment column
    mode: str
    operation: str
    full_resync: bool = False
    only_keys: tuple[str, ...] = ()
    partition_column: str | None = None  # set for a partitioned segment: the diff covers one day
    partition_key: str | None = None
    partition_kind: str = "day"  # "day": rows of that date; "value": rows whose column equals the key (a scope)
    ignore_snapshot: bool = False  # the target changed: plan a first sync of the new one (sync/target_guard.py)

    def segment_rows_sql(self) -> str:
        if self.partition_key is None or self.partition_column is None:
            return self.segment_table
        key = quote_literal(self.partition_key)
        if self.partition_kind == "value":
            return f"(SELECT * FROM {self.segment_table} WHERE CAST({_quote(self.partition_column)} AS VARCHAR) = {key}) AS segment_rows"
        return f"(SELECT * FROM {self.segment_table} WHERE CAST({_quote(self.partition_column)} AS DATE) = DATE {key}) AS segment_rows"


@dataclass
class Plan:
    path: Path
    counts: dict[str, int] = field(default_factory=dict)
    field_types: dict[str, str] = field(default_factory=dict)
    segment_types: dict[str, str] = field(default_factory=dict)  # every segment column's type (DuckDB spelling), as planned
    items: bool = False  # the plan holds each sent record's item text (__body) and refusal (__invalid)
    items_fallback: str | None = None  # why a JSON-items client's items are built in Python instead

    @property
    def to_send(self) -> int:
        return self.counts.get("op_upsert", 0) + self.counts.get("op_update", 0) + self.counts.get("op_delete", 0)


def _logical_type(duckdb_type: str) -> str:
    if duckdb_type.endswith("[]"):
        return "array"
    if duckdb_type.startswith("DECIMAL"):
        return "float"
    if duckdb_type in LOGICAL_TYPES:
        return LOGICAL_TYPES[duckdb_type]
    return "integer" if "INT" in duckdb_type else "string"


def segment_columns(conn: Session, table: str) -> dict[str, str]:
    """Column -> type (spelled as DuckDB does, on every backend)."""
    return conn.columns(table)


def _count_left_alone(conn: Session, counts: dict[str, int], plan_path: Path, segment: str, snapshot: str) -> None:
    """Complete ``counts`` (tallied from the plan) with the unchanged and removed records the plan leaves out.

    Each segment row is one row of the diff (the snapshot holds a key once), so the unchanged left alone are the
    segment's rows less the plan's. The removed are the snapshot's keys that no segment row matched; the matched
    are the changed and unchanged ones, and the duplicated (invalid) keys the snapshot holds."""
    segment_rows, snapshot_rows = (scalar(conn, f"SELECT count(*) FROM {side}") for side in (segment, snapshot))
    counts["unchanged"] += segment_rows - sum(counts[change] for change in ("added", "changed", "unchanged", "invalid"))
    duplicated_known = 0
    if counts["invalid"] and snapshot_rows:
        invalid = pq.read_table(plan_path, columns=["__key"], filters=[("__change", "=", "invalid")])
        keys = pa.table({"key": pc.unique(invalid.column("__key")).drop_null()})
        if keys.num_rows:
            with conn.frames(invalid_keys=keys):
                duplicated_known = scalar(conn, f"SELECT count(*) FROM {snapshot} WHERE snap.key IN (SELECT key FROM invalid_keys)")
    counts["removed"] = snapshot_rows - counts["changed"] - counts["unchanged"] - duplicated_known


def _operation_sql(request: PlanRequest) -> str:
    """CASE expression choosing each key's operation; the mode table of README.md "Sync modes", in SQL."""
    send = "'update'" if request.operation == "update_only" else "'upsert'"
    valid = "__change IN ('added', 'changed', 'unchanged')"
    if request.only_keys:
        return f"CASE WHEN {valid} THEN {send} END"
    if request.operation == "delete_only":
        return f"CASE WHEN {valid} THEN 'delete' END"
    if request.mode == "full_only" or request.full_resync:
        return f"CASE WHEN {valid} THEN {send} END"
    delete_removed = "WHEN __change = 'removed' THEN 'delete'" if request.operation == "mirror" else ""
    return f"CASE WHEN __change IN ('added', 'changed') THEN {send} {delete_removed} END"


def _items_sql(request: PlanRequest, available: Mapping[str, str], shapes: ItemShapes | None, backend: str) -> tuple[str, str, str | None]:
    """The plan's ``__invalid`` and ``__body`` expressions (NULL when the items are built in Python), and why not."""
    none = ("CAST(NULL AS VARCHAR)", "CAST(NULL AS VARCHAR)")
    if shapes is None:
        return *none, None
    if backend not in ITEM_DIALECTS:
        return *none, f"the {backend} warehouse has no item dialect yet"
    send = "update" if request.operation == "update_only" else "upsert"
    shape = shapes(send, {f: _logical_type(available[c]) for f, c in request.columns.items()})
    if shape is None:
        return *none, f"the client builds {send} items in Python"
    columns = [ItemColumn(f, _quote(PAYLOAD_PREFIX + f), available[c]) for f, c in request.columns.items()]
    compiled = ITEM_DIALECTS[backend].compile(shape, "__identifier", columns)
    if isinstance(compiled, Fallback):
        return *none, compiled.reason
    unknown = quote_literal(identifier_unknown(request.identifier))
    invalid = f"CASE WHEN __op = '{send}' THEN (CASE WHEN __identifier IS NULL THEN {unknown} ELSE {compiled.invalid} END) END"
    return invalid, f"CASE WHEN __op = '{send}' AND __invalid IS NULL THEN {compiled.body} END", None


def identifier_unknown(identifier: str) -> str:
    """Why a record whose identifier is null is not sent."""
    return f"the identifier ({identifier}) is null or unknown"


def plan_operations(conn: Session, request: PlanRequest, plan_path: Path, items: ItemShapes | None = None) -> Plan:
    """Diff the segment against the snapshot and write the plan; return it with its counts. ``items``: the
    client's declared JSON item (``JsonItemsClient``), built and checked here into ``__body`` and ``__invalid``."""
    available = segment_columns(conn, request.segment_table)
    wanted = {request.primary_key: "primary_key", request.identifier: "identifier"}
    wanted.update({column: f"mapping.{platform_field}" for platform_field, column in request.columns.items()})
    if request.partition_column is not None and request.partition_kind == "value":
        wanted.setdefault(request.partition_column, "scope.column")
    for column, where in wanted.items():
        if column not in available:
            raise PlanError(
                f"activations.{request.activation}.{where}: column {column!r} is not in {request.segment_table} (columns: {', '.join(available)})"
            )
    sent = [request.identifier, *request.columns.values()]
    hashed = [_quote(c) for c in dict.fromkeys(sent)]
    payload = ", ".join(f"{_quote(c)} AS {_quote(PAYLOAD_PREFIX + f)}" for f, c in request.columns.items())
    payload_names = ", ".join(_quote(PAYLOAD_PREFIX + f) for f in request.columns)
    # the ledger's copy of what is sent, built here in one vectorised pass rather than per record in Python
    dialect = conn.dialect
    payload_json = dialect.json_object([(f, _quote(PAYLOAD_PREFIX + f)) for f in request.columns]) if request.columns else "NULL"
    key_filter = ""
    if request.only_keys:
        keys = ", ".join(map(quote_literal, request.only_keys))
        key_filter = f"WHERE CAST({_quote(request.primary_key)} AS VARCHAR) IN ({keys})"
    snapshot = snapshot_table(request.activation)
    if request.only_keys or request.ignore_snapshot:
        snapshot_side = (
            f"(SELECT CAST(NULL AS VARCHAR) AS key, CAST(NULL AS {dialect.hash_type}) AS row_hash, CAST(NULL AS VARCHAR) AS identifier WHERE false)"
        )
    elif request.partition_key is not None:
        snapshot_side = f"(SELECT * FROM {snapshot} WHERE partition_key = {quote_literal(request.partition_key)})"
    else:
        snapshot_side = snapshot
    rows = request.segment_rows_sql()
    if request.identifier != request.primary_key and not request.ignore_snapshot:  # a snapshot from before identifiers were kept
        fill_missing_identifiers(
            conn,
            request.activation,
            request.partition_key,
            f"""SELECT CAST({_quote(request.primary_key)} AS VARCHAR) AS __key,
                                           {dialect.any_value(f"CAST({_quote(request.identifier)} AS VARCHAR)")} AS __identifier
                                    FROM {rows} GROUP BY 1""",
        )
    invalid_sql, body_sql, items_fallback = _items_sql(request, available, items, dialect.name)
    # the items' texts carry the fields: the plan then leaves the fields' own columns out
    sent_columns = f"EXCLUDE ({payload_names})" if payload_names and items is not None and items_fallback is None else ""
    plan_path.parent.mkdir(parents=True, exist_ok=True)
    conn.copy_to_parquet(
        f"""
          WITH duplicated AS (  -- keys only, so it stays small and cheap: usually empty
            SELECT CAST({_quote(request.primary_key)} AS VARCHAR) AS __key, count(*) AS __copies
            FROM {rows} {key_filter} GROUP BY 1 HAVING count(*) > 1
          ), seg AS (
            SELECT CAST({_quote(request.primary_key)} AS VARCHAR) AS __key,
                   CAST({_quote(request.identifier)} AS VARCHAR) AS __identifier,
                   {dialect.row_hash(hashed)} AS __hash,
                   {payload}{"," if payload else ""} true AS __in_segment
            FROM {rows} {key_filter}
          ), classified AS (
            SELECT coalesce(seg.__key, snap.key) AS __key,
                   -- a removed record is deleted by the identifier the platform confirmed
                   CASE WHEN seg.__in_segment THEN seg.__identifier ELSE snap.identifier END AS __identifier, seg.__hash,
                   CASE
                     WHEN seg.__in_segment IS NULL THEN 'removed'
                     WHEN seg.__key IS NULL OR dup.__copies IS NOT NULL THEN 'invalid'
                     WHEN snap.key IS NULL THEN 'added'
                     WHEN snap.row_hash IS DISTINCT FROM seg.__hash THEN 'changed'
                     ELSE 'unchanged'
                   END AS __change,
                   CASE WHEN seg.__key IS NULL AND seg.__in_segment THEN 'primary key is null'
                        WHEN dup.__copies IS NOT NULL THEN 'primary key appears ' || dup.__copies || ' times in the segment'
                   END AS __reason
                   {"," if payload_names else ""} {payload_names}
            FROM seg FULL OUTER JOIN {snapshot_side} AS snap ON seg.__key = snap.key
            LEFT JOIN duplicated AS dup ON dup.__key = seg.__key
          )
          SELECT * {sent_columns}, {body_sql} AS __body FROM (
            SELECT *, CASE WHEN (__op IS NOT NULL AND __op <> 'delete') OR __change = 'invalid' THEN {payload_json} END AS __payload,
                   {invalid_sql} AS __invalid
            FROM (SELECT *, {_operation_sql(request)} AS __op FROM classified) AS decided
            -- only what the push acts on (sends, refuses or deletes) reaches the plan: the unchanged and removed
            -- records it leaves alone are counted below, from the sizes of segment and snapshot
            WHERE __op IS NOT NULL OR __change = 'invalid') AS built
        """,
        plan_path,
    )
    counts = {"added": 0, "changed": 0, "unchanged": 0, "removed": 0, "invalid": 0}
    decided = pq.read_table(plan_path, columns=["__change", "__op"])  # two small columns; Arrow, not Polars, on a sync's path
    tally = decided.group_by(["__change", "__op"], use_threads=False).aggregate([([], "count_all")])
    for change, op, n in zip(*(tally.column(c).to_pylist() for c in ("__change", "__op", "count_all")), strict=True):
        counts[change] = counts.get(change, 0) + n
        if op:
            counts[f"op_{op}"] = counts.get(f"op_{op}", 0) + n
            counts[f"{change}_{op}"] = counts.get(f"{change}_{op}", 0) + n
    _count_left_alone(conn, counts, plan_path, f"{rows} {key_filter}", f"{snapshot_side} AS snap")
    field_types = {f: _logical_type(available[c]) for f, c in request.columns.items()}
    built = items is not None and items_fallback is None
    return Plan(plan_path, counts, field_types, available, built, items_fallback if items is not None else None)
