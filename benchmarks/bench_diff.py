"""Diff + plan of a generated N-row segment with 1% changed, against a bare DuckDB statement
doing the same work: the same full outer join of segment and snapshot by key, a hash of the
same sent columns compared with the snapshot's, each key classified (added / changed /
unchanged / removed) and given its operation, the same payload columns and JSON, written to
the same kind of Parquet file. What the bare statement leaves out is what the engine adds
(duplicate-key detection, the column checks, the counts read back): the ratio is their price.
Not a test: it prints its figures (``compare`` returns them, for ``run_all.py``).

    python benchmarks/bench_diff.py [ROWS] [REPEATS]     # default 10,000,000 rows, 3 runs

The segment is built in one child process and each run of each side measured in another
(alternating), so each peak RSS printed is that side's own.
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

from common import emit, peak_rss_mb, run_child, spread  # noqa: E402

from activation_pipeline.sync.diff import PlanRequest, plan_operations  # noqa: E402
from activation_pipeline.warehouse import DuckDBSession  # noqa: E402

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


_HASHED = ", ".join(["s.sku", *(f"s.{c}" for c in SENT.values())])  # the identifier and the sent columns, as the plan hashes them
_PAYLOAD = ", ".join(f"{c} AS f__{f}" for f, c in SENT.items())
_FIELDS = ", ".join(f"f__{f}" for f in SENT)
_PAYLOAD_JSON = f"to_json(struct_pack({', '.join(f'{f} := f__{f}' for f in SENT)}))::VARCHAR"
#: the plan's work in one plain statement (mirror mode: added and changed upserted, removed deleted), with the
#: plan's classification: a row whose key is null or appears more than once in the segment is invalid (the
#: aggregate that finds them costs about 1.4 s of 10M rows, for both sides), and only rows with something to do
#: are written
BARE_STATEMENT = f"""
COPY (
  WITH duplicated AS (
    SELECT sku, count(*) AS copies FROM segments.bench GROUP BY 1 HAVING count(*) > 1
  ), seg AS (  -- hashed and narrowed before the join
    SELECT sku, hash({_HASHED}) AS row_hash, {_PAYLOAD}, true AS in_segment FROM segments.bench s
  ), joined AS (
    SELECT seg.*, a.key AS snap_key, a.identifier AS snap_identifier, a.row_hash AS snap_hash, d.copies
    FROM seg FULL OUTER JOIN activation_state.bench a ON seg.sku = a.key
    LEFT JOIN duplicated d ON d.sku = seg.sku
  ), classified AS (
    SELECT *, CASE WHEN in_segment IS NULL THEN 'removed' WHEN sku IS NULL OR copies IS NOT NULL THEN 'invalid'
                   WHEN snap_key IS NULL THEN 'added' WHEN snap_hash IS DISTINCT FROM row_hash THEN 'changed' ELSE 'unchanged' END AS change
    FROM joined
  )
  SELECT coalesce(sku, snap_key) AS key, coalesce(sku, snap_identifier) AS identifier, row_hash, change,
         CASE WHEN change IN ('added', 'changed') THEN 'upsert' WHEN change = 'removed' THEN 'delete' END AS op,
         CASE WHEN sku IS NULL THEN 'primary key is null' WHEN copies IS NOT NULL THEN 'primary key appears ' || copies || ' times' END AS reason,
         {_FIELDS}, CASE WHEN change IN ('added', 'changed', 'invalid') THEN {_PAYLOAD_JSON} END AS payload
  FROM classified
  WHERE change <> 'unchanged'  -- as the plan: only the rows the push acts on (and removed ones) are written
) TO '{{path}}' (FORMAT parquet, COMPRESSION zstd)
"""
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
        if side == "bare":
            conn.execute("SET preserve_insertion_order = false")  # as the plan sets it: the row order is irrelevant
            started = time.perf_counter()
            conn.execute(BARE_STATEMENT.format(path=workdir / "bare.parquet"))
            seconds = time.perf_counter() - started
            query = f"SELECT count(*) FROM read_parquet('{workdir / 'bare.parquet'}') WHERE change = 'changed'"
            changed = conn.execute(query).fetchone()[0]  # a check, outside the clock
        else:
            started = time.perf_counter()
            changed = plan_operations(DuckDBSession(conn), request, workdir / "plan.parquet").counts.get("changed", 0)
            seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_mb": peak_rss_mb(), "changed": changed}


def compare(rows: int, repeats: int = 3) -> dict[str, Any]:
    """Build an N-row segment and its snapshot (1% changed), then time both sides ``repeats`` times,
    alternating, each run in its own process; medians and min–max."""
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "bench.duckdb"
        started = time.perf_counter()
        # every step in its own process, so that each peak RSS is that step's own
        subprocess.run([sys.executable, __file__, "--prepare", str(database), str(rows)], check=True)
        prepared = time.perf_counter() - started
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "plan": []}
        for _ in range(repeats):
            for side, side_runs in runs.items():
                side_runs.append(run_child(__file__, "--measure", side, database, tmp))
    bare, plan = spread([r["seconds"] for r in runs["bare"]]), spread([r["seconds"] for r in runs["plan"]])
    return {
        "rows": rows,
        "repeats": repeats,
        "prepare_seconds": prepared,
        "memory_limit": MEMORY_LIMIT,
        "bare": bare,
        "plan": plan,
        "bare_rss_mb": max(r["rss_mb"] for r in runs["bare"]),
        "plan_rss_mb": max(r["rss_mb"] for r in runs["plan"]),
        "ratio": plan["median"] / bare["median"],
        "changed": runs["plan"][0]["changed"],
        "bare_changed": runs["bare"][0]["changed"],
    }


def main() -> None:
    if sys.argv[1:2] == ["--measure"]:
        emit(measure(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])))
        return
    if sys.argv[1:2] == ["--prepare"]:
        prepare(Path(sys.argv[2]), int(sys.argv[3]))
        return
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    result = compare(rows, repeats)
    bare, plan = result["bare"], result["plan"]
    print(f"prepared {rows:,} rows in {result['prepare_seconds']:.1f} s")
    print(f"rows                 {rows:,}  (1% changed; DuckDB memory_limit {MEMORY_LIMIT} on both sides; median (min–max) of {repeats})")
    print(f"bare statement       {bare['median']:8.2f} s ({bare['min']:.2f}–{bare['max']:.2f})   peak RSS {result['bare_rss_mb']:6.0f} MB")
    print(f"diff + plan          {plan['median']:8.2f} s ({plan['min']:.2f}–{plan['max']:.2f})   peak RSS {result['plan_rss_mb']:6.0f} MB")
    print(f"ratio                {result['ratio']:8.2f}x  (target <= 1.3x; RSS target <= 2048 MB)")
    print(f"changed found        {result['changed']:,} by the plan, {result['bare_changed']:,} by the bare statement")


if __name__ == "__main__":
    main()
