"""The target each snapshot describes (table ``activation_state.snapshot_targets``, created by
``ensure_state``), the snapshot rows a retarget retires, and the mapped columns' types as last
confirmed: what sync/target_guard.py compares a run against. Part of the state the engine keeps
beside the snapshot; every write is one transaction."""

from __future__ import annotations

import json
from typing import Any

from activation_pipeline.sync.state.schema import (
    SCHEMA,
    first_row,
    scalar,
    snapshot_table,
    transaction,
)
from activation_pipeline.warehouse import Session

TARGET_FIELDS = ("destination", "platform", "object", "identifier", "options")


def recorded_target(conn: Session, activation: str, partition_key: str | None) -> dict[str, Any] | None:
    """The target this (activation, partition)'s snapshot was confirmed against; None before any was recorded."""
    row = first_row(
        conn,
        f"""SELECT destination, platform, object, identifier, options, target FROM {SCHEMA}.snapshot_targets
                  WHERE activation = ? AND partition_key IS NOT DISTINCT FROM ?""",
        [activation, partition_key],
    )
    if row is None:
        return None
    return {**dict(zip(TARGET_FIELDS[:4], row[:4], strict=True)), "options": json.loads(row[4]) if row[4] else {}, "target": row[5]}


def record_target(
    conn: Session, activation: str, partition_key: str | None, target: dict[str, Any], run_id: str, retire_from: str | None = None
) -> int:
    """Record the target the snapshot now describes. With ``retire_from`` (the old target's label), first move
    the old target's snapshot rows to ``retired_snapshots``, in the same transaction; returns the rows retired."""
    snap = snapshot_table(activation)
    with transaction(conn):
        retired = 0
        if retire_from is not None:
            retired = scalar(conn, f"SELECT count(*) FROM {snap} WHERE partition_key IS NOT DISTINCT FROM ?", [partition_key])
            conn.execute(
                f"""INSERT INTO {SCHEMA}.retired_snapshots
                    SELECT ?, partition_key, key, row_hash, run_id, confirmed_at, identifier, ?, ?, now()
                    FROM {snap} WHERE partition_key IS NOT DISTINCT FROM ?""",
                [activation, retire_from, run_id, partition_key],
            )
            conn.execute(f"DELETE FROM {snap} WHERE partition_key IS NOT DISTINCT FROM ?", [partition_key])
        updated = conn.execute(
            f"""UPDATE {SCHEMA}.snapshot_targets SET destination = ?, platform = ?, object = ?, identifier = ?, options = ?,
                target = ?, run_id = ?, recorded_at = now() WHERE activation = ? AND partition_key IS NOT DISTINCT FROM ?
                RETURNING 1""",
            [
                *(target[f] for f in TARGET_FIELDS[:4]),
                json.dumps(target["options"], sort_keys=True),
                target["target"],
                run_id,
                activation,
                partition_key,
            ],
        ).fetchall()
        if not updated:
            conn.execute(
                f"""INSERT INTO {SCHEMA}.snapshot_targets (activation, partition_key, destination, platform, object,
                    identifier, options, target, run_id, recorded_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now())""",
                [
                    activation,
                    partition_key,
                    *(target[f] for f in TARGET_FIELDS[:4]),
                    json.dumps(target["options"], sort_keys=True),
                    target["target"],
                    run_id,
                ],
            )
    return retired


def undo_retarget(conn: Session, activation: str, partition_key: str | None, old_target: dict[str, Any], run_id: str) -> None:
    """A retargeting run that confirmed nothing on its new target: put back the old target and the snapshot rows
    ``record_target`` retired for it, in one transaction (reverting the config then resends nothing)."""
    snap = snapshot_table(activation)
    with transaction(conn):
        conn.execute(
            f"""INSERT INTO {snap} (key, row_hash, run_id, confirmed_at, partition_key, identifier)
                SELECT key, row_hash, run_id, confirmed_at, partition_key, identifier FROM {SCHEMA}.retired_snapshots
                WHERE activation = ? AND partition_key IS NOT DISTINCT FROM ? AND retired_by_run = ?""",
            [activation, partition_key, run_id],
        )
        conn.execute(
            f"""DELETE FROM {SCHEMA}.retired_snapshots
                WHERE activation = ? AND partition_key IS NOT DISTINCT FROM ? AND retired_by_run = ?""",
            [activation, partition_key, run_id],
        )
        conn.execute(
            f"""UPDATE {SCHEMA}.snapshot_targets SET destination = ?, platform = ?, object = ?, identifier = ?, options = ?,
                target = ?, recorded_at = now() WHERE activation = ? AND partition_key IS NOT DISTINCT FROM ?""",
            [
                *(old_target[f] for f in TARGET_FIELDS[:4]),
                json.dumps(old_target["options"], sort_keys=True),
                old_target["target"],
                activation,
                partition_key,
            ],
        )


def recorded_column_types(conn: Session, activation: str, partition_key: str | None) -> dict[str, list[str]]:
    """Platform field -> [segment column, DuckDB type] as last confirmed: this partition's, else the
    activation's latest (a new day or scope starts from what the platform fields already hold)."""
    row = first_row(
        conn,
        f"""SELECT column_types FROM {SCHEMA}.snapshot_targets WHERE activation = ? AND column_types IS NOT NULL
                  ORDER BY (partition_key IS NOT DISTINCT FROM ?) DESC, types_recorded_at DESC LIMIT 1""",
        [activation, partition_key],
    )
    return json.loads(row[0]) if row else {}


def record_column_types(conn: Session, activation: str, partition_key: str | None, column_types: dict[str, list[str]], run_id: str) -> None:
    conn.execute(
        f"""UPDATE {SCHEMA}.snapshot_targets SET column_types = ?, types_run_id = ?, types_recorded_at = now()
            WHERE activation = ? AND partition_key IS NOT DISTINCT FROM ?""",
        [json.dumps(column_types, sort_keys=True), run_id, activation, partition_key],
    )
