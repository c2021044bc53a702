"""First sync of N records to the Batch sandbox through the engine, against the wire floor: the
same records as pre-built request bodies (200 items each, built before the clock starts) posted
by the same number of keep-alive threads as the engine's concurrency (4), no diff, no state.
Then incremental runs after a 1% change and no-change reruns on the same state. Not a test: it
prints (``first_sync`` returns the figures, for ``run_all.py``).

    python benchmarks/bench_first_sync.py [ROWS] [REPEATS]   # default 1,000,000 rows, 3 runs

The sandbox runs in its own process with Batch's rate limit lifted through its admin endpoint
(the real limit of 1000 items/s would make any client take 1000 s for 1M items) and is emptied
before every measured first sync. The floor and the engine alternate, so a busy spell of the
machine hits both; each runs in a child process of its own, so each peak RSS is that step's own.
The engine's DuckDB sessions use the warehouse resource's settings.
"""

from __future__ import annotations

import json
import os
import shutil
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

from common import (  # noqa: E402
    catalog_items,
    cpu_seconds,
    emit,
    items_received,
    peak_rss_mb,
    reset_peak_rss,
    reset_sandbox,
    run_child,
    sandbox,
    spread,
    timed_threads,
)

SENT = {"name": "name", "price": "price", "brand": "brand", "category": "category_path", "stock_status": "stock_status"}
HEADERS = {"Authorization": "Bearer sandbox-batch-rest-key", "X-Batch-Project": "project_sandbox", "Content-Type": "application/json"}
CHANGED_SQL = "hash(sku) % 100 = 0"  # 1% of the rows
CONCURRENCY = 4  # the engine's requests in flight, and the floor's threads
ITEMS_PER_REQUEST = 200


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


def request_bodies(database: Path, catalog: str) -> list[bytes]:
    """Every items/edit body of a first sync, as the bytes that go on the wire."""
    columns = ", ".join(f"{c} AS {f}" for f, c in SENT.items())
    with duckdb.connect(str(database), read_only=True) as conn:
        reader = conn.sql(f"SELECT sku, {columns} FROM segments.bench").to_arrow_reader(ITEMS_PER_REQUEST)
        return [
            json.dumps({"name": catalog, "items": [{"id": row.pop("sku"), "action": "add", "attributes": row} for row in batch.to_pylist()]}).encode()
            for batch in reader
        ]


def wire_floor(url: str, database: Path, threads: int = CONCURRENCY) -> tuple[float, float]:
    """The floor: pre-built bodies posted by ``threads`` keep-alive sessions; only the posting is timed
    (seconds, and the CPU seconds the posting took)."""
    base = f"{url}/batch/2.11"
    requests.post(
        f"{base}/catalogs/create", headers=HEADERS, json={"name": "floor", "fields": [{"name": "name", "type": "string"}]}
    ).raise_for_status()
    bodies = request_bodies(database, "floor")

    def post(share: list[bytes]) -> None:  # a floor that failed is no floor: timed_threads raises it
        with requests.Session() as session:  # one keep-alive connection per thread
            session.headers.update(HEADERS)
            for body in share:
                session.post(f"{base}/catalogs/items/edit", data=body).raise_for_status()

    before = cpu_seconds()
    return timed_threads(post, [(bodies[i::threads],) for i in range(threads)]), cpu_seconds() - before


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
    url: str,
    database: Path,
    state_dir: Path,
    catalog: str = "engine",
    activation: str = "bench",
    paced: bool = False,
    split_phases: bool = True,
    connect: Any = None,
    run_state: Any = None,
) -> tuple[float, dict]:
    """One run of the engine (mirror, ``CONCURRENCY`` requests in flight, 200 items/request) against the snapshot in ``database``;
    unpaced unless ``paced`` (Batch's default budget, its documented limits: bench_pacing.py); ``split_phases`` resets the
    high-water mark after planning (so the kernel's own peak of the process is then the push's); ``connect``: the
    warehouse sessions (default: unlocked, with the warehouse resource's settings); ``run_state``: where the lock and
    journal live (default: files under ``state_dir``)."""
    from activation_pipeline.platforms import PLATFORMS
    from activation_pipeline.platforms.base import SyncTarget
    from activation_pipeline.platforms.batch import BatchResource
    from activation_pipeline.sync.diff import PlanRequest
    from activation_pipeline.sync.engine import SyncJob, run_sync
    from activation_pipeline.warehouse import DuckDBSession, WarehouseResource

    os.environ["BATCH_BASE_URL"] = f"{url}/batch/2.11"
    # the sandbox's limit is lifted for every side of a comparison, so is the client's own pacing
    inner = (BatchResource() if paced else BatchResource(requests_per_second=0, items_per_second=0)).client()
    client = PhasedClient(inner) if split_phases else inner
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
        max_items_per_request=ITEMS_PER_REQUEST,
        concurrency=CONCURRENCY,
        max_delete_fraction=0.2,
        auto_synced=False,
        segment_sql_hash="x",
        state_dir=state_dir,
        run_state=run_state,
    )
    settings = WarehouseResource.model_fields["connection_config"].default  # what an activation's sessions use

    @contextmanager
    def unlocked():
        with duckdb.connect(str(database), config=settings) as conn:
            yield DuckDBSession(conn)

    started = time.perf_counter()
    report = run_sync(job, client, connect or unlocked)  # type: ignore[arg-type]
    if not isinstance(client, PhasedClient):
        return time.perf_counter() - started, report.counts.as_dict()
    phases = {"planning_rss_mb": client.planning_rss_mb, "pushing_rss_mb": peak_rss_mb() if client.phases_split else None}
    return time.perf_counter() - started, {**report.counts.as_dict(), **{k: v for k, v in phases.items() if v is not None}}


def measure(side: str, url: str, database: Path, state_dir: Path) -> dict[str, Any]:
    """One step, to be run in a fresh process: seconds, peak RSS (MB) and the engine's counts
    (side ``floor``, ``engine``, or ``engine-whole``: the engine with its peak left whole)."""
    if side == "floor":
        seconds, cpu = wire_floor(url, database)  # the bodies are built before its clock starts: its CPU is the posting's
        return {"seconds": seconds, "rss_mb": peak_rss_mb(), "cpu_seconds": cpu, "counts": {}}
    before = cpu_seconds()
    seconds, counts = engine_sync(url, database, state_dir, split_phases=side != "engine-whole")
    return {"seconds": seconds, "rss_mb": peak_rss_mb(), "cpu_seconds": cpu_seconds() - before, "counts": counts}


def first_sync(rows: int, *, repeats: int = 3, floor: bool = True, incremental: bool = False) -> dict[str, Any]:
    """A fresh N-row segment; ``repeats`` first syncs of the engine, each into an emptied sandbox from a
    pristine copy of the database, alternating with the wire floor (optional); then, optionally,
    ``repeats`` incremental runs each after a fresh 1% change and ``repeats`` no-change reruns."""
    result: dict[str, Any] = {"rows": rows, "repeats": repeats}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        pristine, database, state_dir = tmp / "pristine.duckdb", tmp / "bench.duckdb", tmp / "state"
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--prepare", str(pristine), str(rows)], check=True)
        result["prepare_seconds"] = time.perf_counter() - started
        floors: list[dict[str, Any]] = []
        engines: list[dict[str, Any]] = []
        with sandbox(tmp) as url:
            for _ in range(repeats):
                if floor:
                    reset_sandbox(url)
                    floors.append(run_child(__file__, "--measure", "floor", url, pristine, state_dir))
                    floors[-1]["platform_items"] = catalog_items(url).get("floor", 0)
                reset_sandbox(url)
                shutil.copyfile(pristine, database)
                shutil.rmtree(state_dir, ignore_errors=True)
                engines.append(run_child(__file__, "--measure", "engine", url, database, state_dir))
                engines[-1]["platform_items"] = catalog_items(url).get("engine", 0)
            result["engine_runs"], result["engine"] = engines, spread([r["seconds"] for r in engines])
            result["engine_rss_mb"] = max(r["rss_mb"] for r in engines)
            result["engine_cpu"] = spread([r["cpu_seconds"] for r in engines])
            if floor:
                result["floor_runs"], result["floor"] = floors, spread([r["seconds"] for r in floors])
                result["floor_rss_mb"] = max(r["rss_mb"] for r in floors)
                result["floor_cpu"] = spread([r["cpu_seconds"] for r in floors])
                result["ratio"] = result["engine"]["median"] / result["floor"]["median"]
            if incremental:  # on the last first sync's state, database and sandbox
                runs: dict[str, list[dict[str, Any]]] = {"incremental": [], "no_change": []}
                for step in runs:
                    for _ in range(repeats):
                        changed = run_child(__file__, "--change", database)["changed"] if step == "incremental" else 0
                        before = items_received(url)
                        run = run_child(__file__, "--measure", "engine", url, database, state_dir)
                        runs[step].append({**run, "changed_rows": changed, "platform_items_received": items_received(url) - before})
                for step, step_runs in runs.items():
                    result[f"{step}_runs"], result[step] = step_runs, spread([r["seconds"] for r in step_runs])
                result["incremental_share"] = result["incremental"]["median"] / result["engine"]["median"]
            result["sandbox_catalogs"] = catalog_items(url)
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
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    result = first_sync(rows, repeats=repeats, incremental=True)
    floor, ours = result["floor"], result["engine"]
    print(f"records              {rows:,}, {repeats} runs each, median (min–max)")
    print(f"wire floor           {floor['median']:8.1f} s ({floor['min']:.1f}–{floor['max']:.1f})   {rows / floor['median']:10,.0f} records/s")
    print(
        f"engine first sync    {ours['median']:8.1f} s ({ours['min']:.1f}–{ours['max']:.1f})   {rows / ours['median']:10,.0f} records/s"
        f"   peak RSS {result['engine_rss_mb']:6.0f} MB   ratio {result['ratio']:.2f}x (target <= 1.5x)"
    )
    cpu = f"engine {result['engine_cpu']['median']:.1f}, wire floor {result['floor_cpu']['median']:.1f}"
    print(f"CPU seconds          {cpu} (the sandbox shares the cores)")
    inc, still = result["incremental"], result["no_change"]
    print(
        f"incremental (1%)     {inc['median']:8.2f} s ({inc['min']:.2f}–{inc['max']:.2f})"
        f"   {result['incremental_share']:.1%} of the first sync (target <= 5%)"
    )
    print(f"no change            {still['median']:8.2f} s ({still['min']:.2f}–{still['max']:.2f})   engine time (target <= 2 s)")
    print(f"sandbox catalogs     {result['sandbox_catalogs']}")


if __name__ == "__main__":
    main()
