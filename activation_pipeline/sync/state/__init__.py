"""The engine's state in the warehouse (schema ``activation_state``), and the one owner of its SQL.

- schema.py: the ledger's tables and views, ``ensure_state``, the shared transaction;
- journal.py: the plan and journal files a run keeps, folded into snapshot and ledger;
- run_state.py: where a run's lock and journal live (files beside DuckDB, tables and locks of PostgreSQL);
- snapshot.py: each activation's snapshot, per record what the platform last confirmed;
- ledger.py: the run rows (``sync_runs``) and the ledger's retention;
- targets.py: the target each snapshot describes, retired rows, the mapped columns' types;
- verification.py: read-back verification's records and results;
- failed_runs.py: the failed steps of Dagster runs;
- ledger_reads.py: what metadata, checks and the CLI read from the ledger.
"""

from activation_pipeline.sync.state.failed_runs import (
    FAILED_RUNS_DDL,
    record_failed_steps,
)
from activation_pipeline.sync.state.journal import (
    Journal,
    JournalStore,
    LedgerEntry,
    fold,
    plan_path,
    recover,
    remove_stale_plans,
    run_scope,
)
from activation_pipeline.sync.state.ledger import (
    Pruned,
    finish_run,
    last_synced_sql_hash,
    prune_ledger,
    start_run,
)
from activation_pipeline.sync.state.ledger_reads import (
    REASON_PATTERN,
    Reason,
    activations_with_runs,
    activations_with_status,
    keys_with_status,
    latest_records,
    latest_records_count,
    record_history,
    run_records,
    run_records_query,
    run_totals,
    top_reasons,
)
from activation_pipeline.sync.state.run_state import (
    LocalRunState,
    LockLost,
    RunBusy,
    RunState,
    WarehouseRunState,
    run_state_for,
)
from activation_pipeline.sync.state.schema import (
    SCHEMA,
    ensure_state,
    first_row,
    has_table,
    ledger_ddl,
    now,
    scalar,
    snapshot_table,
    target_ddl,
    transaction,
)
from activation_pipeline.sync.state.snapshot import (
    fill_missing_identifiers,
    has_snapshot,
    snapshot_size,
)
from activation_pipeline.sync.state.targets import (
    TARGET_FIELDS,
    record_column_types,
    record_target,
    recorded_column_types,
    recorded_target,
    undo_retarget,
)
from activation_pipeline.sync.state.verification import (
    record_verification,
    records_to_verify,
    verification_query,
)

__all__ = [
    "FAILED_RUNS_DDL",
    "REASON_PATTERN",
    "SCHEMA",
    "TARGET_FIELDS",
    "Journal",
    "JournalStore",
    "LedgerEntry",
    "LocalRunState",
    "LockLost",
    "RunBusy",
    "RunState",
    "WarehouseRunState",
    "Pruned",
    "Reason",
    "activations_with_runs",
    "activations_with_status",
    "ensure_state",
    "fill_missing_identifiers",
    "finish_run",
    "first_row",
    "fold",
    "scalar",
    "has_snapshot",
    "has_table",
    "keys_with_status",
    "last_synced_sql_hash",
    "latest_records",
    "latest_records_count",
    "ledger_ddl",
    "now",
    "plan_path",
    "prune_ledger",
    "record_column_types",
    "record_failed_steps",
    "record_history",
    "record_target",
    "record_verification",
    "recorded_column_types",
    "recorded_target",
    "records_to_verify",
    "recover",
    "remove_stale_plans",
    "run_records",
    "run_records_query",
    "run_scope",
    "run_state_for",
    "run_totals",
    "snapshot_size",
    "snapshot_table",
    "start_run",
    "target_ddl",
    "top_reasons",
    "transaction",
    "undo_retarget",
    "verification_query",
]
