"""First sync of N records to the Batch sandbox through the engine, against a bare
`requests` loop posting the same payloads to the same server. Not a test: it prints
(``first_sync`` returns the figures, for ``run_all.py``).

    python benchmarks/bench_first_sync.py [ROWS]   # default 1,000,000

The sandbox runs in its own process with rate limiting off (the real limit of 1000
items/s would make any client take 1000 s for 1M items). The segment is built, the bare
loop run and each engine sync run in a child process of their own, so each peak RSS is
that step's own. The engine's DuckDB sessions use the warehouse resource's settings.
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
from typing import Any

import duckdb
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, peak_rss_mb, reset_peak_rss, run_child  # noqa: E402

SENT = {"name": "name", "price": "price", "brand": "brand", "category": "category_path", "stock_status": "stock_status"}
HEADERS = {"Authorization": "Bearer sandbox-batch-rest-key", "X-Batch-Project": "project_sandbox"}
CHANGED_SQL = "hash(sku) % 100 = 0"  # 1% of the rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def sandbox(tmp: Path):
    port = free_port()
    env = {**os.environ, "SANDBOX_RATE_LIMIT": "off"}
    process = subprocess.Popen(
        [sys.executable, "-m", "activation_pipeline.sandbox", "--port", str(port), "--state", str(tmp / "sb.sqlite")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
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


def prepare(database: Path, rows: int) -> None:
    from activation_pipeline.demo_data import generate_products

    with duckdb.connect(str(database)) as conn:
        conn.execute("CREATE SCHEMA segments")
        conn.register("products", generate_products(rows).select(["sku", *SENT.values()]))
        conn.execute("CREATE TABLE segments.bench AS SELECT * FROM products")


def change_rows(database: Path) -> int:
    """Change 1% of the segment's rows (a sent column), as a later run would find them."""
    with duckdb.connect(str(database)) as conn:
        return conn.execute(f"UPDATE segments.bench SET price = price + 1 WHERE {CHANGED_SQL}").fetchone()[0]


def bare_loop(url: str, database: Path) -> float:
    """The floor: one session, sequential posts of 200-item bodies, no diff, no state."""
    session = requests.Session()
    session.headers.update(HEADERS)
    base = f"{url}/batch/2.11"
    session.post(f"{base}/catalogs/create", json={"name": "bare", "fields": [{"name": "name", "type": "string"}]}).raise_for_status()
    with duckdb.connect(str(database), read_only=True) as conn:
        reader = conn.sql(f"SELECT sku, {', '.join(f'{c} AS {f}' for f, c in SENT.items())} FROM segments.bench").to_arrow_reader(200)
        started = time.perf_counter()
        for batch in reader:
            items = [{"id": row.pop("sku"), "action": "add", "attributes": row} for row in batch.to_pylist()]
            session.post(f"{base}/catalogs/items/edit", json={"name": "bare", "items": items}).raise_for_status()
    return time.perf_counter() - started


class PhasedClient:
    """The Batch client, noting the peak RSS of planning when the engine asks it to prepare (the plan
    is written by then) and starting a new high-water mark for the push that follows."""

    def __init__(self, inner: Any):
        self.inner, self.planning_rss_mb, self.phases_split = inner, None, False

    def prepare(self, target: Any) -> None:
        self.planning_rss_mb = peak_rss_mb()
        self.phases_split = reset_peak_rss()
        self.inner.prepare(target)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def engine_sync(
    url: str, database: Path, state_dir: Path, catalog: str = "engine", activation: str = "bench", paced: bool = False, connect: Any = None
) -> tuple[float, dict]:
    """One run of the engine (mirror, concurrency 4, 200 items/request) against the snapshot in ``database``;
    unpaced unless ``paced`` (Batch's default budget, its documented limits: bench_pacing.py). ``connect``:
    the warehouse sessions (default: unlocked, with the warehouse resource's settings)."""
    from activation_pipeline.platforms import PLATFORMS
    from activation_pipeline.platforms.base import SyncTarget
    from activation_pipeline.platforms.batch import BatchResource
    from activation_pipeline.sync.diff import PlanRequest
    from activation_pipeline.sync.engine import SyncJob, run_sync
    from activation_pipeline.warehouse import WarehouseResource

    os.environ["BATCH_BASE_URL"] = f"{url}/batch/2.11"
    client = PhasedClient((BatchResource() if paced else BatchResource(requests_per_second=0, items_per_second=0)).client())
    job = SyncJob(
        plan=PlanRequest(
            activation=activation,
            segment_table="segments.bench",
            primary_key="sku",
            identifier="sku",
            columns=SENT,
            mode="full_then_delta",
            operation="mirror",
        ),
        target=SyncTarget(activation=activation, title=activation, object=catalog, model=PLATFORMS["batch"].target),
        platform="batch",
        max_items_per_request=200,
        concurrency=4,
        max_delete_fraction=0.2,
        auto_synced=False,
        segment_sql_hash="x",
        state_dir=state_dir,
    )
    settings = WarehouseResource.model_fields["connection_config"].default  # what an activation's sessions use

    @contextmanager
    def unlocked():
        with duckdb.connect(str(database), config=settings) as conn:
            yield conn

    started = time.perf_counter()
    report = run_sync(job, client, connect or unlocked)  # type: ignore[arg-type]
    phases = {"planning_rss_mb": client.planning_rss_mb, "pushing_rss_mb": peak_rss_mb() if client.phases_split else None}
    return time.perf_counter() - started, {**report.counts.as_dict(), **{k: v for k, v in phases.items() if v is not None}}


def measure(side: str, url: str, database: Path, state_dir: Path) -> dict[str, Any]:
    """One step, to be run in a fresh process: seconds, peak RSS (MB) and the engine's counts."""
    if side == "bare":
        return {"seconds": bare_loop(url, database), "rss_mb": peak_rss_mb(), "counts": {}}
    seconds, counts = engine_sync(url, database, state_dir)
    return {"seconds": seconds, "rss_mb": peak_rss_mb(), "counts": counts}


def first_sync(rows: int, *, bare: bool = True, incremental: bool = False) -> dict[str, Any]:
    """A fresh N-row segment and sandbox; the bare loop (optional), the engine's first sync and,
    optionally, an incremental run after 1% of the rows changed (same state, same sandbox)."""
    result: dict[str, Any] = {"rows": rows}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        database, state_dir = tmp / "bench.duckdb", tmp / "state"
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--prepare", str(database), str(rows)], check=True)
        result["prepare_seconds"] = time.perf_counter() - started
        with sandbox(tmp) as url:
            if bare:
                result["bare"] = run_child(__file__, "--measure", "bare", url, database, state_dir)
            result["engine"] = run_child(__file__, "--measure", "engine", url, database, state_dir)
            if incremental:
                result["changed_rows"] = run_child(__file__, "--change", database)["changed"]
                result["incremental"] = run_child(__file__, "--measure", "engine", url, database, state_dir)
            result["sandbox_catalogs"] = [
                (c["name"], c["items"]) for c in requests.get(f"{url}/_sandbox/batch/catalogs", timeout=60).json()["catalogs"]
            ]
    return result


def main() -> None:
    if sys.argv[1:2] == ["--prepare"]:
        prepare(Path(sys.argv[2]), int(sys.argv[3]))
        return
    if sys.argv[1:2] == ["--change"]:
        emit({"changed": change_rows(Path(sys.argv[2]))})
        return
    if sys.argv[1:2] == ["--measure"]:
        emit(measure(sys.argv[2], sys.argv[3], Path(sys.argv[4]), Path(sys.argv[5])))
        return
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    result = first_sync(rows)
    bare, ours = result["bare"]["seconds"], result["engine"]["seconds"]
    print(f"records              {rows:,}")
    print(f"bare requests loop   {bare:8.1f} s   {rows / bare:10,.0f} records/s   peak RSS {result['bare']['rss_mb']:6.0f} MB")
    print(
        f"engine first sync    {ours:8.1f} s   {rows / ours:10,.0f} records/s   peak RSS {result['engine']['rss_mb']:6.0f} MB"
        f"   ratio {ours / bare:.2f}x (targets <= 60 s, <= 2x)"
    )
    print(f"confirmed            {result['engine']['counts'].get('succeeded_added', 0):,}; sandbox catalogs {result['sandbox_catalogs']}")


if __name__ == "__main__":
    main()
