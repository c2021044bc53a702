"""Diff + plan of a generated N-row segment with 1% changed, against a bare DuckDB full outer
join of the same two tables written to the same kind of file; and each side's peak RSS.
Not a test: it prints its figures (``compare`` returns them, for ``run_all.py``).

    python benchmarks/bench_diff.py [ROWS]        # default 10,000,000

The segment is built in one child process and each side measured in another, so each
peak RSS printed is that side's own.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, peak_rss_mb, run_child  # noqa: E402

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
        conn.execute(
            f"CREATE TABLE activation_state.bench AS SELECT sku AS key, hash({columns}) AS row_hash, 'r0' AS run_id, "
            "now() AS confirmed_at, NULL::VARCHAR AS partition_key, sku AS identifier FROM segments.bench"
        )
        conn.execute("UPDATE segments.bench SET price = price + 1 WHERE hash(sku) % 100 = 0")  # 1% changed


MEMORY_LIMIT = "1GB"  # the same DuckDB memory_limit for both sides (the README's figures; the warehouse resource defaults to 2GB)


def measure(side: str, database: Path, workdir: Path) -> dict[str, Any]:
    """One side, to be run in a fresh process: seconds, peak RSS (MB) and, for the plan, the changed rows found."""
    request = PlanRequest(
        activation="bench",
        segment_table="segments.bench",
        primary_key="sku",
        identifier="sku",
        columns=SENT,
        mode="full_then_delta",
        operation="mirror",
    )
    with duckdb.connect(str(database), config={"memory_limit": MEMORY_LIMIT}) as conn:
        started = time.perf_counter()
        if side == "bare":
            conn.execute(f"""COPY (SELECT * FROM segments.bench s FULL OUTER JOIN activation_state.bench a ON s.sku = a.key)
                             TO '{workdir / "join.parquet"}' (FORMAT parquet, COMPRESSION zstd)""")
            changed = -1
        else:
            changed = plan_operations(conn, request, workdir / "plan.parquet").counts.get("changed", 0)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_mb": peak_rss_mb(), "changed": changed}


def compare(rows: int) -> dict[str, Any]:
    """Build an N-row segment and its snapshot (1% changed), then time both sides, each in its own process."""
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "bench.duckdb"
        started = time.perf_counter()
        # every step in its own process, so that each peak RSS is that step's own
        subprocess.run([sys.executable, __file__, "--prepare", str(database), str(rows)], check=True)
        prepared = time.perf_counter() - started
        bare = run_child(__file__, "--measure", "bare", database, tmp)
        plan = run_child(__file__, "--measure", "plan", database, tmp)
    return {
        "rows": rows,
        "prepare_seconds": prepared,
        "memory_limit": MEMORY_LIMIT,
        "bare_seconds": bare["seconds"],
        "bare_rss_mb": bare["rss_mb"],
        "plan_seconds": plan["seconds"],
        "plan_rss_mb": plan["rss_mb"],
        "ratio": plan["seconds"] / bare["seconds"],
        "changed": plan["changed"],
    }


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:
        emit(measure(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])))
        return
    if sys.argv[1:2] == ["--prepare"]:
        prepare(Path(sys.argv[2]), int(sys.argv[3]))
        return
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    result = compare(rows)
    print(f"prepared {rows:,} rows in {result['prepare_seconds']:.1f} s")
    print(f"rows                 {rows:,}  (1% changed; DuckDB memory_limit {MEMORY_LIMIT} on both sides)")
    print(f"bare full outer join {result['bare_seconds']:8.2f} s   peak RSS {result['bare_rss_mb']:6.0f} MB")
    print(f"diff + plan          {result['plan_seconds']:8.2f} s   peak RSS {result['plan_rss_mb']:6.0f} MB")
    print(f"ratio                {result['ratio']:8.2f}x  (target <= 1.5x; RSS target <= 2048 MB)")
    print(f"changed found        {result['changed']:,}")


if __name__ == "__main__":
    main()
