"""A rate-limited Batch run: the engine at Batch's documented limit (5 requests/s and 1,000 items/s,
enforced by the sandbox's token buckets) with its default budget, one activation alone and two
activations of the same destination at once. Not a test: it prints (``pacing`` returns the figures,
for ``run_all.py``).

    python benchmarks/bench_pacing.py [ROWS] [RUNS]   # default 20,000 items, 3 runs

Figures per run, from the sandbox's own stats: achieved items/s ÷ the 1,000 items/s limit over the
whole run (plan, catalog creation and push: what a user waits for; the headline figure), the
sustained rate the sandbox saw over its last 200 items/edit requests, and the share of items/edit
requests answered 429. Reported as median and min–max over the runs. Targets: >= 95% of the limit,
< 1% of requests answered 429. The segment is built once; each run syncs into a fresh catalog with a
fresh snapshot, in a child process of its own (so the account's pacer starts afresh).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_first_sync import engine_sync, prepare, sandbox  # noqa: E402
from common import emit, run_child, timed_threads  # noqa: E402

LIMIT = {"enabled": True, "requests_per_second": 5, "items_per_second": 1000}


def sync_at_once(url: str, database: Path, state_dir: Path, tag: str, activations: int) -> dict[str, Any]:
    """``activations`` syncs of the segment into catalogs of one Batch project, at once in this process."""
    import activation_pipeline.platforms.batch  # noqa: F401 - imported before the clock starts, as a run process has it
    import activation_pipeline.sync.engine  # noqa: F401
    from activation_pipeline.warehouse import WarehouseResource

    # the sessions of an activation: under the warehouse's file lock, so two syncs in one process take turns
    sessions = WarehouseResource(database=str(database)).get_connection
    requests.post(f"{url}/_sandbox/reset", timeout=10).raise_for_status()  # stats and catalogs (at most 5 per project)

    def one(index: int) -> None:  # each its own activation, snapshot and catalog; the account (and its pacer) is the same
        engine_sync(url, database, state_dir / f"{tag}_{index}", catalog=f"{tag}_{index}", activation=f"{tag}_{index}", paced=True, connect=sessions)

    seconds = timed_threads(one, [(i,) for i in range(activations)])
    everything = requests.get(f"{url}/_sandbox/stats", timeout=10).json()
    stats = everything["batch"]
    # the sustained rate the platform saw: the items after the first of its last 200 edits, over their span
    edited = [r for r in everything["recent"] if r["path"] == "/catalogs/items/edit" and r["status"] == 202]
    span = edited[-1]["ts"] - edited[0]["ts"] if len(edited) > 1 else 0.0
    edits = stats["requests"].get("/catalogs/items/edit", 0)
    throttled = stats["statuses"].get("429", 0)  # only items/edit is rate limited
    return {
        "seconds": seconds,
        "items": stats["items_applied"],
        "requests": edits,
        "answered_429": throttled,
        "limit_share": stats["items_applied"] / seconds / LIMIT["items_per_second"],
        "sustained_share": sum(r["items"] for r in edited[1:]) / span / LIMIT["items_per_second"] if span else None,
        "share_429": throttled / edits if edits else 0.0,
    }


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def pacing(rows: int = 20_000, runs: int = 3) -> dict[str, Any]:
    """Three runs alone, three runs of two activations at once (``rows`` items each), against the limit."""
    result: dict[str, Any] = {"rows": rows, "runs": runs, "limit": {k: v for k, v in LIMIT.items() if k != "enabled"}}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        database = tmp / "bench.duckdb"
        prepare(database, rows)
        with sandbox(tmp) as url:
            requests.post(f"{url}/_sandbox/ratelimit", json=LIMIT, timeout=10).raise_for_status()
            for label, activations in (("alone", 1), ("two_at_once", 2)):
                measured = [run_child(__file__, "--run", url, database, tmp / "state", f"{label}{run}", activations) for run in range(runs)]
                result[label] = {
                    "runs": measured,
                    "limit_share": spread([m["limit_share"] for m in measured]),
                    "share_429": spread([m["share_429"] for m in measured]),
                    "sustained_share": spread([m["sustained_share"] or 0.0 for m in measured]),
                }
    result["pacing_limit_share"] = result["alone"]["limit_share"]["median"]
    result["pacing_429_share"] = result["alone"]["share_429"]["median"]
    return result


def main() -> None:
    if sys.argv[1:2] == ["--run"]:
        url, database, state_dir, tag, activations = sys.argv[2:7]
        emit(sync_at_once(url, Path(database), Path(state_dir), tag, int(activations)))
        return
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    result = pacing(rows, runs)
    print(f"Batch at 5 requests/s and 1,000 items/s (sandbox), {rows:,} items per activation, {runs} runs")
    for label in ("alone", "two_at_once"):
        share, sustained, throttled = (result[label][k] for k in ("limit_share", "sustained_share", "share_429"))
        print(
            f"{label:12} items/s of the limit {share['median']:6.1%} ({share['min']:.1%}–{share['max']:.1%}) over the run,"
            f" {sustained['median']:6.1%} ({sustained['min']:.1%}–{sustained['max']:.1%}) sustained"
            f"   429 answers {throttled['median']:6.2%} ({throttled['min']:.2%}–{throttled['max']:.2%})"
            "   (targets >= 95%, < 1%)"
        )


if __name__ == "__main__":
    main()
