"""Connectif: a first sync of N products by bulk CSV import vs one PATCH per product, both through the
engine, under the same emulated limit: 100 requests/min (docs/platforms/connectif.md; the reference's
conservative default, REFERENCE 4.5). Not a test: it prints its figures and one JSON line.

    python benchmarks/bench_connectif_bulk.py [PRODUCTS] [PATCH_SAMPLE]   # default 100,000 and 100

Per-product PATCH at 100 requests/min would take N / 100 minutes (100k: about 17 hours), so that side is
a timed sample of PATCH_SAMPLE products, extrapolated linearly to N (the rate limit is the whole cost: one
request per product). The bulk side pushes all N products for real (imports of ``bulk_import_rows``,
polled every 2 s growing 1.5x, the client's default against a real account) and checks the emulator
holds every product. Each side gets a fresh sandbox process with the same limiter.
"""

from __future__ import annotations

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

from bench_first_sync import sandbox  # noqa: E402
from common import emit  # noqa: E402

REQUESTS_PER_MINUTE = 100
MAPPING = {
    "name": "name",
    "unitPrice": "price",
    "productDetailUrl": "product_url",
    "imageUrl": "image_url",
    "categories": "category_path",
    "brand": "brand",
    "availability": "stock_status",
    "inStockUnits": "stock_qty",
}


def prepare(database: Path, rows: int) -> None:
    from activation_pipeline.demo_data import generate_products

    with duckdb.connect(str(database)) as conn:
        conn.execute("CREATE SCHEMA segments")
        conn.register("products", generate_products(rows).select(["sku", *MAPPING.values()]))
        conn.execute("CREATE TABLE segments.bench AS SELECT * FROM products")


@contextmanager
def limited_sandbox(tmp: Path):
    """A sandbox process at 100 requests/min for Connectif (items unlimited: Connectif meters requests)."""
    with sandbox(tmp) as url:
        limits = {"enabled": True, "requests_per_second": REQUESTS_PER_MINUTE / 60, "items_per_second": 1e9}
        requests.post(f"{url}/_sandbox/ratelimit", json=limits, timeout=10).raise_for_status()
        yield url


def engine_sync(url: str, database: Path, state_dir: Path, bulk_min_records: int) -> dict[str, Any]:
    """One first sync through the engine (upsert, concurrency 4); seconds, requests, counts."""
    import os

    from activation_pipeline.platforms import PLATFORMS
    from activation_pipeline.platforms.base import SyncTarget
    from activation_pipeline.platforms.connectif import ConnectifResource
    from activation_pipeline.sync.diff import PlanRequest
    from activation_pipeline.sync.engine import SyncJob, run_sync
    from activation_pipeline.warehouse import DuckDBSession

    os.environ["CONNECTIF_BASE_URL"] = f"{url}/connectif"
    # the poll a real account gets (2 s, growing): the sandbox's 0.05 s would spend the budget on polls
    client = ConnectifResource(bulk_import_min_records=bulk_min_records, import_poll_seconds=2.0, max_retries=50).client()
    job = SyncJob(
        plan=PlanRequest(
            activation="bench",
            segment_table="segments.bench",
            primary_key="sku",
            identifier="sku",
            columns=dict(MAPPING),
            mode="full_then_delta",
            operation="upsert",
        ),
        target=SyncTarget(activation="bench", title="bench", object="products", model=PLATFORMS["connectif"].target),
        platform="connectif",
        max_items_per_request=1,
        concurrency=4,
        max_delete_fraction=0.2,
        auto_synced=False,
        segment_sql_hash="x",
        state_dir=state_dir,
        nulls="omit",
    )

    @contextmanager
    def connect():
        with duckdb.connect(str(database)) as conn:
            yield DuckDBSession(conn)

    started = time.perf_counter()
    report = run_sync(job, client, connect)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "requests": report.requests, "retries": report.retries, "succeeded": report.succeeded, "failed": report.failed}


def held(url: str) -> int:
    return len(requests.get(f"{url}/_sandbox/connectif/products", timeout=600).json()["products"])


def sent_requests(url: str) -> dict[str, int]:
    stats = requests.get(f"{url}/_sandbox/stats", timeout=60).json()["connectif"]
    imports = sum(n for path, n in stats["requests"].items() if path == "/imports")
    polls = sum(n for path, n in stats["requests"].items() if path.startswith("/imports/"))
    return {"imports": imports, "polls_and_reports": polls, "total": stats["total_requests"], "429": stats["statuses"].get("429", 0)}


def measure(products: int, patch_sample: int) -> dict[str, Any]:
    result: dict[str, Any] = {"products": products, "limit_requests_per_minute": REQUESTS_PER_MINUTE}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        for side, rows, threshold in (("bulk", products, 1000), ("patch_sample", patch_sample, 0)):
            database = tmp / f"{side}.duckdb"
            prepare(database, rows)
            (tmp / side).mkdir()
            with limited_sandbox(tmp / side) as url:
                figures = engine_sync(url, database, tmp / f"{side}-state", threshold)
                figures.update(held=held(url), sandbox_requests=sent_requests(url), rows=rows)
            result[side] = figures
    per_product = result["patch_sample"]["seconds"] / patch_sample
    result["patch_extrapolated_seconds"] = per_product * products
    result["ratio"] = result["patch_extrapolated_seconds"] / result["bulk"]["seconds"]
    return result


def main() -> None:
    products = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    patch_sample = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    result = measure(products, patch_sample)
    bulk, sample = result["bulk"], result["patch_sample"]
    print(f"Connectif, {products:,} products at {REQUESTS_PER_MINUTE} requests/min", file=sys.stderr)
    print(
        f"  bulk import : {bulk['seconds']:.1f} s, {bulk['sandbox_requests']['imports']} imports, "
        f"{bulk['sandbox_requests']['total']} requests ({bulk['sandbox_requests']['429']} answered 429), {bulk['held']:,} products held",
        file=sys.stderr,
    )
    print(
        f"  PATCH       : {sample['seconds']:.1f} s for a sample of {patch_sample} ({sample['held']} held) -> "
        f"{result['patch_extrapolated_seconds'] / 3600:.1f} h extrapolated to {products:,}",
        file=sys.stderr,
    )
    print(f"  ratio       : bulk is {result['ratio']:.0f}x faster (target >= 10x)", file=sys.stderr)
    emit(result)


if __name__ == "__main__":
    main()
