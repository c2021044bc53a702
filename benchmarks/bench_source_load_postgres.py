"""Loading a source's Polars frame into the warehouse table ``sources.<t>``, as the source asset does
(``replace_source_table``: the frame made queryable, then ``sources.<t>`` replaced in one transaction),
on a PostgreSQL warehouse (the backend's ``COPY … FROM STDIN``) and on a DuckDB file, against ADBC's
bulk ingest (``adbc_ingest``, Arrow to Postgres's binary COPY in C) of the same frame. Each side in its
own process, interleaved, repeated; a throw-away cluster unless BENCH_DATABASE_URL is set.
Not a test: it prints its figures.

    python benchmarks/bench_source_load_postgres.py [ROWS] [REPEATS]     # default 1,000,000 rows, 3 repeats
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_database_source import URL_ENV, server  # noqa: E402
from common import emit, peak_rss_mb, run_child, spread  # noqa: E402

SIDES = ("engine_postgres", "adbc_ingest", "engine_duckdb")


def measure(side: str, parquet: Path, duckdb_file: Path) -> dict[str, Any]:
    import adbc_driver_postgresql.dbapi as adbc
    import polars as pl

    from activation_pipeline.sql_identifiers import qualified_name
    from activation_pipeline.warehouse import backend_for

    frame = pl.read_parquet(parquet)
    url = os.environ[URL_ENV]
    started = time.perf_counter()
    if side == "adbc_ingest":
        with adbc.connect(url) as conn, conn.cursor() as cursor:
            cursor.execute("CREATE SCHEMA IF NOT EXISTS sources")
            cursor.adbc_ingest("products", frame.to_arrow(), mode="replace", db_schema_name="sources")
            conn.commit()
    else:
        backend = backend_for(url if side == "engine_postgres" else duckdb_file)
        with backend.session() as conn:  # what sources.replace_source_table does
            conn.execute("CREATE SCHEMA IF NOT EXISTS sources")
            with conn.transaction(loaded_frame=frame):
                for statement in conn.dialect.create_or_replace_table(qualified_name("sources", "products"), "SELECT * FROM loaded_frame"):
                    conn.execute(statement)
    seconds = time.perf_counter() - started
    backend = backend_for(duckdb_file if side == "engine_duckdb" else url)
    with backend.session(read_only=True) as conn:
        rows = conn.fetch_one("SELECT count(*) FROM sources.products")
    return {"seconds": seconds, "rss_mb": peak_rss_mb(), "rows": rows[0] if rows else 0}


def main() -> None:
    if sys.argv[1:2] == ["--prepare"]:
        from activation_pipeline.demo_data import generate_products

        generate_products(int(sys.argv[3])).write_parquet(sys.argv[2])
        emit({})
        return
    if sys.argv[1:2] == ["--measure"]:
        emit(measure(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])))
        return
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    with tempfile.TemporaryDirectory() as tmp, server() as url:
        os.environ[URL_ENV] = url  # the children read it there: never on a command line
        parquet, duckdb_file = Path(tmp) / "products.parquet", Path(tmp) / "warehouse.duckdb"
        run_child(__file__, "--prepare", parquet, rows)
        runs: dict[str, list[dict[str, Any]]] = {side: [] for side in SIDES}
        for _ in range(repeats):  # interleaved, so a busy spell of the machine hits every side
            for side in SIDES:
                runs[side].append(run_child(__file__, "--measure", side, parquet, duckdb_file))
    print(f"sources.products: {rows:,} rows of the demo's products, {repeats} interleaved runs each, own process; median (min-max)")
    base = spread([r["seconds"] for r in runs["engine_postgres"]])["median"]
    for side, results in runs.items():
        figures = spread([r["seconds"] for r in results])
        print(
            f"{side:16} {figures['median']:7.2f} s ({figures['min']:.2f}-{figures['max']:.2f})  x{figures['median'] / base:5.2f} of engine_postgres"
            f"  peak RSS {max(r['rss_mb'] for r in results):6.0f} MB  rows {results[0]['rows']:,}"
        )


if __name__ == "__main__":
    main()
