"""Every benchmark, one command, one table, one JSON file. Not a test.

    python benchmarks/run_all.py                    # 1M rows (diff also at 10M), 3 runs each: ~15 min
    python benchmarks/run_all.py --rows 100000      # a quick run (--quick is the same)
    python benchmarks/run_all.py --sizes 1000000,10000000   # the first sync's peak RSS up to 10M: ~8 min more

Measured, each run in its own child process (its own peak RSS), each comparison 3 times
(``--repeats``), alternating the sides, reported as median and min–max:
1. diff + plan vs a bare DuckDB statement doing the same join, hashing and classification into
   the same Parquet output (bench_diff.py), at ``--rows`` and ``--diff-sizes``;
2. the engine's first sync vs the wire floor, pre-built bodies posted by as many keep-alive
   threads as the engine's concurrency; then incremental runs after a 1% change and no-change
   reruns on the same state (bench_first_sync.py);
3. the engine vs an open-source peer, drt, on the same rows and sandbox endpoint: first sync,
   1% change, no change, wall time and peak RSS of each whole process (bench_vs_drt.py);
4. pacing against Batch's documented limit (bench_pacing.py, when the tree has it);
5. the engine's peak RSS for first syncs of growing segments (``--sizes``): it should stay flat.
Both sides of each comparison run on the same machine in the same command: the machines are
shared and noisy, the ratios are what carries over. The figures go to
``benchmarks/results/latest.json`` (``--output``) and are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_diff  # noqa: E402
import bench_first_sync  # noqa: E402
import bench_vs_drt  # noqa: E402

#: top-level key -> (target as written in issue #13, whether a figure meets it)
TARGETS: dict[str, tuple[str, Any]] = {
    "first_sync_ratio": ("<= 1.5x the wire floor", lambda v: v <= 1.5),
    "diff_ratio": ("<= 1.3x the bare statement", lambda v: v <= 1.3),
    "incremental_share": ("<= 5% of the first sync", lambda v: v <= 0.05),
    "pacing_limit_share": (">= 95% of the item limit", lambda v: v >= 0.95),
    "pacing_429_share": ("< 1% of requests answered 429", lambda v: v < 0.01),
    "peer_first_sync_ratio": ("< 1 (faster than the peer)", lambda v: v < 1),
    "peer_rss_ratio": ("<= 1.5x the peer's peak RSS", lambda v: v <= 1.5),
    "no_change_seconds": ("<= 2 s of engine time", lambda v: v <= 2),
}


def machine() -> str:
    import duckdb

    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory = f"{pages / 2**30:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        memory = "RAM unknown"
    return (
        f"{os.cpu_count()} CPUs ({platform.machine()}), {memory}, Python {platform.python_version()}, "
        f"DuckDB {duckdb.__version__}, {platform.system()} {platform.release()}"
    )


def load() -> str:
    """The machine's load averages (1, 5, 15 min): how busy it was around the figures."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def pacing(rows: int, repeats: int) -> tuple[dict[str, Any] | None, str | None]:
    """bench_pacing.py's figures (its ``pacing(rows, runs)``, at most 20,000 items: 20 s a run at the limit), or why there are none."""
    try:
        import bench_pacing  # type: ignore[import-not-found,unused-ignore]
    except ModuleNotFoundError as exc:
        if exc.name != "bench_pacing":  # a broken import inside it is a failure to show, not an absent script
            return None, f"bench_pacing could not be imported: {exc}"
        return None, "benchmarks/bench_pacing.py is not in this tree"
    except ImportError as exc:
        return None, f"bench_pacing could not be imported: {exc}"
    measure = getattr(bench_pacing, "pacing", None)
    if measure is None:
        return None, "benchmarks/bench_pacing.py has no pacing()"
    try:
        return measure(min(rows, 20_000), repeats), None
    except Exception as exc:  # a failed pacing run leaves the other figures standing
        return None, f"bench_pacing.pacing failed: {type(exc).__name__}: {exc}"


def figure(result: dict[str, Any] | None, *names: str) -> float | None:
    """The first of ``names`` found in ``result`` (a median when it is a spread)."""
    for name in names:
        value = (result or {}).get(name)
        if isinstance(value, dict):
            value = value.get("median")
        if isinstance(value, (int, float)):
            return float(value)
    return None


def run(rows: int, repeats: int, diff_sizes: list[int], sizes: list[int], peer: bool, venv: Path | None) -> dict[str, Any]:
    details: dict[str, Any] = {"diff": {}}
    notes: dict[str, str] = {}
    for size in sorted({rows, *diff_sizes}):
        log(f"diff + plan vs the bare statement at {size:,} rows, {repeats} runs each")
        details["diff"][str(size)] = bench_diff.compare(size, repeats)
    log(f"first sync vs the wire floor, then incremental and no-change runs, at {rows:,} rows, {repeats} runs each")
    first = details["first_sync"] = bench_first_sync.first_sync(rows, repeats=repeats, incremental=True)
    if peer:
        log(f"engine vs drt at {rows:,} rows, {repeats} rounds")
        try:
            details["peer"] = bench_vs_drt.compare(rows, repeats, venv)
        except Exception as exc:  # no registry, say: the other figures stand
            notes["peer"] = f"bench_vs_drt failed: {type(exc).__name__}: {exc}"
    else:
        notes["peer"] = "not run (--no-peer)"
    log("pacing against Batch's documented limit")
    details["pacing"], reason = pacing(rows, repeats)
    if reason:
        notes["pacing"] = reason
    growth: dict[str, Any] = {}
    for size in sorted(set(sizes)):
        if size == rows:
            growth[str(size)] = {"seconds": first["engine"]["median"], "rss_mb": first["engine_rss_mb"], "counts": first["engine_runs"][-1]["counts"]}
            continue
        log(f"engine first sync at {size:,} rows (peak RSS)")
        r = bench_first_sync.first_sync(size, repeats=1, floor=False)
        growth[str(size)] = {"seconds": r["engine"]["median"], "rss_mb": r["engine_rss_mb"], "counts": r["engine_runs"][-1]["counts"]}
    details["rss_growth"] = growth
    peer_result = details.get("peer")
    return {
        "first_sync_ratio": first["ratio"],
        "diff_ratio": details["diff"][str(rows)]["ratio"],
        "incremental_share": first["incremental_share"],
        "pacing_limit_share": figure(details["pacing"], "pacing_limit_share", "limit_share"),
        "pacing_429_share": figure(details["pacing"], "pacing_429_share", "share_429"),
        "peer_first_sync_ratio": peer_result["first_sync_ratio"] if peer_result else None,
        "peer_rss_ratio": peer_result["rss_ratio"] if peer_result else None,
        "no_change_seconds": first["no_change"]["median"],
        "notes": notes,
        "details": details,
    }


def judged(result: dict[str, Any]) -> dict[str, Any]:
    return {
        key: {"target": target, "value": result[key], "met": None if result[key] is None else bool(meets(result[key]))}
        for key, (target, meets) in TARGETS.items()
    }


def span(s: dict[str, Any], unit: str = "s", digits: int = 1) -> str:
    return f"{s['median']:.{digits}f} {unit} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def percent(s: dict[str, Any]) -> str:
    return f"{s['median']:.1%} ({s['min']:.1%}–{s['max']:.1%})"


def table(result: dict[str, Any]) -> str:
    """The README's table: one line per figure, median (min–max) of the runs."""
    d, targets = result["details"], result["targets"]
    rows_n = d["first_sync"]["rows"]

    def verdict(key: str) -> str:
        met = targets[key]["met"]
        return "n/a" if met is None else ("met" if met else "**missed**")

    lines = ["| measurement | ours | baseline | ratio | target | |", "|---|---|---|---|---|---|"]
    for size, diff in d["diff"].items():
        key = "diff_ratio" if int(size) == rows_n else None
        lines.append(
            f"| diff + plan, {int(size):,} rows (1% changed), vs a bare statement doing the same join, hash and classification "
            f"| {span(diff['plan'], digits=2)}, {diff['plan_rss_mb']:,.0f} MB | {span(diff['bare'], digits=2)}, {diff['bare_rss_mb']:,.0f} MB "
            f"| {diff['ratio']:.2f}× | ≤ 1.3×, ≤ 2 GB | {verdict(key) if key else ('met' if diff['ratio'] <= 1.3 else '**missed**')} |"
        )
    f = d["first_sync"]
    lines.append(
        f"| first sync, {rows_n:,} records, 200/request, 4 in flight, vs the wire floor (pre-built bodies, 4 keep-alive threads) "
        f"| {span(f['engine'])}, {f['engine_rss_mb']:,.0f} MB | {span(f['floor'])} | {f['ratio']:.2f}× | ≤ 1.5× | {verdict('first_sync_ratio')} |"
    )
    if "engine_cpu" in f and "floor_cpu" in f:
        lines.append(
            f"| … CPU seconds of that first sync (the sandbox serves it on the same 2 cores) | {f['engine_cpu']['median']:.1f} s "
            f"| {f['floor_cpu']['median']:.1f} s | {f['engine_cpu']['median'] / max(f['floor_cpu']['median'], 1e-9):.2f}× | | |"
        )
    lines.append(
        f"| incremental after a 1% change, vs the first sync | {span(f['incremental'], digits=2)} | {f['engine']['median']:.1f} s "
        f"| {f['incremental_share']:.1%} | ≤ 5% | {verdict('incremental_share')} |"
    )
    lines.append(f"| no-change rerun, engine time | {span(f['no_change'], digits=2)} | | | ≤ 2 s | {verdict('no_change_seconds')} |")
    p = d.get("peer")
    if p:
        for step, label in (("first_sync", "first sync"), ("incremental", "after a 1% change"), ("no_change", "no change")):
            ours, theirs = p[f"engine_{step}"], p[f"peer_{step}"]
            ratio = ours["seconds"]["median"] / theirs["seconds"]["median"]
            target = {"first_sync": "< 1×; RSS ≤ 1.5×"}.get(step, "")
            met = f"{verdict('peer_first_sync_ratio')}; RSS {verdict('peer_rss_ratio')}" if step == "first_sync" else ""
            lines.append(
                f"| vs {p['peer']} (rest_api, batch of 200), {rows_n:,} rows, {label}: whole process "
                f"| {span(ours['seconds'])}, {span(ours['rss_mb'], 'MB', 0)} | {span(theirs['seconds'])}, {span(theirs['rss_mb'], 'MB', 0)} "
                f"| {ratio:.2f}×, RSS {ours['rss_mb']['median'] / theirs['rss_mb']['median']:.2f}× | {target} | {met} |"
            )
    for key in ("pacing_limit_share", "pacing_429_share"):
        value = result[key]
        shown = "n/a: " + result["notes"].get("pacing", "") if value is None else f"{value:.1%}"
        label = key.removeprefix("pacing_").replace("_", " ")
        lines.append(f"| Batch at 5 req/s and 1,000 items/s: {label} | {shown} | | | {targets[key]['target']} | {verdict(key)} |")
    together = (d.get("pacing") or {}).get("two_at_once")
    if together:
        share, throttled = together["limit_share"], together["share_429"]
        lines.append(
            f"| … two activations of the same destination at once | {percent(share)} of the limit, {percent(throttled)} answered 429 "
            "| | | ≥ 95%, < 1% | |"
        )
    growth = d["rss_growth"]
    if len(growth) > 1:
        first_rss = growth[min(growth, key=int)]["rss_mb"]
        series = " → ".join(f"{int(n):,}: {g['rss_mb']:,.0f} MB" for n, g in sorted(growth.items(), key=lambda kv: int(kv[0])))
        last_rss = growth[max(growth, key=int)]["rss_mb"]
        lines.append(f"| first sync peak RSS as the segment grows | {series} | | {last_rss / first_rss:.2f}× | flat | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help="rows of every comparison (default 1000000)")
    parser.add_argument("--quick", action="store_true", help="the same as --rows 100000")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side of each comparison (default 3)")
    parser.add_argument("--diff-sizes", default=None, help="comma-separated extra diff sizes (default 10x --rows)")
    parser.add_argument("--sizes", default=None, help="comma-separated segment sizes of the peak-RSS first syncs (default --rows and 3x)")
    parser.add_argument("--no-peer", action="store_true", help="skip the drt comparison (it installs drt-core with pip)")
    parser.add_argument("--venv", type=Path, default=None, help="keep the peer's venv here between runs")
    parser.add_argument("--output", type=Path, default=HERE / "results" / "latest.json")
    args = parser.parse_args()
    rows = args.rows or (100_000 if args.quick else 1_000_000)
    diff_sizes = [int(n) for n in args.diff_sizes.split(",") if n] if args.diff_sizes is not None else [10 * rows]
    sizes = [int(n) for n in args.sizes.split(",") if n] if args.sizes is not None else [rows, 3 * rows]
    started, load_before = time.perf_counter(), load()
    date = f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    result = run(rows, args.repeats, diff_sizes, sizes, not args.no_peer, args.venv)
    result = {
        "date": date,
        "machine": machine(),
        "command": " ".join(["python", "benchmarks/run_all.py", *sys.argv[1:]]),
        "seconds": round(time.perf_counter() - started),
        "load_average": {"before": load_before, "after": load()},
        **result,
    }
    result["targets"] = judged(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print(f"\n{date}, {result['machine']}; `{result['command']}`, {result['seconds']} s, load {load_before} → {result['load_average']['after']}\n")
    print(table(result))


if __name__ == "__main__":
    main()
