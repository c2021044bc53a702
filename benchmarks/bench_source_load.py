"""Loading a CSV source with safe types (every cell read as text, each column narrowed only if
the whole file agrees, leading zeros kept) against Polars reading the same file with its own
whole-file inference (``infer_schema_length=None``, dates parsed): the same work a loader must
do to type a column from every row, minus our rules. Each side in its own process, repeated.
Not a test: it prints its figures.

The loader before issue #10 (Polars guessing from the first 10,000 rows) is printed for
reference: it is faster because it does less, and gets leading zeros and late outliers wrong.

    python benchmarks/bench_source_load.py [ROWS] [REPEATS]     # default 2,000,000 rows, 3 repeats
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, peak_rss_mb, run_child  # noqa: E402


def prepare(path: Path, rows: int) -> None:
    from activation_pipeline.demo_data import generate_products

    frame = generate_products(rows)
    frame.select(
        [c for c in frame.columns if frame[c].dtype.is_numeric() or frame[c].dtype.is_temporal() or c in ("sku", "name", "brand", "stock_status")]
    ).write_csv(path)


def measure(side: str, path: Path) -> dict[str, Any]:
    import polars as pl

    from activation_pipeline.assets.source_files import read_source
    from activation_pipeline.config import SourceConfig

    started = time.perf_counter()
    if side == "polars":
        frame = pl.read_csv(path, infer_schema_length=None, try_parse_dates=True)
    elif side == "polars_10k":  # the loader before issue #10: types guessed from the first 10,000 rows (unsafe)
        frame = pl.read_csv(path, infer_schema_length=10_000, try_parse_dates=True)
    else:
        frame = read_source("bench", path, SourceConfig(path=str(path)))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_mb": peak_rss_mb(), "rows": frame.height, "types": {c: str(t) for c, t in frame.schema.items()}}


def compare(rows: int, repeats: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "products.csv"
        run_child(__file__, "--prepare", path, rows)
        runs: dict[str, list[dict[str, Any]]] = {"polars": [], "polars_10k": [], "engine": []}
        for _ in range(repeats):  # interleaved, so a busy spell of the machine hits both sides
            for side in runs:
                runs[side].append(run_child(__file__, "--measure", side, path))
        size_mb = path.stat().st_size / 1e6
    median = {side: statistics.median(r["seconds"] for r in results) for side, results in runs.items()}
    return {
        "rows": rows,
        "file_mb": size_mb,
        "polars_seconds": median["polars"],
        "engine_seconds": median["engine"],
        "polars_10k_seconds": median["polars_10k"],
        "ratio": median["engine"] / median["polars"],
        "polars_rss_mb": max(r["rss_mb"] for r in runs["polars"]),
        "engine_rss_mb": max(r["rss_mb"] for r in runs["engine"]),
        "polars_types": runs["polars"][0]["types"],
        "engine_types": runs["engine"][0]["types"],
    }


def main() -> None:
    if sys.argv[1:2] == ["--prepare"]:
        prepare(Path(sys.argv[2]), int(sys.argv[3]))
        emit({})
        return
    if sys.argv[1:2] == ["--measure"]:
        emit(measure(sys.argv[2], Path(sys.argv[3])))
        return
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    result = compare(rows, repeats)
    print(f"rows {rows:,}, file {result['file_mb']:.0f} MB, median of {repeats} interleaved runs")
    print(f"polars whole-file inference {result['polars_seconds']:7.2f} s   peak RSS {result['polars_rss_mb']:6.0f} MB")
    print(f"polars first 10k rows (old) {result['polars_10k_seconds']:7.2f} s   (types guessed, not safe: the loader before #10)")
    print(f"engine safe types           {result['engine_seconds']:7.2f} s   peak RSS {result['engine_rss_mb']:6.0f} MB")
    print(f"ratio                       {result['ratio']:7.2f}x")
    differ = {c: (result["polars_types"].get(c), t) for c, t in result["engine_types"].items() if result["polars_types"].get(c) != t}
    print(f"columns typed differently (polars, engine): {differ or 'none'}")


if __name__ == "__main__":
    main()
