"""Each activation's snapshot (``activation_state.<activation>``): per record, the hash and identifier
the platform last confirmed. The journal's fold (state/journal.py) advances it; these are its other
readers and writers."""

from __future__ import annotations

from activation_pipeline.sync.state.schema import has_table, scalar, snapshot_table
from activation_pipeline.warehouse import Session


def has_snapshot(conn: Session, activation: str) -> bool:
    """False before the activation's first sync (the snapshot and the ledger are created together)."""
    return has_table(conn, activation)


def snapshot_size(conn: Session, activation: str, partition_key: str | None = None) -> int:
    """Records confirmed in the platform, for the whole activation or one of its partitions."""
    if partition_key is None:
        return scalar(conn, f"SELECT count(*) FROM {snapshot_table(activation)}")
    return scalar(conn, f"SELECT count(*) FROM {snapshot_table(activation)} WHERE partition_key = ?", [partition_key])


def fill_missing_identifiers(conn: Session, activation: str, partition_key: str | None, segment_keys: str) -> None:
    """Snapshots written before the identifier was kept: take it from ``segment_keys`` (a query of
    ``__key, __identifier``, one row per key still in the segment), so a record that leaves later is
    deleted by it (one that already left stays counted invalid, with the reason)."""
    snapshot = snapshot_table(activation)
    if not scalar(conn, f"SELECT count(*) FROM (SELECT 1 FROM {snapshot} WHERE identifier IS NULL LIMIT 1) AS unfilled"):
        return
    conn.execute(
        f"""UPDATE {snapshot} AS snap SET identifier = seg.__identifier FROM ({segment_keys}) AS seg
            WHERE snap.identifier IS NULL AND snap.key = seg.__key AND snap.partition_key IS NOT DISTINCT FROM ?""",
        [partition_key],
    )
