"""Diff + plan of a generated N-row segment with 1% changed, against a bare DuckDB full outer
join of the same two tables written to the same kind of file, in the same process; and
the process's peak RSS. Not a test: it prints its figures.

    python benchmarks/bench_diff.py [ROWS]        # default 10,000,000

The segment is built in one child process and each side measured in another, so each\npeak RSS printed is that side's own.
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


MEMORY_LIMIT = "1GB"  # the same DuckDB memory_limit for both sides (the warehouse resource's default)


def measure(side: str, database: Path, workdir: Path) -> None:
    """One side in a fresh process: prints seconds, peak RSS and, for the plan, its counts."""
    request = PlanRequest(activation="bench", segment_table="segments.bench", primary_key="sku", identifier="sku",
                          columns=SENT, mode="full_then_delta", operation="mirror")
    with duckdb.connect(str(database), config={"memory_limit": MEMORY_LIMIT}) as conn:
        started = time.perf_counter()
        if side == "bare":
            conn.execute(f"""COPY (SELECT * FROM segments.bench s FULL OUTER JOIN activation_state.bench a ON s.sku = a.key)
                             TO '{workdir / "join.parquet"}' (FORMAT parquet, COMPRESSION zstd)""")
            changed = -1
        else:
            changed = plan_operations(conn, request, workdir / "plan.parquet").counts.get("changed", 0)
        seconds = time.perf_counter() - started
    print(f"{seconds} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024} {changed}")


def run_side(side: str, database: Path, workdir: str) -> tuple[float, float, int]:
    out = subprocess.run([sys.executable, __file__, "--measure", side, str(database), workdir],
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]), int(out[2])


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:
        measure(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return
    if sys.argv[1:2] == ["--prepare"]:
        prepare(Path(sys.argv[2]), int(sys.argv[3]))
        return
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "bench.duckdb"
        started = time.perf_counter()
        # each step in its own process: Linux keeps ru_maxrss across exec, so a child of a
        # big parent would report the parent's peak
        subprocess.run([sys.executable, __file__, "--prepare", str(database), str(rows)], check=True)
        print(f"prepared {rows:,} rows in {time.perf_counter() - started:.1f} s")
        bare, bare_rss, _ = run_side("bare", database, tmp)
        ours, ours_rss, changed = run_side("plan", database, tmp)
    print(f"rows                 {rows:,}  (1% changed; DuckDB memory_limit {MEMORY_LIMIT} on both sides)")
    print(f"bare full outer join {bare:8.2f} s   peak RSS {bare_rss:6.0f} MB")
    print(f"diff + plan          {ours:8.2f} s   peak RSS {ours_rss:6.0f} MB")
    print(f"ratio                {ours / bare:8.2f}x  (target <= 1.5x; RSS target <= 2048 MB)")
    print(f"changed found        {changed:,}")


if __name__ == "__main__":
    main()
