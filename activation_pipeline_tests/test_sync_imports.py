"""A sync loads only what it uses: run in a fresh interpreter, a first sync and a no-change rerun of
a real DuckDB segment to the Batch sandbox confirm every record without importing Polars or pandas
(Polars is for sources and segments; the sync path is DuckDB and Arrow). A user notices it as a
run's start-up time and its memory (benchmarks/bench_vs_drt.py measures both)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
NOT_NEEDED = ("polars", "pandas")

CHILD = textwrap.dedent(
    """
    import json, sys
    from contextlib import contextmanager
    from pathlib import Path

    import duckdb

    from activation_pipeline.platforms import PLATFORMS
    from activation_pipeline.platforms.base import SyncTarget
    from activation_pipeline.platforms.batch import BatchResource
    from activation_pipeline.sync.diff import PlanRequest
    from activation_pipeline.sync.engine import SyncJob, run_sync
    from activation_pipeline.warehouse import DuckDBSession

    database, state_dir, rows = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])  # argv[4]: the modules to look for
    with duckdb.connect(str(database)) as conn:
        conn.execute("CREATE SCHEMA segments")
        conn.execute(
            "CREATE TABLE segments.products AS SELECT 'SKU-' || i AS sku, 'Product ' || i AS name, i * 1.5 AS price "
            "FROM range(?) t(i)",
            [rows],
        )
    job = SyncJob(
        plan=PlanRequest(activation="light", segment_table="segments.products", primary_key="sku", identifier="sku",
                         columns={"name": "name", "price": "price"}, mode="full_then_delta", operation="mirror"),
        target=SyncTarget(activation="light", title="light", object="light", model=PLATFORMS["batch"].target),
        platform="batch", max_items_per_request=100, concurrency=2, max_delete_fraction=0.2, auto_synced=False,
        segment_sql_hash="x", state_dir=state_dir,
    )

    @contextmanager
    def connect():
        with duckdb.connect(str(database)) as conn:
            yield DuckDBSession(conn)

    client = BatchResource(requests_per_second=0, items_per_second=0).client()
    first, rerun = run_sync(job, client, connect), run_sync(job, client, connect)
    print(json.dumps({
        "first": [first.status, first.succeeded], "rerun": [rerun.status, rerun.succeeded],
        "loaded": sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[4].split(",")),
    }))
    """
)


def test_a_sync_and_its_rerun_run_without_importing_polars_or_pandas(tmp_path: Path, sandbox: Any) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BATCH_BASE_URL": f"{sandbox.url}/batch/2.11"}
    rows = 3_000
    completed = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "w.duckdb"), str(tmp_path / "state"), str(rows), ",".join(NOT_NEEDED)],
        env=env,
        cwd=tmp_path,  # the code under test is ROOT's (PYTHONPATH), not whatever the current directory holds
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["first"] == ["succeeded", rows]  # a real sync: every record confirmed by the sandbox
    assert result["rerun"] == ["succeeded", 0]  # nothing changed, nothing sent
    assert result["loaded"] == [], f"the sync path imported {result['loaded']}"
    held = f"{sandbox.url}/_sandbox/batch/catalogs/light/items"
    assert len(requests.get(held, timeout=60).json()["items"]) == rows
