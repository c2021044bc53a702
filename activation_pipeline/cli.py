"""``activation-pipeline``: the demo end to end, and the sandbox in the background.

activation-pipeline demo        generate demo data if missing, start the sandbox,
                                materialize every asset once, print a summary
activation-pipeline sandbox     run the sandbox in the foreground
activation-pipeline ledger ACTIVATION [KEY]
                                the last confirmed version of each record (or every
                                operation on KEY across runs), as a table
activation-pipeline ledger prune [--days N]
                                drop record payloads older than ledger_retention_days
                                (or N days), keeping every run's counts
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests

from activation_pipeline.platforms.resource import sandbox_url
from activation_pipeline.warehouse import WAREHOUSE_ERRORS, Session

UNREADABLE: tuple[type[Exception], ...] = (FileNotFoundError, *WAREHOUSE_ERRORS)  # a warehouse a tool cannot read

DEMO_LAST_ORDER_DAY = date(2026, 11, 1)  # the demo dataset's end_date
DEMO_DAYS = 7  # partitions synced by the demo: the last week of orders


def _sandbox_running(url: str) -> bool:
    try:
        return requests.get(f"{url}/_sandbox/health", timeout=1).ok
    except requests.RequestException:
        return False


def ensure_sandbox(state: Path) -> str:
    """Start the sandbox in the background unless one already answers; return its URL."""
    url = sandbox_url()
    if _sandbox_running(url):
        print(f"sandbox already running at {url}")
        return url
    port = url.rsplit(":", 1)[1]
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", int(port))) == 0:
            sys.exit(f"port {port} is taken by something that is not the sandbox; set SANDBOX_PORT to a free port")
    state.parent.mkdir(parents=True, exist_ok=True)
    log = open(state.parent / "sandbox.log", "a")
    process = subprocess.Popen(
        [sys.executable, "-m", "activation_pipeline.sandbox", "--port", port, "--state", str(state)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    for _ in range(100):
        if _sandbox_running(url):
            print(f"sandbox started at {url} (pid {process.pid}; stop it with `kill {process.pid}`; state in {state})")
            return url
        time.sleep(0.1)
    sys.exit(f"the sandbox did not start; see {state.parent / 'sandbox.log'}")


def demo(args: argparse.Namespace) -> None:
    from dagster import AssetsDefinition, DagsterInstance, materialize

    from activation_pipeline.assembly import build_definitions
    from activation_pipeline.config import load_config
    from activation_pipeline.dagster_home import use_project_home
    from activation_pipeline.demo_data import write_demo_dataset
    from activation_pipeline.warehouse import read_warehouse, warehouse_location

    config = load_config()
    demo_dir = config.base_dir / "demo"
    missing = [n for n, s in config.sources.items() if s.database is None and not config.source_path(n).exists()]
    if missing or args.regenerate:
        files = write_demo_dataset(demo_dir)
        print(f"demo data written to {demo_dir}: {', '.join(sorted(files))}")
    ensure_sandbox(config.base_dir / "sandbox" / "state.sqlite")
    defs = build_definitions(config)
    assets: list[Any] = [*(defs.assets or []), *(defs.asset_checks or [])]  # what build_definitions made: definitions, not specs
    home = use_project_home(Path.cwd())  # the instance `dagster dev` from this folder opens
    started = time.time()
    results = []
    with DagsterInstance.get() as instance:
        # everything once with the last day of the demo orders; then the days before it, partitioned assets only
        days = [(DEMO_LAST_ORDER_DAY - timedelta(days=n)).isoformat() for n in range(DEMO_DAYS)] if config.partitions else [None]
        results.append(materialize(assets, resources=defs.resources, instance=instance, partition_key=days[0], raise_on_error=False))
        partitioned = [a.key for a in defs.assets or [] if isinstance(a, AssetsDefinition) and a.partitions_def is not None]
        for day in days[1:]:
            results.append(
                materialize(assets, selection=partitioned, resources=defs.resources, instance=instance, partition_key=day, raise_on_error=False)
            )
    success = all(r.success for r in results)
    print(
        f"\nmaterialized {sum(len(r.get_asset_materialization_events()) for r in results)} assets in {len(results)} runs "
        f"in {time.time() - started:.1f}s ({'success' if success else 'with failures: see above'})\n"
    )
    with read_warehouse() as conn:
        print("\n".join(run_summary(conn, [r.run_id for r in results])))
        notes = run_notes(conn, [r.run_id for r in results])
    if notes:  # the lines whose records were not all confirmed, each in one sentence
        print("\n" + "\n".join(notes))
    print("\nLedger: activation_state.sync_runs / sync_records in", warehouse_location())
    print(f"Runs recorded in the Dagster instance {home}")
    print("UI: `dagster dev` from this folder, then open http://127.0.0.1:3000 (the sandbox keeps running)")
    if not success:
        sys.exit(1)


def run_summary(conn: Session, run_ids: list[str]) -> list[str]:
    """One line per activation synced by these runs; ``parts``: its days, or its scopes (store views)."""
    from activation_pipeline.sync.state import run_totals

    rows = run_totals(conn, run_ids)
    widths = (8, 9, 8, 9, 9, 10)
    lines = [f"{'activation':<28}{'parts':>5} {'status':<18}{'planned':>8}{'sent ok':>9}{'failed':>8}{'invalid':>9}{'skipped':>9}{'snapshot':>10}"]
    for row in rows:
        lines.append(
            f"{row[0]:<28}{row[1] or '-':>5} {row[2]:<18}"
            + "".join(f"{(v if v is not None else 0):>{w}}" for v, w in zip(row[3:], widths, strict=False))
        )
    return lines


NOTES = (  # (ledger statuses, what happened to those records) for the demo summary's one sentence per line
    (("rejected", "no_answer"), "not confirmed by the platform (resent next run)"),
    (("skipped",), "skipped by the platform (tried again next run)"),
    (("invalid",), "invalid (never sent)"),
)


def run_notes(conn: Session, run_ids: list[str]) -> list[str]:
    """One sentence per activation whose records were not all confirmed, from the ledger's most common reason."""
    from activation_pipeline.sync.state import (
        activations_with_status,
        keys_with_status,
        top_reasons,
    )

    notes = []
    for activation in activations_with_status(conn, run_ids, tuple(s for statuses, _ in NOTES for s in statuses)):
        parts = []
        for statuses, outcome in NOTES:
            total = keys_with_status(conn, activation, run_ids, statuses)
            if total:
                [reason] = top_reasons(conn, activation, run_ids, statuses, any_partition=True, limit=1)
                which = ("" if total == 1 else "all ") if reason.records == total else f"{reason.records} of them "
                parts.append(f'{total} {"record was" if total == 1 else "records were"} {outcome}, {which}with "{reason.reason}"')
        notes.append(f"{activation}: " + "; ".join(parts) + ".")
    return notes


LEDGER_LIMIT = 50


def ledger(args: argparse.Namespace) -> None:
    import polars as pl

    from activation_pipeline.sync.state import (
        activations_with_runs,
        has_table,
        latest_records,
        latest_records_count,
        record_history,
    )
    from activation_pipeline.warehouse import backend_for, read_warehouse, warehouse_location

    if args.activation == "prune":  # a command, not an activation (the config refuses that name)
        return prune(args)
    if args.days is not None:
        sys.exit("--days goes with `activation-pipeline ledger prune`")
    if args.key is None:
        title = f"latest confirmed records of {args.activation}"
    else:
        title = f"history of {args.key} in {args.activation}"
    how = (
        "materialize it first: `dagster asset materialize -m activation_pipeline.definitions "
        f"--select activations/{args.activation}` (or `activation-pipeline demo`)"
    )
    if not backend_for().exists():  # nothing has run here yet: say so, and how to make it (exit 1)
        sys.exit(f"nothing recorded yet: no warehouse at {warehouse_location()} (set ACTIVATION_WAREHOUSE if it lives elsewhere); {how}")
    try:
        with read_warehouse() as conn:
            known = activations_with_runs(conn) if has_table(conn, "sync_runs") else set()
            if args.activation not in known:
                sys.exit(
                    f"nothing recorded yet for activation {args.activation!r} in {warehouse_location()} "
                    f"(activations with runs, known: {', '.join(sorted(known)) or 'none yet'}); {how}"
                )
            if args.key is None:
                frame = latest_records(conn, args.activation, args.limit)
            else:
                frame = record_history(conn, args.activation, args.key, args.limit)
            total = latest_records_count(conn, args.activation)
    except UNREADABLE as exc:
        sys.exit(str(exc))
    print(f"{title}: {frame.height} row(s)" + (f" of {total}" if args.key is None else ""))
    with pl.Config(tbl_rows=args.limit, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200, tbl_hide_dataframe_shape=True):
        print(frame)


def prune(args: argparse.Namespace) -> None:
    from activation_pipeline.config import ConfigError, config_path, load_config
    from activation_pipeline.sync.state import has_table, prune_ledger
    from activation_pipeline.warehouse import warehouse_location, write_warehouse

    if args.key is not None:
        sys.exit(f"`activation-pipeline ledger prune` takes no key (got {args.key!r}); it prunes every activation")
    days = args.days
    if days is None:
        try:
            days = load_config().ledger_retention_days
        except ConfigError as exc:
            sys.exit(str(exc))
        if days is None:
            sys.exit(f"no retention: set ledger_retention_days in {config_path()} or pass --days N")
    if days < 1:
        sys.exit(f"--days must be 1 or more, got {days}")
    try:
        with write_warehouse() as conn:
            if not has_table(conn, "sync_records"):
                sys.exit(f"no ledger yet in {warehouse_location()}: nothing to prune")
            pruned = prune_ledger(conn, days)
    except UNREADABLE as exc:
        sys.exit(str(exc))
    print(
        f"ledger in {warehouse_location()}: records older than {days} day(s): {pruned.deleted} row(s) deleted, "
        f"{pruned.cleared} cleared of payload and message (each record's last confirmed version stays); run counts unchanged"
    )


def sandbox(args: argparse.Namespace) -> None:
    os.execv(sys.executable, [sys.executable, "-m", "activation_pipeline.sandbox", *args.rest])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="activation-pipeline", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser("demo", help="run every activation once against the sandbox")
    demo_parser.add_argument("--regenerate", action="store_true", help="rewrite the demo dataset first")
    demo_parser.set_defaults(func=demo)
    ledger_parser = commands.add_parser("ledger", help="what was sent, when, and what the platform said")
    ledger_parser.add_argument("activation", help="an activation, or `prune` to apply the ledger's retention")
    ledger_parser.add_argument("key", nargs="?", help="a primary key: its every operation across runs")
    ledger_parser.add_argument("--limit", type=int, default=LEDGER_LIMIT)
    ledger_parser.add_argument("--days", type=int, help="prune: the retention in days (default: ledger_retention_days)")
    ledger_parser.set_defaults(func=ledger)
    sandbox_parser = commands.add_parser("sandbox", help="run the sandbox in the foreground")
    sandbox_parser.add_argument("rest", nargs=argparse.REMAINDER)
    sandbox_parser.set_defaults(func=sandbox)
    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
