"""First sync of N records to the Batch sandbox through the engine, against a bare
`requests` loop posting the same payloads to the same server. Not a test: it prints.

    python benchmarks/bench_first_sync.py [ROWS]   # default 1,000,000

The sandbox runs in its own process with rate limiting off (the real limit of 1000
items/s would make any client take 1000 s for 1M items).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import duckdb
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from activation_pipeline.demo_data import generate_products  # noqa: E402
from activation_pipeline.platforms.base import SyncTarget  # noqa: E402
from activation_pipeline.platforms.batch import BatchResource  # noqa: E402
from activation_pipeline.sync.diff import PlanRequest  # noqa: E402
from activation_pipeline.sync.engine import SyncJob, run_sync  # noqa: E402

SENT = {"name": "name", "price": "price", "brand": "brand", "category": "category_path", "stock_status": "stock_status"}
HEADERS = {"Authorization": "Bearer sandbox-batch-rest-key", "X-Batch-Project": "project_sandbox"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def sandbox(tmp: Path):
    port = free_port()
    env = {**os.environ, "SANDBOX_RATE_LIMIT": "off"}
    process = subprocess.Popen([sys.executable, "-m", "activation_pipeline.sandbox", "--port", str(port), "--state", str(tmp / "sb.sqlite")],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if requests.get(f"{url}/_sandbox/health", timeout=1).ok:
                break
        except requests.RequestException:
            time.sleep(0.1)
    try:
        yield url
    finally:
        process.terminate()
        process.wait()


def bare_loop(url: str, database: Path) -> float:
    """The floor: one session, sequential posts of 200-item bodies, no diff, no state."""
    session = requests.Session()
    session.headers.update(HEADERS)
    base = f"{url}/batch/2.11"
    session.post(f"{base}/catalogs/create", json={"name": "bare", "fields": [{"name": "name", "type": "string"}]}).raise_for_status()
    with duckdb.connect(str(database), read_only=True) as conn:
        reader = conn.sql(f"SELECT sku, {', '.join(f'{c} AS {f}' for f, c in SENT.items())} FROM segments.bench").fetch_record_batch(200)
        started = time.perf_counter()
        for batch in reader:
            items = [{"id": row.pop("sku"), "action": "add", "attributes": row} for row in batch.to_pylist()]
            session.post(f"{base}/catalogs/items/edit", json={"name": "bare", "items": items}).raise_for_status()
    return time.perf_counter() - started


def engine_sync(url: str, database: Path, tmp: Path) -> tuple[float, dict]:
    os.environ["BATCH_BASE_URL"] = f"{url}/batch/2.11"
    client = BatchResource().client()
    job = SyncJob(
        plan=PlanRequest(activation="bench", segment_table="segments.bench", primary_key="sku", identifier="sku",
                         columns=SENT, mode="full_then_delta", operation="mirror"),
        target=SyncTarget(activation="bench", title="bench", object="engine"),
        platform="batch", max_items_per_request=200, concurrency=4, max_delete_fraction=0.2,
        auto_synced=False, segment_sql_hash="x", state_dir=tmp / "state",
    )

    @contextmanager
    def connect():
        with duckdb.connect(str(database)) as conn:
            yield conn

    started = time.perf_counter()
    report = run_sync(job, client, connect)
    return time.perf_counter() - started, report.counts


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        database = tmp / "bench.duckdb"
        with duckdb.connect(str(database)) as conn:
            conn.execute("CREATE SCHEMA segments")
            conn.register("products", generate_products(rows).select(["sku", *SENT.values()]))
            conn.execute("CREATE TABLE segments.bench AS SELECT * FROM products")
        with sandbox(tmp) as url:
            bare = bare_loop(url, database)
            ours, counts = engine_sync(url, database, tmp)
            stored = requests.get(f"{url}/_sandbox/batch/catalogs", timeout=30).json()["catalogs"]
    print(f"records              {rows:,}")
    print(f"bare requests loop   {bare:8.1f} s   {rows / bare:10,.0f} records/s")
    print(f"engine first sync    {ours:8.1f} s   {rows / ours:10,.0f} records/s   ratio {ours / bare:.2f}x (targets <= 60 s, <= 2x)")
    print(f"confirmed            {counts.get('succeeded_added', 0):,}; sandbox catalogs {[(c['name'], c['items']) for c in stored]}")


if __name__ == "__main__":
    main()
