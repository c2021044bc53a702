"""Diff + plan of a generated N-row segment with 1% changed on a PostgreSQL warehouse, against a bare
PostgreSQL statement doing the same work (the same full outer join of segment and snapshot by key, a
hash of the same sent columns compared with the snapshot's, each key classified and given its
operation, the same payload columns and JSON), materialized on the server (CREATE TEMP TABLE … AS).
The plan streams its statement's result from a server-side cursor into a Parquet file on the client:
the ratio is the price of that, of duplicate-key detection and of the counts read back.

It also times loading the segment: ``Session.insert`` (psycopg ``COPY … FROM STDIN``, text rows)
against ADBC's ``adbc_ingest`` (Arrow, binary COPY), the two bulk paths psycopg 3 and ADBC offer.
Not a test: it prints its figures. Starts a throw-away cluster (PostgreSQL binaries needed).

    python benchmarks/bench_diff_postgres.py [ROWS] [REPEATS]     # default 1,000,000 rows, 3 runs
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import free_port, spread  # noqa: E402

from activation_pipeline.sync.diff import PlanRequest, plan_operations  # noqa: E402
from activation_pipeline.warehouse import backend_for  # noqa: E402
from activation_pipeline_tests.postgres_server import SERVICE_USER, _as_service_user, postgres_bin_dir  # noqa: E402

SENT = {"name": "name", "price": "price", "brand": "brand", "category": "category_path", "stock_status": "stock_status"}
_HASHED = ", ".join(["s.sku", *(f"s.{c}" for c in SENT.values())])
_PAYLOAD = ", ".join(f"{c} AS f__{f}" for f, c in SENT.items())
_PAYLOAD_JSON = f"json_build_object({', '.join(f'{chr(39)}{f}{chr(39)}, {c}' for f, c in SENT.items())})::text"
BARE_STATEMENT = f"""
CREATE TEMP TABLE bare AS
  WITH joined AS (
    SELECT s.*, a.key AS snap_key, a.identifier AS snap_identifier, a.row_hash AS snap_hash,
           hashtextextended(ROW({_HASHED})::text, 0) AS new_hash, s.sku IS NOT NULL AS in_segment
    FROM segments.bench s FULL OUTER JOIN activation_state.bench a ON s.sku = a.key
  ), classified AS (
    SELECT *, CASE WHEN NOT in_segment THEN 'removed' WHEN snap_key IS NULL THEN 'added'
                   WHEN snap_hash IS DISTINCT FROM new_hash THEN 'changed' ELSE 'unchanged' END AS change
    FROM joined
  )
  SELECT coalesce(sku, snap_key) AS key, coalesce(sku, snap_identifier) AS identifier, new_hash, change,
         CASE WHEN change IN ('added', 'changed') THEN 'upsert' WHEN change = 'removed' THEN 'delete' END AS op,
         {_PAYLOAD}, CASE WHEN change IN ('added', 'changed') THEN {_PAYLOAD_JSON} END AS payload
  FROM classified
"""


def start_cluster(root: Path, port: int, fsync: bool = False) -> tuple[str, Path]:
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        sys.exit("PostgreSQL binaries not found (apt-get install -y postgresql)")
    password = secrets.token_urlsafe(12)
    (root / "pwfile").write_text(password + "\n")
    if os.geteuid() == 0:  # initdb refuses root: the cluster runs as the postgres user
        shutil.chown(root, SERVICE_USER)
        shutil.chown(root / "pwfile", SERVICE_USER)
    data = root / "data"
    subprocess.run(
        _as_service_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "bench", "-A", "scram-sha-256", f"--pwfile={root / 'pwfile'}"]),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync={'on' if fsync else 'off'} -c work_mem=256MB"
    subprocess.run(
        _as_service_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", options, "-w", "start"]),
        check=True,
        capture_output=True,
    )
    return f"postgresql://bench:{password}@127.0.0.1:{port}/postgres", bin_dir


def prepare(url: str, rows: int) -> dict[str, float]:
    import adbc_driver_postgresql.dbapi as adbc

    from activation_pipeline.demo_data import generate_products

    products = generate_products(rows).select(["sku", *SENT.values()])
    columns = ", ".join(f"{c} {'double precision' if c == 'price' else 'text'}" for c in ["sku", *SENT.values()])
    with backend_for(url).session() as session:
        session.execute(
            f"CREATE SCHEMA segments; CREATE SCHEMA activation_state; CREATE TABLE segments.bench ({columns}); CREATE TABLE segments.adbc ({columns})"
        )
        started = time.perf_counter()
        session.insert("segments.bench", products)
        copy_seconds = time.perf_counter() - started
    with adbc.connect(url) as conn, conn.cursor() as cursor:
        started = time.perf_counter()
        cursor.adbc_ingest("adbc", products.to_arrow(), mode="append", db_schema_name="segments")
        conn.commit()
        adbc_seconds = time.perf_counter() - started
    hashed = ", ".join(["sku", *SENT.values()])
    with backend_for(url).session() as session:
        session.execute(
            f"CREATE TABLE activation_state.bench AS SELECT sku AS key, hashtextextended(ROW({hashed})::text, 0) AS row_hash, 'r0'::text AS run_id, "
            "now() AS confirmed_at, NULL::text AS partition_key, sku AS identifier FROM segments.bench"
        )
        session.execute("UPDATE segments.bench SET price = price + 1 WHERE abs(hashtext(sku)) % 100 = 0")  # 1% changed
        session.execute("ANALYZE")
    return {"copy_seconds": copy_seconds, "adbc_seconds": adbc_seconds}


def measure(url: str, side: str, workdir: Path) -> tuple[float, int]:
    request = PlanRequest(
        activation="bench",
        segment_table="segments.bench",
        primary_key="sku",
        identifier="sku",
        columns=SENT,
        mode="full_then_delta",
        operation="mirror",
    )
    with backend_for(url).session() as session:
        started = time.perf_counter()
        if side == "bare":
            session.execute(BARE_STATEMENT)
            seconds = time.perf_counter() - started
            changed = session.fetch_all("SELECT count(*) FROM bare WHERE change = 'changed'")[0][0]
            session.execute("DROP TABLE bare")
            return seconds, changed
        plan = plan_operations(session, request, workdir / "plan.parquet")
        return time.perf_counter() - started, plan.counts.get("changed", 0)


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3

    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    url, bin_dir = start_cluster(root, free_port())
    try:
        loads = prepare(url, rows)
        runs: dict[str, list[tuple[float, int]]] = {"bare": [], "plan": []}
        for _ in range(repeats):
            for side in runs:
                runs[side].append(measure(url, side, root))
    finally:
        subprocess.run(_as_service_user([str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    bare, plan = spread([s for s, _ in runs["bare"]]), spread([s for s, _ in runs["plan"]])
    print(f"rows                 {rows:,}  (1% changed; PostgreSQL, median (min–max) of {repeats})")
    print(f"load: COPY (psycopg) {loads['copy_seconds']:8.2f} s   ADBC adbc_ingest {loads['adbc_seconds']:.2f} s")
    print(f"bare statement       {bare['median']:8.2f} s ({bare['min']:.2f}–{bare['max']:.2f})")
    print(f"diff + plan          {plan['median']:8.2f} s ({plan['min']:.2f}–{plan['max']:.2f})")
    print(f"ratio                {plan['median'] / bare['median']:8.2f}x")
    print(f"changed found        {runs['plan'][0][1]:,} by the plan, {runs['bare'][0][1]:,} by the bare statement")


if __name__ == "__main__":
    main()
