"""``activation_state.failed_runs``: each failed step of a Dagster run (the ``record_failed_syncs``
sensor in activation_pipeline/automation.py writes it), so a failure is queryable beside the ledger."""

from __future__ import annotations

from collections.abc import Iterable

from activation_pipeline.sync.state.schema import SCHEMA
from activation_pipeline.warehouse import Session

FAILED_RUNS_DDL = f"""CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.failed_runs (
    run_id VARCHAR, job_name VARCHAR, step_key VARCHAR, activation VARCHAR, error VARCHAR, failed_at TIMESTAMPTZ)"""


def record_failed_steps(conn: Session, run_id: str, job_name: str, steps: Iterable[tuple[str | None, str | None, str]]) -> None:
    """One row per failed (step key, activation, error) of the run, stamped now."""
    conn.execute(FAILED_RUNS_DDL)
    conn.executemany(
        f"INSERT INTO {SCHEMA}.failed_runs VALUES (?, ?, ?, ?, ?, now())",
        [[run_id, job_name, step, activation, error] for step, activation, error in steps],
    )
