"""Every benchmark, one command, one table. Not a test.

    python benchmarks/run_all.py                 # diff at 1M and 10M, first sync and incremental at 1M,
                                                 # peak RSS of first syncs at --sizes (default 1M, 3M): ~10 min
    python benchmarks/run_all.py --quick         # the same at 100k / 300k rows: a smoke check (~1 min)
    python benchmarks/run_all.py --sizes 1000000,10000000   # pushing 10M takes ~5 min more

Measured, each in its own child process (its own peak RSS, from /proc's VmHWM):
1. diff + plan vs a bare DuckDB full outer join of the same tables (bench_diff.py);
2. the engine's first sync vs a bare `requests` loop posting the same payloads to the same
   sandbox (bench_first_sync.py);
3. an incremental run after 1% of the segment's rows changed, vs that first sync: the same
   database, snapshot, state folder and sandbox (target <= 10% of the first sync's time);
4. the engine's peak RSS for first syncs of growing segments: it streams the plan, so the
   peak should stay flat as the segment grows.
Each comparison runs both sides on the same machine in the same command: the machines are
shared and noisy, the ratios are what carries over.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_diff  # noqa: E402
import bench_first_sync  # noqa: E402


def machine() -> str:
    import duckdb

    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f"{pages / 2**30:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        memory = "RAM unknown"
    return (
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs ({platform.machine()}), {memory}, "
        f"Python {platform.python_version()}, DuckDB {duckdb.__version__}, {platform.system()} {platform.release()}"
    )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rate(rows: int, seconds: float) -> str:
    return f"{seconds:.1f} s ({rows / seconds:,.0f} rec/s)"


def run(diff_sizes: list[int], sync_rows: int, sizes: list[int]) -> list[tuple[str, ...]]:
    table: list[tuple[str, ...]] = []

    for rows in diff_sizes:
        log(f"diff + plan vs bare join at {rows:,} rows")
        d = bench_diff.compare(rows)
        table.append(
            (
                "diff + plan vs bare full outer join",
                f"{rows:,}",
                f"{d['plan_seconds']:.2f} s",
                f"{d['bare_seconds']:.2f} s",
                f"{d['ratio']:.2f}x",
                f"{d['plan_rss_mb']:,.0f} MB",
                f"{d['bare_rss_mb']:,.0f} MB",
                "<= 1.5x, <= 2 GB",
                f"{d['changed']:,} changed found (DuckDB memory_limit {d['memory_limit']})",
            )
        )

    log(f"first sync vs bare requests loop, then an incremental run after 1% changed, at {sync_rows:,} rows")
    s = bench_first_sync.first_sync(sync_rows, incremental=True)
    first, bare, inc = s["engine"], s["bare"], s["incremental"]
    confirmed = first["counts"].get("succeeded_added", 0)
    table.append(
        (
            "first sync vs bare requests loop",
            f"{sync_rows:,}",
            rate(sync_rows, first["seconds"]),
            rate(sync_rows, bare["seconds"]),
            f"{first['seconds'] / bare['seconds']:.2f}x",
            f"{first['rss_mb']:,.0f} MB",
            f"{bare['rss_mb']:,.0f} MB",
            "<= 60 s per 1M, <= 2x",
            f"{confirmed:,} of {sync_rows:,} confirmed",
        )
    )
    changed_ok = inc["counts"].get("succeeded_changed", 0)
    table.append(
        (
            "incremental run (1% changed) vs first sync",
            f"{sync_rows:,}",
            f"{inc['seconds']:.2f} s",
            f"{first['seconds']:.1f} s",
            f"{inc['seconds'] / first['seconds']:.1%}",
            f"{inc['rss_mb']:,.0f} MB",
            "",
            "<= 10%",
            f"{s['changed_rows']:,} rows changed; {inc['counts'].get('planned_changed', 0):,} planned, "
            f"{changed_ok:,} confirmed, {inc['counts'].get('unchanged_skipped', 0):,} unchanged skipped",
        )
    )

    def phases(counts: dict[str, Any]) -> str:
        if "pushing_rss_mb" not in counts:
            return ""
        return f"; planning peak {counts['planning_rss_mb']:,.0f} MB, pushing peak {counts['pushing_rss_mb']:,.0f} MB"

    peaks: dict[int, tuple[float, float, int, str]] = {sync_rows: (first["seconds"], first["rss_mb"], confirmed, phases(first["counts"]))}
    for rows in sizes:
        if rows in peaks:
            continue
        log(f"engine first sync at {rows:,} rows (peak RSS)")
        r = bench_first_sync.first_sync(rows, bare=False)
        peaks[rows] = (r["engine"]["seconds"], r["engine"]["rss_mb"], r["engine"]["counts"].get("succeeded_added", 0), phases(r["engine"]["counts"]))
    smallest = peaks[min(sizes)][1] if sizes else 0.0
    for i, rows in enumerate(sorted(set(sizes))):
        seconds, rss, done, split = peaks[rows]
        table.append(
            (
                "first sync peak RSS as the segment grows" if i == 0 else "",
                f"{rows:,}",
                rate(rows, seconds),
                "",
                f"RSS {rss / smallest:.2f}x of {min(sizes):,}",
                f"{rss:,.0f} MB",
                "",
                "flat",
                f"{done:,} of {rows:,} confirmed{split}",
            )
        )
    return table


def print_table(table: list[tuple[str, ...]], header: str) -> None:
    columns = ("measurement", "rows", "engine", "baseline", "ratio", "engine peak RSS", "baseline peak RSS", "target", "check")
    print(f"\n{header}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in table:
        print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (100k, 300k): a smoke check")
    parser.add_argument("--diff-sizes", default=None, help="comma-separated rows for the diff (default 1000000,10000000)")
    parser.add_argument("--sync-rows", type=int, default=None, help="rows of the first-sync and incremental comparison (default 1000000)")
    parser.add_argument(
        "--sizes", default=None, help="comma-separated segment sizes of the peak-RSS first syncs (default 1000000,3000000; 10M allowed)"
    )
    args = parser.parse_args()
    quick = args.quick
    diff_sizes = [int(n) for n in (args.diff_sizes or ("100000,300000" if quick else "1000000,10000000")).split(",")]
    sync_rows = args.sync_rows or (100_000 if quick else 1_000_000)
    sizes = [int(n) for n in (args.sizes or ("100000,300000" if quick else "1000000,3000000")).split(",")]
    started = time.perf_counter()
    header = machine()
    table = run(diff_sizes, sync_rows, sizes)
    print_table(table, f"{header}; total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
