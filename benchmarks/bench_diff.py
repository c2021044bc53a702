"""Diff + plan of a generated N-row segment with 1% changed, against a bare DuckDB full outer
join of the same two tables written to the same kind of file, in the same process; and
the process's peak RSS. Not a test: it prints its figures.

    python benchmarks/bench_diff.py [ROWS]        # default 10,000,000

The segment is built in a child process first, so the peak RSS printed is the diff's own.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from activation_pipeline.sync.diff import PlanRequest, plan_operations  # noqa: E402

SENT = {"name": "name", "price": "price", "brand": "brand", "category": "category_path", "stock_status": "stock_status"}


def prepare(database: Path, rows: int) -> None:
    from activation_pipeline.demo_data import generate_products

    products = generate_products(rows)
    with duckdb.connect(str(database)) as conn:
        conn.execute("CREATE SCHEMA segments; CREATE SCHEMA activation_state")
        conn.register("products", products.select(["sku", *SENT.values()]))
        conn.execute("CREATE TABLE segments.bench AS SELECT * FROM products")
        # the snapshot a first sync leaves: key + hash of the sent columns
        columns = ", ".join(["sku", *SENT.values()])
        conn.execute(f"CREATE TABLE activation_state.bench AS SELECT sku AS key, hash({columns}) AS row_hash, 'r0' AS run_id, now() AS confirmed_at FROM segments.bench")
        conn.execute("UPDATE segments.bench SET price = price + 1 WHERE hash(sku) % 100 = 0")  # 1% changed


def measure(database: Path, workdir: Path) -> None:
    request = PlanRequest(activation="bench", segment_table="segments.bench", primary_key="sku", identifier="sku",
                          columns=SENT, mode="full_then_delta", operation="mirror")
    with duckdb.connect(str(database)) as conn:
        rows = conn.execute("SELECT count(*) FROM segments.bench").fetchall()[0][0]
        started = time.perf_counter()
        conn.execute(f"""COPY (SELECT * FROM segments.bench s FULL OUTER JOIN activation_state.bench a ON s.sku = a.key)
                         TO '{workdir / "join.parquet"}' (FORMAT parquet, COMPRESSION zstd)""")
        bare = time.perf_counter() - started
        started = time.perf_counter()
        plan = plan_operations(conn, request, workdir / "plan.parquet")
        ours = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows                 {rows:,}")
    print(f"bare full outer join {bare:8.2f} s")
    print(f"diff + plan          {ours:8.2f} s   ratio {ours / bare:.2f}x (target <= 1.5x)")
    print(f"changed found        {plan.counts.get('changed', 0):,}  unchanged {plan.counts.get('unchanged', 0):,}")
    print(f"peak RSS             {peak_mb:8.0f} MB (target <= 2048 MB)")


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1] != "--measure" else 10_000_000
    if "--measure" in sys.argv:
        measure(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "bench.duckdb"
        started = time.perf_counter()
        prepare(database, rows)
        print(f"prepared {rows:,} rows in {time.perf_counter() - started:.1f} s")
        subprocess.run([sys.executable, __file__, "--measure", str(database), tmp], check=True)


if __name__ == "__main__":
    main()
