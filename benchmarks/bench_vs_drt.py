"""The engine against an open-source peer, drt (https://github.com/drt-hub/drt, package
``drt-core``), pushing the same generated rows into the same sandbox Batch endpoint: a first
sync, a run after 1% of the rows changed, and a rerun with nothing changed; the wall time and
peak RSS of each side's whole process (interpreter start and imports included, children
included), side by side. Not a test: it prints (``compare`` returns the figures, for
``run_all.py``).

    python benchmarks/bench_vs_drt.py [ROWS] [REPEATS]   # default 1,000,000 rows, 3 rounds
    python benchmarks/bench_vs_drt.py 1000000 3 --venv /tmp/drt-venv   # keep the peer's venv between runs

The peer is installed with pip into a temporary virtual environment (``DRT_REQUIREMENT``; its
``duckdb`` extra is what reads a DuckDB source) and driven by its own CLI, ``drt run``, over a
project this script writes. Both sides read the same rows: one Parquet file generated here,
which the peer queries through its DuckDB source and which is loaded into the engine's segment
table (outside both clocks). The sandbox is the same process for both, each side writing its
own catalog, with Batch's rate limit lifted through ``POST /_sandbox/ratelimit`` for both, so
the comparison is about the engines; the sandbox is emptied before each round and the order of
the sides alternates from round to round.

How the peer is tuned, fairly (its docs: docs/connectors/rest-api.md in its repository):

- ``rest_api`` destination, ``body_mode: batch``, ``max_records_per_request: 200`` (Batch's
  limit, as ours) and a ``batch_template`` that renders the same body as the engine's client
  (``{"name", "items": [{"id", "action": "add", "attributes": {...}}]}``, the same 5 fields);
- ``sync.batch_size: 10000``, well above its default of 100: the engine chunk handed to the
  destination is split into 50 requests over one keep-alive connection, instead of a fresh
  client per 100 rows;
- ``sync.rate_limit.requests_per_second: 1000000``: its default paces 10 requests/s;
- ``mode: incremental`` on the ``updated_at`` cursor, which the 1% change stamps: its way to send
  only what changed from a DuckDB source (its snapshot diff, ``incremental_strategy: diff``, is
  for Postgres, Snowflake, Databricks and BigQuery sources only); ``mode: full`` would resend
  every row each run. This favours the peer: it compares no content (a row whose cursor did not
  move is never re-sent; a deleted row is never seen), while the engine diffs every run;
- the Batch catalog it writes to is created before its first run, outside its clock (drt has
  no notion of creating it; the engine creates its own inside its run);
- ``on_error: fail``, default retries; telemetry off (``DO_NOT_TRACK=1``, it is opt-in anyway).
drt sends one request at a time within a sync (``--threads`` runs different syncs in
parallel); the engine keeps 4 requests in flight.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import duckdb
import requests

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from bench_first_sync import CHANGED_SQL, HEADERS, ITEMS_PER_REQUEST, SENT  # noqa: E402
from common import ProcessRun, catalog_items, emit, items_received, reset_sandbox, run_measured, sandbox, spread  # noqa: E402

DRT_REQUIREMENT = "drt-core[duckdb]==1.2.1"  # the version measured; --drt-requirement overrides it
PEER_CATALOG, ENGINE_CATALOG = "peer", "engine"
STEPS = ("first_sync", "incremental", "no_change")


def prepare_rows(parquet: Path, rows: int) -> None:
    from activation_pipeline.demo_data import generate_products

    generate_products(rows).select(["sku", *SENT.values(), "updated_at"]).write_parquet(parquet)


def change_rows(parquet: Path) -> int:
    """Change 1% of the rows (price + 1) and stamp them with a later ``updated_at``, rewriting the file in place."""
    changed = f"{CHANGED_SQL.replace('sku', 'p.sku')}"
    staged = parquet.with_suffix(".next.parquet")
    with duckdb.connect() as conn:
        conn.execute(
            f"""COPY (SELECT p.* REPLACE (CASE WHEN {changed} THEN p.price + 1 ELSE p.price END AS price,
                                          CASE WHEN {changed} THEN m.newest + INTERVAL 1 DAY ELSE p.updated_at END AS updated_at)
                      FROM read_parquet('{parquet}') p, (SELECT max(updated_at) AS newest FROM read_parquet('{parquet}')) m)
                TO '{staged}' (FORMAT parquet)"""
        )
        count = conn.execute(f"SELECT count(*) FROM read_parquet('{parquet}') p WHERE {changed}").fetchone()[0]
    staged.replace(parquet)
    return count


def load_segment(database: Path, parquet: Path) -> None:
    """The engine's segment table, as a segment asset would leave it: the file's rows."""
    with duckdb.connect(str(database)) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS segments")
        conn.execute(f"CREATE OR REPLACE TABLE segments.bench AS SELECT * FROM read_parquet('{parquet}')")


def peer_venv(venv: Path, requirement: str) -> Path:
    """A virtual environment holding the peer (reused when it already holds ``requirement``); its ``drt``."""
    marker = venv / "bench-requirement.txt"
    if not (marker.exists() and marker.read_text() == requirement):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", requirement], check=True)
        marker.write_text(requirement)
    return venv / "bin" / "drt"


def write_peer_project(project: Path, home: Path, url: str, parquet: Path) -> None:
    """The peer's project (``drt_project.yml``, one sync) and its profile (``~/.drt/profiles.yml`` under ``home``)."""
    attributes = ", ".join(f'"{f}": {{{{ r.{c} | tojson_safe }}}}' for f, c in SENT.items())
    item = f'{{"id": {{{{ r.sku | tojson_safe }}}}, "action": "add", "attributes": {{{attributes}}}}}'
    template = f'{{"name": "{PEER_CATALOG}", "items": [{{% for r in rows %}}{item}{{% if not loop.last %}},{{% endif %}}{{% endfor %}}]}}'
    columns = ", ".join(["sku", *SENT.values(), "updated_at"])
    sync = {
        "name": "peer",
        "model": f"SELECT {columns} FROM read_parquet('{parquet}')",
        "destination": {
            "type": "rest_api",
            "url": f"{url}/batch/2.11/catalogs/items/edit",
            "method": "POST",
            "headers": {"Content-Type": "application/json", "X-Batch-Project": HEADERS["X-Batch-Project"]},
            "auth": {"type": "bearer", "token_env": "BENCH_BATCH_REST_KEY"},
            "body_mode": "batch",
            "max_records_per_request": ITEMS_PER_REQUEST,
            "batch_template": template,
        },
        "sync": {
            "mode": "incremental",
            "cursor_field": "updated_at",
            "batch_size": 10_000,
            "rate_limit": {"requests_per_second": 1_000_000},
            "on_error": "fail",
        },
    }
    (project / "syncs").mkdir(parents=True, exist_ok=True)
    (project / "drt_project.yml").write_text('name: bench\nversion: "0.1"\nprofile: bench\n')
    (project / "syncs" / "peer.yml").write_text(json.dumps(sync, indent=2))  # JSON is YAML
    (home / ".drt").mkdir(parents=True, exist_ok=True)
    (home / ".drt" / "profiles.yml").write_text(textwrap.dedent('bench:\n  type: duckdb\n  database: ":memory:"\n'))


def run_peer(drt: Path, project: Path, home: Path) -> ProcessRun:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HOME=str(home), DO_NOT_TRACK="1", BENCH_BATCH_REST_KEY=HEADERS["Authorization"].removeprefix("Bearer "))
    return run_measured([str(drt), "run", "--select", "peer"], env=env, cwd=project)


def run_engine(url: str, database: Path, state_dir: Path) -> tuple[ProcessRun, dict[str, Any]]:
    """The engine's run in a process of its own (the same path an activation asset takes: ``run_sync``)."""
    script = HERE / "bench_first_sync.py"
    run = run_measured([sys.executable, str(script), "--measure", "engine-whole", url, str(database), str(state_dir)])
    return run, json.loads(run.stdout.strip().splitlines()[-1])


def compare(rows: int, repeats: int = 3, venv: Path | None = None, requirement: str = DRT_REQUIREMENT) -> dict[str, Any]:
    """``repeats`` rounds of first sync, 1% change and no change, for both sides; every figure per step and side."""
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {side: {step: [] for step in STEPS} for side in ("engine", "peer")}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        drt = peer_venv(venv or tmp / "drt-venv", requirement)
        version = subprocess.run([str(drt), "--version"], check=True, capture_output=True, text=True).stdout.strip().splitlines()[0]
        generated, parquet, pristine = tmp / "generated.parquet", tmp / "rows.parquet", tmp / "pristine.duckdb"
        subprocess.run([sys.executable, __file__, "--prepare", str(generated), str(rows)], check=True)
        load_segment(pristine, generated)
        database, state_dir, project, home = tmp / "bench.duckdb", tmp / "state", tmp / "peer", tmp / "home"
        with sandbox(tmp) as url:
            write_peer_project(project, home, url, parquet)
            for round_number in range(repeats):
                reset_sandbox(url)
                shutil.copyfile(generated, parquet)
                shutil.copyfile(pristine, database)
                for stale in (state_dir, project / ".drt", project / "target"):
                    shutil.rmtree(stale, ignore_errors=True)
                create = {"name": PEER_CATALOG, "fields": [{"name": "name", "type": "string"}]}
                requests.post(f"{url}/batch/2.11/catalogs/create", headers=HEADERS, json=create, timeout=60).raise_for_status()
                sides = ["engine", "peer"] if round_number % 2 == 0 else ["peer", "engine"]  # alternate who meets the fuller sandbox
                for step in STEPS:
                    changed = 0
                    if step == "incremental":
                        changed = change_rows(parquet)
                        load_segment(database, parquet)
                    for side in sides:
                        before = items_received(url)
                        if side == "engine":
                            run, inner = run_engine(url, database, state_dir)
                            figures = {"engine_seconds": inner["seconds"], "counts": inner["counts"]}
                        else:
                            run, figures = run_peer(drt, project, home), {}
                        catalog = ENGINE_CATALOG if side == "engine" else PEER_CATALOG
                        runs[side][step].append(
                            {
                                "seconds": run.seconds,
                                "rss_mb": run.rss_mb,
                                **figures,
                                "changed_rows": changed,
                                "platform_items_received": items_received(url) - before,
                                "platform_items": catalog_items(url).get(catalog, 0),
                            }
                        )
            if rows <= 200_000:  # both catalogs hold the same items; reading 1M items back would dwarf the runs
                held = {
                    c: requests.get(f"{url}/_sandbox/batch/catalogs/{c}/items", timeout=600).json()["items"] for c in (ENGINE_CATALOG, PEER_CATALOG)
                }
                same_items = held[ENGINE_CATALOG] == held[PEER_CATALOG]
            else:
                same_items = None
    summary: dict[str, Any] = {"rows": rows, "repeats": repeats, "peer": version, "requirement": requirement, "same_items": same_items}
    for side, steps in runs.items():
        for step, step_runs in steps.items():
            summary[f"{side}_{step}"] = {
                "seconds": spread([r["seconds"] for r in step_runs]),
                "rss_mb": spread([r["rss_mb"] for r in step_runs]),
                "platform_items_received": [r["platform_items_received"] for r in step_runs],
                "platform_items": [r["platform_items"] for r in step_runs],
                **({"engine_seconds": spread([r["engine_seconds"] for r in step_runs])} if side == "engine" else {}),
            }
    summary["runs"] = runs
    ours, theirs = summary["engine_first_sync"], summary["peer_first_sync"]
    summary["first_sync_ratio"] = ours["seconds"]["median"] / theirs["seconds"]["median"]
    summary["rss_ratio"] = ours["rss_mb"]["median"] / theirs["rss_mb"]["median"]
    return summary


def main() -> None:
    if sys.argv[1:2] == ["--prepare"]:
        prepare_rows(Path(sys.argv[2]), int(sys.argv[3]))
        emit({})
        return
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", nargs="?", type=int, default=1_000_000)
    parser.add_argument("repeats", nargs="?", type=int, default=3)
    parser.add_argument("--venv", type=Path, default=None, help="where the peer's venv lives (kept; default: a temporary one)")
    parser.add_argument("--drt-requirement", default=DRT_REQUIREMENT)
    args = parser.parse_args()
    result = compare(args.rows, args.repeats, args.venv, args.drt_requirement)
    print(f"{args.rows:,} rows, {args.repeats} rounds, {result['peer']}; wall time and peak RSS of the whole process, median (min–max)")
    for step in STEPS:
        for side in ("engine", "peer"):
            r = result[f"{side}_{step}"]
            s, m = r["seconds"], r["rss_mb"]
            print(
                f"{step:11} {side:6} {s['median']:7.2f} s ({s['min']:.2f}–{s['max']:.2f})"
                f"  peak RSS {m['median']:5.0f} MB ({m['min']:.0f}–{m['max']:.0f})"
                f"  items received {r['platform_items_received']}"
            )
    print(f"first sync ours ÷ peer {result['first_sync_ratio']:.2f}x (target < 1), peak RSS ours ÷ peer {result['rss_ratio']:.2f}x (target <= 1.5x)")
    print(f"both catalogs hold the same items: {result['same_items']}")


if __name__ == "__main__":
    main()
