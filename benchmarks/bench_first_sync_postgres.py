"""First sync of N records to the Batch sandbox with the warehouse on PostgreSQL, against the same first sync
with the warehouse in a DuckDB file: the same generated segment, the same engine, client, request size (200) and
concurrency (4), the sandbox's rate limit lifted and emptied before every run. On PostgreSQL the run's lock and
its confirmation journal are in the database (``activation_state.sync_journal``, one committed INSERT per
answered request), the diff streams from a server-side cursor, and folds are PostgreSQL transactions; the
throw-away cluster keeps ``fsync`` on, as a real one would, so every journal commit reaches the disk.
Runs alternate between the backends, each in a fresh process. Not a test: it prints its figures.

    python benchmarks/bench_first_sync_postgres.py [ROWS] [REPEATS]   # default 1,000,000 rows, 3 runs
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_diff_postgres import start_cluster  # noqa: E402
from bench_first_sync import engine_sync  # noqa: E402
from bench_first_sync import prepare as prepare_duckdb  # noqa: E402
from common import catalog_items, emit, free_port, peak_rss_mb, reset_sandbox, run_child, sandbox, spread  # noqa: E402

from activation_pipeline_tests.postgres_server import _as_service_user  # noqa: E402


def load_postgres(url: str, pristine: Path) -> float:
    """The DuckDB segment's rows into ``segments.bench`` on PostgreSQL (ADBC's bulk COPY); returns the seconds."""
    import adbc_driver_postgresql.dbapi as adbc

    with duckdb.connect(str(pristine), read_only=True) as conn:
        table = conn.sql("SELECT * FROM segments.bench").arrow()
    started = time.perf_counter()
    with adbc.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE SCHEMA IF NOT EXISTS segments")
        cursor.adbc_ingest("bench", table, mode="create", db_schema_name="segments")
        cursor.execute("ALTER TABLE segments.bench ADD PRIMARY KEY (sku)")
        cursor.execute("ANALYZE segments.bench")
        conn.commit()
    return time.perf_counter() - started


def measure(backend: str, url: str, location: str, state_dir: Path) -> dict[str, Any]:
    """One engine first sync in this fresh process, on ``backend`` (``duckdb``: ``location`` is the file)."""
    if backend == "duckdb":
        seconds, counts = engine_sync(url, Path(location), state_dir, split_phases=False)
    else:
        from activation_pipeline.sync.state import run_state_for
        from activation_pipeline.warehouse import backend_for

        warehouse = backend_for(location)
        seconds, counts = engine_sync(
            url, Path("unused"), state_dir, split_phases=False, connect=warehouse.session, run_state=run_state_for(warehouse)
        )
    return {"seconds": seconds, "rss_mb": peak_rss_mb(), "counts": counts}


def reset_postgres_state(pg_url: str) -> None:
    from activation_pipeline.warehouse import backend_for

    with backend_for(pg_url).session() as session:
        session.execute("DROP SCHEMA IF EXISTS activation_state CASCADE")


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:
        emit(measure(sys.argv[2], sys.argv[3], sys.argv[4], Path(sys.argv[5])))
        return
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    root, cluster = Path(tempfile.mkdtemp(prefix="bench-first-")), Path(tempfile.mkdtemp(prefix="bench-first-pg-"))
    pg_url, bin_dir = start_cluster(cluster, free_port(), fsync=True)
    runs: dict[str, list[dict[str, Any]]] = {"duckdb": [], "postgres": []}
    try:
        pristine, database, state_dir = root / "pristine.duckdb", root / "bench.duckdb", root / "state"
        prepare_duckdb(pristine, rows)
        load_seconds = load_postgres(pg_url, pristine)
        with sandbox(root) as url:
            for _ in range(repeats):
                for backend in runs:
                    reset_sandbox(url)
                    shutil.rmtree(state_dir, ignore_errors=True)
                    if backend == "duckdb":
                        shutil.copyfile(pristine, database)
                        location = str(database)
                    else:
                        reset_postgres_state(pg_url)
                        location = pg_url
                    run = run_child(__file__, "--measure", backend, url, location, state_dir)
                    run["platform_items"] = catalog_items(url).get("engine", 0)
                    runs[backend].append(run)
    finally:
        subprocess.run(_as_service_user([str(bin_dir / "pg_ctl"), "-D", str(cluster / "data"), "-m", "fast", "-w", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(cluster, ignore_errors=True)
    duck, pg = spread([r["seconds"] for r in runs["duckdb"]]), spread([r["seconds"] for r in runs["postgres"]])
    print(f"records              {rows:,} (first sync, mirror, 200 items/request, 4 in flight; median (min–max) of {repeats})")
    print(f"segment into PG      {load_seconds:8.2f} s (ADBC adbc_ingest)")
    for name, figures in (("DuckDB warehouse", duck), ("PostgreSQL warehouse", pg)):
        side = runs["duckdb" if name.startswith("DuckDB") else "postgres"]
        print(
            f"{name:20} {figures['median']:8.1f} s ({figures['min']:.1f}–{figures['max']:.1f})   {rows / figures['median']:10,.0f} records/s"
            f"   peak RSS {max(r['rss_mb'] for r in side):5.0f} MB   platform holds {side[-1]['platform_items']:,}"
        )
    print(f"ratio                {pg['median'] / duck['median']:8.2f}x (PostgreSQL ÷ DuckDB)")


if __name__ == "__main__":
    main()
